package pager

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// evictLoop keeps a reserve of free frames: it wakes on a period and whenever a fault finds
// the reserve short. It runs on a locked thread and reads paged memory only for pages it has
// just write-protected while they are resident, which cannot fault.
func (p *Pager) evictLoop() {
	runtime.LockOSThread()
	defer p.wg.Done()
	t := time.NewTicker(p.opt.EvictPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.kick:
		}
		p.evictToReserve()
	}
}

type victim struct {
	r        *Region
	idx      int
	dirty    bool
	onServer bool
	write    bool // to be written back
}

func (p *Pager) evictToReserve() {
	for {
		p.mu.Lock()
		if p.failed != nil || p.closed {
			p.mu.Unlock()
			return
		}
		need := min(p.lowWater-len(p.free), evictBatch)
		if need <= 0 {
			p.mu.Unlock()
			return
		}
		vs := p.pickLocked(need)
		p.mu.Unlock()
		if len(vs) == 0 {
			return // every frame is in flight; the next kick retries
		}
		p.evict(vs)
	}
}

// pickLocked runs the CLOCK hand over the frames and claims up to n victims: resident pages
// whose reference bit is clear (the bit is cleared as the hand passes). References are what
// user space can see: page-ins and first writes after a write-back.
func (p *Pager) pickLocked(n int) []victim {
	var vs []victim
	for steps := 0; steps < 2*len(p.frames) && len(vs) < n; steps++ {
		fi := p.hand
		p.hand = (p.hand + 1) % len(p.frames)
		ref := p.frames[fi]
		if ref.r == nil || ref.r.closing {
			continue
		}
		pg := &ref.r.pages[ref.idx]
		if pg.state != stResident || pg.pins > 0 {
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

// evict writes back the dirty victims in one batch of RDMA writes, then drops all victims.
func (p *Pager) evict(vs []victim) {
	var ops []fabric.Op
	for i := range vs {
		v := &vs[i]
		if !v.dirty {
			continue // write-protected since its last write-back: its server copy is current
		}
		addr := v.r.pageAddr(v.idx)
		// Block writers before copying; a write that lands first is in the copy.
		if err := p.u.writeProtect(addr, PageSize, true, false); err != nil {
			p.log.Error("pager: write-protect for eviction", "addr", fmt.Sprintf("%#x", addr), "err", err)
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
	if len(ops) > 0 {
		ctx, cancel := p.ctx()
		err := p.rma(func() error { return p.conn.Do(ctx, ops) })
		cancel()
		if err != nil {
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
	for _, v := range vs {
		if err := unix.Madvise(v.r.mem[v.idx*PageSize:(v.idx+1)*PageSize], unix.MADV_DONTNEED); err != nil {
			p.log.Error("pager: MADV_DONTNEED", "err", err)
		}
	}
	p.mu.Lock()
	for _, v := range vs {
		pg := &v.r.pages[v.idx]
		pg.onServer = pg.onServer || v.write
		pg.state = stNone
		if pg.onServer {
			pg.state = stRemote
		}
		pg.dirty, pg.ref = false, false
		p.frames[pg.frame] = pageRef{}
		p.free = append(p.free, pg.frame)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.c.evictions.Add(uint64(len(vs)))
	for _, v := range vs {
		p.u.wake(v.r.pageAddr(v.idx), PageSize) // writers that hit the protection fault it back in
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
