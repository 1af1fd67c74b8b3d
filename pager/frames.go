package pager

// Budget frames and prefetch cache slots; everything here is called with p.mu held.

// takeFrameLocked gives page idx of r one of the free frames (the caller checked that there
// is one).
func (p *Pager) takeFrameLocked(r *Region, idx int) {
	fi := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.frames[fi] = pageRef{r, idx}
	pg := &r.pages[idx]
	pg.frame, pg.framed = fi, true
}

// releaseFrameLocked returns pg's frame to the free list, if it holds one.
func (p *Pager) releaseFrameLocked(pg *page) {
	if pg.framed {
		p.frames[pg.frame] = pageRef{}
		p.free = append(p.free, pg.frame)
		pg.framed = false
	}
}

// releaseSlotLocked returns pg's prefetch cache slot.
func (p *Pager) releaseSlotLocked(pg *page) {
	p.cache[pg.slot] = pageRef{}
}

// spareFramesLocked is how many free frames read-ahead may take: all but a reserve for the
// demand faults of every handler.
func (p *Pager) spareFramesLocked() int {
	return len(p.free) - (p.opt.Handlers + 1)
}

// cacheSlotLocked takes a free prefetch cache slot, dropping the oldest unused read-ahead page
// if none is free (it goes back to the server's copy, which is still current). Free slots are
// taken next-fit, so the pages of one read-ahead batch mostly get consecutive slots and
// neighbouring pages are read by one RDMA READ.
func (p *Pager) cacheSlotLocked() (int32, bool) {
	for range len(p.cache) {
		s := int32(p.cacheNext)
		p.cacheNext = (p.cacheNext + 1) % len(p.cache)
		if p.cache[s].r == nil {
			return s, true
		}
	}
	for range len(p.cache) {
		s := int32(p.cacheNext)
		p.cacheNext = (p.cacheNext + 1) % len(p.cache)
		a := p.cache[s]
		if a.r.pages[a.idx].state == stCached {
			a.r.pages[a.idx].state = stRemote
			return s, true
		}
	}
	return 0, false
}

// wakeEvictor asks the evictor to refill the reserve of free frames; it runs once more if it
// is running already.
func (p *Pager) wakeEvictor() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
