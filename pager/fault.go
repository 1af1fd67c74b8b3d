package pager

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// handle is one fault-handler thread. It runs locked to its OS thread and touches only the
// userfaultfd, the staging memory and the pager's tables: never paged memory, so it can never
// fault on a page it is meant to serve.
func (p *Pager) handle(h int) {
	runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
	defer p.wg.Done()
	var msg [msgSize]byte
	fds := []unix.PollFd{{Fd: int32(p.u.fd), Events: unix.POLLIN}, {Fd: int32(p.stopfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Read(p.u.fd, msg[:])
		switch {
		case err == unix.EAGAIN:
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				p.log.Error("pager: poll userfaultfd", "err", err)
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			continue
		case err == unix.EINTR:
			continue
		case err != nil:
			p.log.Error("pager: read userfaultfd", "err", err)
			return
		}
		f, ok := decodeMsg(msg[:n])
		if !ok {
			continue
		}
		p.serve(h, f, time.Now())
	}
}

// serve answers one fault.
func (p *Pager) serve(h int, f fault, t0 time.Time) {
	addr := f.addr &^ (PageSize - 1)
	p.mu.Lock()
	r, idx := p.lookupLocked(addr)
	if r == nil || r.closing {
		p.mu.Unlock()
		p.u.wake(addr, PageSize)
		return
	}
	pg := &r.pages[idx]
	if f.wp {
		p.serveWPLocked(pg, addr)
		return
	}
	// A missing page. Wait for a free frame unless someone else is already on it.
	for {
		switch pg.state {
		case stResident: // already served: a duplicate message
			p.mu.Unlock()
			p.u.wake(addr, PageSize)
			return
		case stFetching, stEvicting: // whoever owns it wakes every waiter on the page
			p.mu.Unlock()
			return
		case stLost:
			p.mu.Unlock()
			p.deny(r, addr)
			return
		}
		if p.failed != nil {
			pg.state = stLost
			p.mu.Unlock()
			p.deny(r, addr)
			return
		}
		if len(p.free) > 0 {
			break
		}
		select {
		case p.kick <- struct{}{}:
		default:
		}
		p.cond.Wait()
		if r.closing {
			p.mu.Unlock()
			p.u.wake(addr, PageSize)
			return
		}
	}
	fi := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.frames[fi] = pageRef{r, idx}
	prev := pg.state
	pg.state, pg.frame = stFetching, fi
	if len(p.free) < p.lowWater {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	var ahead []pageRef
	if p.opt.Prefetch > 0 && !r.noAhead {
		ahead = p.planPrefetchLocked(r, idx, prev == stCached)
	}
	p.mu.Unlock()

	// Install the page without waking anyone: the state must say resident before a thread can
	// write to it, or its write-protect fault would find the page still in flight.
	mode := uint64(copyModeDontWake)
	if !f.write {
		mode |= copyModeWP
	}
	var err error
	switch prev {
	case stNone:
		p.c.zero.Add(1)
		if f.write {
			err = p.u.copy(addr, p.stageAddr(p.zeroSlot()), PageSize, mode)
		} else {
			// The zero page comes without write protection (protecting it afterwards would
			// race with writers), so it counts as dirty; the evictor drops it without traffic
			// if it is still all zeros.
			err = p.u.zeropage(addr, PageSize, zeroModeDontWake)
		}
	case stCached:
		p.c.prefetchHits.Add(1)
		err = p.u.copy(addr, p.stageAddr(p.cacheSlot(int(pg.slot))), PageSize, mode)
	default:
		p.c.major.Add(1)
		ctx, cancel := p.ctx()
		err = p.rma(func() error {
			return p.conn.Read(ctx, p.stage, p.demandSlot(h), r.remote, uint64(idx)*PageSize, PageSize)
		})
		cancel()
		if err != nil {
			p.fail(fmt.Sprintf("RDMA read of page %d of slab %d", idx, r.slab), err)
			p.lose(r, idx, addr)
			p.abandonPrefetch(ahead)
			return
		}
		p.c.reads.Add(1)
		err = p.u.copy(addr, p.stageAddr(p.demandSlot(h)), PageSize, mode)
	}
	if errors.Is(err, unix.EEXIST) {
		err = nil // mapped already (cannot happen while we own the page; harmless if it does)
	}
	if err != nil {
		p.fail(fmt.Sprintf("install page %d", idx), err)
		p.lose(r, idx, addr)
		p.abandonPrefetch(ahead)
		return
	}

	p.mu.Lock()
	if prev == stCached {
		p.cache[pg.slot] = pageRef{}
		p.cacheFree = append(p.cacheFree, pg.slot)
	}
	pg.state, pg.ref = stResident, true
	pg.dirty = f.write || prev == stNone
	pg.onServer = pg.onServer || prev == stRemote || prev == stCached
	if pg.wpPending {
		pg.wpPending = false
		if !pg.dirty {
			pg.dirty = true
			p.u.writeProtect(addr, PageSize, false, false)
		}
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.u.wake(addr, PageSize)
	p.c.faults.Add(1)
	p.c.lat.add(time.Since(t0))

	if len(ahead) > 0 {
		p.prefetch(ahead)
	}
}

// serveWPLocked answers a write to a write-protected page: the page becomes dirty and
// writable. Called with p.mu held; releases it.
func (p *Pager) serveWPLocked(pg *page, addr uintptr) {
	switch pg.state {
	case stResident:
		pg.dirty, pg.ref = true, true
		// Under the lock, so the evictor cannot protect the page again in between.
		err := p.u.writeProtect(addr, PageSize, false, true)
		p.mu.Unlock()
		p.c.wp.Add(1)
		if err != nil {
			p.log.Error("pager: clear write protection", "addr", fmt.Sprintf("%#x", addr), "err", err)
		}
	case stFetching:
		pg.wpPending = true // the installer makes it writable
		p.mu.Unlock()
	case stEvicting:
		p.mu.Unlock() // the evictor wakes the writer when the page is gone; it then faults it back
	default:
		p.mu.Unlock()
		p.u.wake(addr, PageSize) // stale: let it retry
	}
}

// lose marks a page that could not be served and denies it.
func (p *Pager) lose(r *Region, idx int, addr uintptr) {
	p.mu.Lock()
	pg := &r.pages[idx]
	if pg.state == stFetching {
		p.frames[pg.frame] = pageRef{}
		p.free = append(p.free, pg.frame)
	}
	pg.state = stLost
	p.cond.Broadcast()
	p.mu.Unlock()
	p.deny(r, addr)
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

// prefetch reads ahead pages planned by planPrefetchLocked into the prefetch cache.
func (p *Pager) prefetch(ahead []pageRef) {
	ops := make([]fabric.Op, len(ahead))
	p.mu.Lock()
	for i, a := range ahead {
		ops[i] = fabric.Op{Kind: fabric.OpRead, Mem: p.stage, Off: p.cacheSlot(int(a.r.pages[a.idx].slot)),
			Len: PageSize, Remote: a.r.remote, RemoteOff: uint64(a.idx) * PageSize}
	}
	p.mu.Unlock()
	ctx, cancel := p.ctx()
	err := p.rma(func() error { return p.conn.Do(ctx, ops) })
	cancel()
	if err != nil {
		p.fail("RDMA read ahead", err)
		p.abandonPrefetch(ahead)
		return
	}
	p.c.reads.Add(uint64(len(ahead)))
	p.c.prefetched.Add(uint64(len(ahead)))
	p.mu.Lock()
	for _, a := range ahead {
		a.r.pages[a.idx].state = stCached
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, a := range ahead {
		p.u.wake(a.r.pageAddr(a.idx), PageSize) // threads that faulted while it was in flight
	}
}

// abandonPrefetch gives up read-ahead pages after a failure.
func (p *Pager) abandonPrefetch(ahead []pageRef) {
	p.mu.Lock()
	for _, a := range ahead {
		pg := &a.r.pages[a.idx]
		p.cache[pg.slot] = pageRef{}
		p.cacheFree = append(p.cacheFree, pg.slot)
		pg.state = stLost
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, a := range ahead {
		p.deny(a.r, a.r.pageAddr(a.idx))
	}
}
