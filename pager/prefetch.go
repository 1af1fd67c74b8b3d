package pager

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// Read-ahead in the manner of Leap (Al Maruf and Chowdhury, ATC '20): each region keeps the
// page indexes of its recent faults; if one stride is the majority of the recent strides
// (Boyer-Moore majority vote), the next pages along that stride are read in one batch of
// RDMA READs. The window doubles while read-ahead pages are being used and halves on a fault
// that had to go to the network.
//
// Read-ahead pages are installed straight away, so the accesses they serve never fault. One
// page in the middle of each batch, the marker, stays in the prefetch cache instead (as
// Linux's PG_readahead page does): the fault on it is served without a network wait, tells
// that the batch is being used, and starts the next batch while the rest of this one is
// still ahead of the access stream.

const (
	historyLen = 8
	minWindow  = 4
)

// readAhead is a page claimed for read-ahead: it lands in a prefetch cache slot and is then
// installed in a frame, or kept in the cache (the marker, or when frames run short).
type readAhead struct {
	r       *Region
	idx     int
	slot    int32
	install bool // wants a frame: all but the marker
	framed  bool // got one
	copied  bool // install attempted
	ok      bool // installed
}

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
// the next pages along it for read-ahead (state stFetching and a cache slot each), appending
// them to out. hit says the fault was served from the prefetch cache.
func (p *Pager) planPrefetchLocked(r *Region, idx int, hit bool, out []readAhead) []readAhead {
	d, ok := r.trend(idx)
	if hit && r.stride != 0 {
		// The pages between this read-ahead page and the last fault were installed ahead and
		// never faulted: the stride that read them holds, and the history says so.
		d, ok = r.stride, true
		for i := range r.hist {
			r.hist[i] = idx - i*d
		}
		r.nhist = historyLen
	}
	p.passAheadLocked(r, idx, d, ok)
	if hit {
		r.win = min(2*r.win, p.maxWindow)
	} else {
		r.win = max(r.win/2, min(minWindow, p.maxWindow))
	}
	if !ok {
		r.stride = 0
		return out
	}
	start := len(out)
	for i := 1; i <= r.win; i++ {
		j := idx + d*i
		if j < 0 || j >= len(r.pages) {
			break
		}
		if r.pages[j].state == stRemote {
			out = append(out, readAhead{r: r, idx: j})
		}
	}
	n := len(out) - start
	// After a hit, read ahead only when a good part of the window is missing: batches of one
	// or two pages cost a round trip each.
	if n == 0 || hit && 2*n < r.win {
		return out[:start]
	}
	r.stride = d
	k := start
	for i := start; i < len(out); i++ {
		s, ok := p.cacheSlotLocked()
		if !ok {
			break
		}
		a := out[i]
		pg := &r.pages[a.idx]
		pg.state, pg.slot, a.slot = stFetching, s, s
		p.cache[s] = pageRef{r, a.idx}
		a.install = i != start+n/2 // all but the marker, frames permitting (see prefetch)
		out[k] = a
		k++
	}
	if p.spareFramesLocked() < k-start {
		p.wakeEvictor() // to free frames while the batch is read
	}
	return out[:k]
}

// passAheadLocked clears the read-ahead mark of r's pages that a fault on idx has passed
// along stride d (all of them if there is no trend): they are ordinary resident pages now,
// with a clear reference bit, the first the CLOCK hand takes.
func (p *Pager) passAheadLocked(r *Region, idx, d int, ok bool) {
	k := 0
	for ; k < len(r.ahead); k++ {
		j := r.ahead[k]
		if ok && (d > 0 && j > idx || d < 0 && j < idx) {
			break
		}
		r.pages[j].ahead = false
	}
	if k > 0 {
		r.ahead = append(r.ahead[:0], r.ahead[k:]...)
	}
}

// markAheadLocked marks page idx of r as installed by read-ahead and not yet passed.
func (p *Pager) markAheadLocked(r *Region, idx int) {
	if len(r.ahead) >= 4*max(p.opt.Prefetch, minWindow) { // a trend that stopped short: forget the oldest
		r.pages[r.ahead[0]].ahead = false
		r.ahead = append(r.ahead[:0], r.ahead[1:]...)
	}
	r.pages[idx].ahead = true
	r.ahead = append(r.ahead, idx)
}

