package pager

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// claim is a missing page a handler has taken on: in flight (stFetching), with a frame.
type claim struct {
	r     *Region
	idx   int
	addr  uintptr
	prev  uint8 // stNone (zero fill), stRemote (read it) or stCached (copy it from the cache)
	slot  int32 // the cache slot, for stCached
	write bool  // a write to the missing page: installed writable and dirty
	ok    bool  // installed
}

// serveBatch answers a batch of fault messages: the pages missing are claimed, read from the
// server in one batch of RDMA READs and installed, each waking its threads as it lands;
// read-ahead the faults call for runs after that, off their critical path.
func (p *Pager) serveBatch(h *handler, t0 time.Time) {
	for fs := h.faults; len(fs) > 0; {
		n := p.claim(h, fs)
		fs = fs[n:]
		p.install(h, t0)
		for _, a := range h.wakes {
			p.u.wake(a, PageSize)
		}
		for _, l := range h.lost {
			p.deny(l.r, l.r.pageAddr(l.idx))
		}
		if len(h.ahead) > 0 {
			p.prefetch(h)
		}
	}
}

// claim takes on the missing pages of fs (and answers its write-protect faults) until the
// free frames run out, and returns how many messages it used. It waits for a frame only
// with nothing else of the batch pending: frames of claimed pages come back only when they
// are installed, and threads to be woken should not wait for the evictor.
func (p *Pager) claim(h *handler, fs []fault) int {
	h.claims, h.wakes, h.lost, h.ahead = h.claims[:0], h.wakes[:0], h.lost[:0], h.ahead[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for ; i < len(fs); i++ {
		f := fs[i]
		addr := f.addr &^ (PageSize - 1)
		r, idx := p.lookupLocked(addr)
		if r == nil || r.closing {
			h.wakes = append(h.wakes, addr)
			continue
		}
		pg := &r.pages[idx]
		if f.wp {
			p.serveWPLocked(h, pg, addr)
			continue
		}
		switch pg.state {
		case stResident: // already served: a duplicate message
			h.wakes = append(h.wakes, addr)
			continue
		case stFetching, stEvicting: // whoever owns it wakes every waiter on the page
			continue
		case stLost:
			h.lost = append(h.lost, pageRef{r, idx})
			continue
		}
		if p.failed != nil {
			pg.state = stLost
			h.lost = append(h.lost, pageRef{r, idx})
			continue
		}
		if len(p.free) == 0 {
			p.wakeEvictor()
			if len(h.claims)+len(h.wakes)+len(h.lost) > 0 {
				break // serve what this batch holds first
			}
			p.cond.Wait()
			i-- // look the fault up again: the region may be closing
			continue
		}
		prev := pg.state
		p.takeFrameLocked(r, idx)
		pg.state = stFetching
		h.claims = append(h.claims, claim{r: r, idx: idx, addr: addr, prev: prev, slot: pg.slot, write: f.write})
		if p.opt.Prefetch > 0 && !r.noAhead {
			h.ahead = p.planPrefetchLocked(r, idx, prev == stCached, h.ahead)
		}
	}
	if len(p.free) < p.lowWater {
		p.wakeEvictor()
	}
	return i
}

// install reads the claimed pages that live on the server in one batch, installs every
// claimed page and records the outcome.
func (p *Pager) install(h *handler, t0 time.Time) {
	if len(h.claims) == 0 {
		return
	}
	h.ops = h.ops[:0]
	for k := range h.claims {
		if c := &h.claims[k]; c.prev == stRemote {
			h.ops = append(h.ops, fabric.Op{Kind: fabric.OpRead, Mem: p.stage, Off: p.demandSlot(h.id, k),
				Len: PageSize, Remote: c.r.remote, RemoteOff: uint64(c.idx) * PageSize})
		}
	}
	if len(h.ops) > 0 {
		if err := p.do(h.oc, h.ops); err != nil {
			c := h.claims[0]
			p.fail(fmt.Sprintf("RDMA read of %d pages (page %d of slab %d first)", len(h.ops), c.idx, c.r.slab), err)
			p.commit(h) // every claim is lost: none is marked installed
			p.abandonPrefetch(h.ahead)
			h.ahead = h.ahead[:0]
			return
		}
		p.c.major.Add(uint64(len(h.ops)))
		p.c.reads.Add(uint64(len(h.ops)))
	}
	// UFFDIO_COPY and UFFDIO_ZEROPAGE wake the page's threads as soon as it is in place (so
	// the faults are counted first: a woken thread may read the stats). A write-protect
	// fault that arrives before the commit below finds the page still in flight and is left
	// pending for it.
	p.c.faults.Add(uint64(len(h.claims)))
	for k := range h.claims {
		c := &h.claims[k]
		mode := uint64(0)
		if !c.write {
			mode = copyModeWP // a clean page: its first write is a write-protect fault
		}
		var err error
		switch c.prev {
		case stNone:
			p.c.zero.Add(1)
			if c.write {
				err = p.u.copy(c.addr, p.stageAddr(p.zeroSlot()), PageSize, 0)
			} else {
				// The zero page comes without write protection (protecting it afterwards would
				// race with writers), so it counts as dirty; the evictor drops it without
				// traffic if it is still all zeros.
				err = p.u.zeropage(c.addr, PageSize, 0)
			}
		case stCached:
			p.c.prefetchHits.Add(1)
			err = p.u.copy(c.addr, p.stageAddr(p.cacheSlot(int(c.slot))), PageSize, mode)
		default:
			err = p.u.copy(c.addr, p.stageAddr(p.demandSlot(h.id, k)), PageSize, mode)
		}
		if errors.Is(err, unix.EEXIST) {
			err = nil // mapped already (cannot happen while we own the page; harmless if it does)
		}
		if err != nil {
			p.fail(fmt.Sprintf("install page %d", c.idx), err)
			continue
		}
		c.ok = true
		p.c.lat.add(time.Since(t0))
	}
	p.commit(h)
}

// commit records the claimed pages as resident, or as lost if they were not installed.
func (p *Pager) commit(h *handler) {
	p.mu.Lock()
	for k := range h.claims {
		c := &h.claims[k]
		pg := &c.r.pages[c.idx]
		if c.prev == stCached {
			p.releaseSlotLocked(pg)
		}
		if !c.ok {
			p.releaseFrameLocked(pg)
			pg.state, pg.wpPending = stLost, false
			h.lost = append(h.lost, pageRef{c.r, c.idx})
			continue
		}
		pg.state, pg.ref = stResident, true
		pg.dirty = c.write || c.prev == stNone
		pg.onServer = pg.onServer || c.prev != stNone
		if pg.wpPending {
			// A write while the page was in flight: lift the protection, wake the writer.
			pg.wpPending, pg.dirty = false, true
			p.u.writeProtect(c.addr, PageSize, false, true)
		}
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// serveWPLocked answers a write to a write-protected page: the page becomes dirty and
// writable. Called with p.mu held.
func (p *Pager) serveWPLocked(h *handler, pg *page, addr uintptr) {
	switch pg.state {
	case stResident:
		pg.dirty, pg.ref = true, true
		// Under the lock, so the evictor cannot protect the page again in between.
		err := p.u.writeProtect(addr, PageSize, false, true)
		p.c.wp.Add(1)
		if err != nil {
			p.log.Error("pager: clear write protection", "addr", fmt.Sprintf("%#x", addr), "err", err)
		}
	case stFetching:
		pg.wpPending = true // the installer makes it writable
	case stEvicting:
		// the evictor wakes the writer when the page is gone; it then faults it back
	default:
		h.wakes = append(h.wakes, addr) // stale: let it retry
	}
}

// deny answers a fault that cannot be served: never with made-up data. With UFFDIO_POISON the
// page is poisoned and the faulting thread gets SIGBUS; without it the whole region loses
// access and the thread gets SIGSEGV.
func (p *Pager) deny(r *Region, addr uintptr) {
	if p.u.poison {
		if err := p.u.poisonPage(addr, PageSize); err == nil || errors.Is(err, unix.EEXIST) {
			return
		}
	}
	unix.Mprotect(r.mem, unix.PROT_NONE)
	p.u.wake(r.base, uintptr(len(r.mem)))
}
