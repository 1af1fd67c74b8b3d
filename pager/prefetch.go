package pager

// Read-ahead in the manner of Leap (Al Maruf and Chowdhury, ATC '20): each region keeps the
// page indexes of its recent faults; if one stride is the majority of the recent strides
// (Boyer-Moore majority vote), the next pages along that stride are read ahead into the
// prefetch cache. The window doubles while read-ahead pages are being used and halves on a
// fault that had to go to the network.

const (
	historyLen = 8
	minWindow  = 4
)

// trend returns the majority stride of r's recent faults after recording idx.
func (r *Region) trend(idx int) (int, bool) {
	copy(r.hist[1:], r.hist[:historyLen-1])
	r.hist[0] = idx
	if r.nhist < historyLen {
		r.nhist++
	}
	return majorityStride(r.hist[:r.nhist])
}

// majorityStride finds the stride (difference of consecutive entries, newest first) that
// makes up more than half of the strides in h, if any, and is not zero.
func majorityStride(h []int) (int, bool) {
	if len(h) < 3 {
		return 0, false
	}
	cand, count := 0, 0
	for i := 0; i+1 < len(h); i++ {
		d := h[i] - h[i+1]
		if count == 0 {
			cand, count = d, 1
		} else if d == cand {
			count++
		} else {
			count--
		}
	}
	n := 0
	for i := 0; i+1 < len(h); i++ {
		if h[i]-h[i+1] == cand {
			n++
		}
	}
	if cand == 0 || 2*n <= len(h)-1 {
		return 0, false
	}
	return cand, true
}

// planPrefetchLocked records a fault on page idx of r and, if faults follow a trend, claims
// the next pages along it for read-ahead (state stFetching with a cache slot each). hit says
// the fault was served from the prefetch cache.
func (p *Pager) planPrefetchLocked(r *Region, idx int, hit bool) []pageRef {
	d, ok := r.trend(idx)
	if hit {
		r.win = min(2*r.win, p.opt.Prefetch)
	} else {
		r.win = max(r.win/2, min(minWindow, p.opt.Prefetch))
	}
	if !ok {
		return nil
	}
	var ahead []pageRef
	for i := 1; i <= r.win; i++ {
		j := idx + d*i
		if j < 0 || j >= len(r.pages) {
			break
		}
		if r.pages[j].state == stRemote {
			ahead = append(ahead, pageRef{r, j})
		}
	}
	// After a hit, read ahead only when a good part of the window is missing: batches of one
	// or two pages cost a round trip each.
	if hit && 2*len(ahead) < r.win {
		return nil
	}
	out := ahead[:0]
	for _, a := range ahead {
		s, ok := p.cacheSlotLocked()
		if !ok {
			break
		}
		p.cache[s] = a
		pg := &r.pages[a.idx]
		pg.state, pg.slot = stFetching, s
		out = append(out, a)
	}
	return out
}

// cacheSlotLocked takes a free prefetch cache slot, dropping the oldest unused read-ahead page
// if none is free (it goes back to the server's copy, which is still current).
func (p *Pager) cacheSlotLocked() (int32, bool) {
	if n := len(p.cacheFree); n > 0 {
		s := p.cacheFree[n-1]
		p.cacheFree = p.cacheFree[:n-1]
		return s, true
	}
	for range len(p.cache) {
		s := int32(p.cacheHand)
		p.cacheHand = (p.cacheHand + 1) % len(p.cache)
		a := p.cache[s]
		if a.r != nil && a.r.pages[a.idx].state == stCached {
			a.r.pages[a.idx].state = stRemote
			p.cache[s] = pageRef{}
			return s, true
		}
	}
	return 0, false
}