// prefetch reads the pages planned by planPrefetchLocked in one batch, installs those that
// get a frame (each install wakes threads that faulted on the page meanwhile) and leaves the
// rest in the prefetch cache.
func (p *Pager) prefetch(h *handler) {
	ahead := h.ahead
	h.ops = h.ops[:0]
	maxLen := int(min(p.conn.Caps().MaxTransfer, 1<<20))
	for i, a := range ahead {
		if i > 0 && neighbours(ahead[i-1], a) && h.ops[len(h.ops)-1].Len+PageSize <= maxLen {
			h.ops[len(h.ops)-1].Len += PageSize // neighbouring pages in neighbouring slots: one read
			continue
		}
		h.ops = append(h.ops, fabric.Op{Kind: fabric.OpRead, Mem: p.stage, Off: p.cacheSlot(int(a.slot)),
			Len: PageSize, Remote: a.r.remote, RemoteOff: uint64(a.idx) * PageSize})
	}
	if err := p.do(h.oc, h.ops); err != nil {
		p.fail("RDMA read ahead", err)
		p.abandonPrefetch(ahead)
		return
	}
	p.c.reads.Add(uint64(len(ahead)))
	p.c.prefetched.Add(uint64(len(ahead)))
	// Frames are taken now, not when the batch was planned: the evictor has had the read's
	// time to free them. If it has not freed enough, the pages that got one are installed
	// first (the access stream is probably waiting on them), then this loop evicts for the
	// rest: that costs less than faults on pages left in the cache would.
	if p.installAhead(ahead) > 0 {
		h.victims = p.refill(h.victims)
		p.installAhead(ahead)
	}
	h.lost = h.lost[:0]
	p.mu.Lock()
	for _, a := range ahead {
		pg := &a.r.pages[a.idx]
		switch {
		case !a.framed:
			pg.state = stCached
		case a.ok:
			p.releaseSlotLocked(pg)
			pg.state, pg.ref, pg.dirty, pg.onServer = stResident, false, false, true
			p.markAheadLocked(a.r, a.idx)
			if pg.wpPending { // a write while the page was in flight
				pg.wpPending, pg.dirty, pg.ref = false, true, true
				p.u.writeProtect(a.r.pageAddr(a.idx), PageSize, false, true)
			}
		default:
			p.releaseSlotLocked(pg)
			p.releaseFrameLocked(pg)
			pg.state, pg.wpPending = stLost, false
			h.lost = append(h.lost, pageRef{a.r, a.idx})
		}
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, a := range ahead {
		if !a.framed {
			p.u.wake(a.r.pageAddr(a.idx), PageSize) // threads that faulted while it was in flight
		}
	}
	for _, l := range h.lost {
		p.deny(l.r, l.r.pageAddr(l.idx))
	}
}

// neighbours reports whether b is the page after a, in the slot after a's.
func neighbours(a, b readAhead) bool {
	return a.r == b.r && b.idx == a.idx+1 && b.slot == a.slot+1
}

// installAhead gives frames to the read-ahead pages that want one, while spare frames last,
// and installs them, runs of neighbouring pages by one UFFDIO_COPY (the first page alone:
// the access stream is most likely waiting on it). It returns how many pages found no frame.
func (p *Pager) installAhead(ahead []readAhead) (short int) {
	p.mu.Lock()
	spare := p.spareFramesLocked()
	for i := range ahead {
		a := &ahead[i]
		if !a.install || a.framed {
			continue
		}
		if spare <= 0 {
			short++
			continue
		}
		p.takeFrameLocked(a.r, a.idx)
		a.framed = true
		spare--
	}
	p.mu.Unlock()
	first := true
	for i := 0; i < len(ahead); {
		if !ahead[i].framed || ahead[i].copied {
			i++
			continue
		}
		j := i + 1
		for !first && j < len(ahead) && ahead[j].framed && !ahead[j].copied && neighbours(ahead[j-1], ahead[j]) {
			j++
		}
		p.copyAhead(ahead[i:j])
		first = false
		i = j
	}
	return short
}

// copyAhead installs a run of neighbouring read-ahead pages, write-protected: they are clean.
func (p *Pager) copyAhead(run []readAhead) {
	for i := range run {
		run[i].copied = true
	}
	a := run[0]
	err := p.u.copy(a.r.pageAddr(a.idx), p.stageAddr(p.cacheSlot(int(a.slot))), uintptr(len(run))*PageSize, copyModeWP)
	if err == nil {
		for i := range run {
			run[i].ok = true
		}
		return
	}
	for i := range run { // page by page: some may be in already
		a := &run[i]
		err := p.u.copy(a.r.pageAddr(a.idx), p.stageAddr(p.cacheSlot(int(a.slot))), PageSize, copyModeWP)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			p.fail(fmt.Sprintf("install read-ahead page %d", a.idx), err)
			continue
		}
		a.ok = true
	}
}

// abandonPrefetch gives up read-ahead pages after a failure.
func (p *Pager) abandonPrefetch(ahead []readAhead) {
	p.mu.Lock()
	for _, a := range ahead {
		pg := &a.r.pages[a.idx]
		p.releaseSlotLocked(pg)
		p.releaseFrameLocked(pg)
		pg.state, pg.wpPending = stLost, false
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, a := range ahead {
		p.deny(a.r, a.r.pageAddr(a.idx))
	}
}
