package pager

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// evictLoop keeps a reserve of free frames, so that faults find a frame without waiting for
// an eviction: it wakes on a period and whenever the reserve runs low (or read-ahead wants
// more frames than are spare), and evicts in batches until the reserve is full again. It
// reads paged memory only for pages it has just write-protected while they are resident,
// which cannot fault.
func (p *Pager) evictLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.opt.EvictPeriod)
	defer t.Stop()
	vs := make([]victim, 0, evictBatch)
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.kick:
		}
		vs = p.refill(vs)
	}
}

type victim struct {
	r        *Region
	idx      int
	dirty    bool
	onServer bool
	write    bool // to be written back
}

// refill evicts until highWater frames are free, in batches of at most evictBatch pages. vs
// is scratch space, returned for reuse.
func (p *Pager) refill(vs []victim) []victim {
	for {
		p.mu.Lock()
		if p.failed != nil || p.closed {
			p.mu.Unlock()
			return vs
		}
		need := min(p.highWater-len(p.free), evictBatch)
		if need <= 0 {
			p.mu.Unlock()
			return vs
		}
		vs = p.pickLocked(need, vs[:0])
		p.mu.Unlock()
		if len(vs) == 0 {
			return vs // every frame is in flight or pinned; the next wake-up retries
		}
		p.evict(vs)
	}
}

// pickLocked runs the CLOCK hand over the frames and claims up to n victims, appended to vs:
// resident pages whose reference bit is clear (the bit is cleared as the hand passes).
// References are what user space can see: page-ins and first writes after a write-back.
// Read-ahead pages the access stream has not reached yet are spared for the first sweep.
func (p *Pager) pickLocked(n int, vs []victim) []victim {
	for steps := 0; steps < 2*len(p.frames) && len(vs) < n; steps++ {
		fi := p.hand
		p.hand = (p.hand + 1) % len(p.frames)
		ref := p.frames[fi]
		if ref.r == nil || ref.r.closing {
			continue
		}
		pg := &ref.r.pages[ref.idx]
		if pg.state != stResident || pg.pins > 0 || pg.ahead && steps < len(p.frames) {
			continue
		}
		if pg.ref {
			pg.ref = false
			continue
		}
		pg.state = stEvicting
		vs = append(vs, victim{r: ref.r, idx: ref.idx, dirty: pg.dirty, onServer: pg.onServer})
	}
	return vs
}

// evict writes back the dirty victims in one batch of RDMA writes, then drops all victims in
// one batch. Runs of neighbouring pages are protected, dropped and woken by one call each.
func (p *Pager) evict(vs []victim) {
	p.evictMu.Lock() // the evict slots and the dropper are shared
	defer p.evictMu.Unlock()
	slices.SortFunc(vs, func(a, b victim) int {
		if a.r != b.r {
			return cmp.Compare(a.r.base, b.r.base)
		}
		return a.idx - b.idx
	})
	dirty := func(v *victim) bool { return v.dirty }
	all := func(*victim) bool { return true }
	// Block writers before copying; a write that lands first is in the copy. (A dirty page is
	// writable: written since its last write-back, or the zero page.)
	forRuns(vs, dirty, func(r *Region, lo, hi int) {
		if err := p.u.writeProtect(r.pageAddr(lo), uintptr(hi-lo)*PageSize, true, false); err != nil {
			p.log.Error("pager: write-protect for eviction", "addr", fmt.Sprintf("%#x", r.pageAddr(lo)), "err", err)
		}
	})
	ops := p.evictOps[:0]
	for i := range vs {
		v := &vs[i]
		if !v.dirty {
			continue // write-protected since its last write-back: its server copy is current
		}
		src := v.r.mem[v.idx*PageSize : (v.idx+1)*PageSize]
		if !v.onServer && allZero(src) {
			continue // never written back and still zeros: stays a zero page
		}
		slot := p.evictSlot(len(ops))
		copy(p.stage.Bytes()[slot:slot+PageSize], src)
		v.write = true
		ops = append(ops, fabric.Op{Kind: fabric.OpWrite, Mem: p.stage, Off: slot, Len: PageSize,
			Remote: v.r.remote, RemoteOff: uint64(v.idx) * PageSize})
	}
	p.evictOps = ops
	if len(ops) > 0 {
		if err := p.do(p.evictOC, ops); err != nil {
			p.fail("RDMA write-back", err)
			// Keep the pages: they hold the only copy. Writers blocked on them may go on.
			p.mu.Lock()
			for _, v := range vs {
				pg := &v.r.pages[v.idx]
				pg.state = stResident
				pg.dirty = true
				p.u.writeProtect(v.r.pageAddr(v.idx), PageSize, false, true)
			}
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		p.c.writes.Add(uint64(len(ops)))
	}
	forRuns(vs, all, func(r *Region, lo, hi int) { p.dropper.add(r.mem[lo*PageSize : hi*PageSize]) })
	if err := p.dropper.flush(); err != nil {
		p.log.Error("pager: MADV_DONTNEED", "err", err)
	}
	p.mu.Lock()
	for _, v := range vs {
		pg := &v.r.pages[v.idx]
		pg.onServer = pg.onServer || v.write
		pg.state = stNone
		if pg.onServer {
			pg.state = stRemote
		}
		pg.dirty, pg.ref, pg.ahead = false, false, false
		p.releaseFrameLocked(pg)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.c.evictions.Add(uint64(len(vs)))
	// Writers that hit the protection fault the pages back in.
	forRuns(vs, all, func(r *Region, lo, hi int) { p.u.wake(r.pageAddr(lo), uintptr(hi-lo)*PageSize) })
}

// forRuns calls fn for every run of victims that pass keep and are neighbouring pages
// [lo, hi) of one region. vs is sorted by region and page.
func forRuns(vs []victim, keep func(*victim) bool, fn func(r *Region, lo, hi int)) {
	for i := 0; i < len(vs); {
		if !keep(&vs[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(vs) && keep(&vs[j]) && vs[j].r == vs[i].r && vs[j].idx == vs[j-1].idx+1 {
			j++
		}
		fn(vs[i].r, vs[i].idx, vs[j-1].idx+1)
		i = j
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
