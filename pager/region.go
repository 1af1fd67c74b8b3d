package pager

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// page states
const (
	stNone     uint8 = iota // never written back: reads as zeros
	stRemote                // its bytes are on the server
	stFetching              // being installed (or read ahead) by a handler
	stCached                // read ahead, waiting in the prefetch cache
	stResident              // mapped
	stEvicting              // being written back and dropped
	stLost                  // could not be served: poisoned
)

type page struct {
	state     uint8
	dirty     bool  // resident and written since its last write-back
	ref       bool  // CLOCK reference bit: set on page-in and on first write
	onServer  bool  // the server holds this page's bytes
	wpPending bool  // a write-protect fault arrived while the page was being installed
	framed    bool  // holds a budget frame (resident, evicting, or being installed)
	ahead     bool  // installed by read-ahead and not yet passed by the region's faults
	slot      int32 // prefetch cache slot (stCached, or stFetching for a read-ahead)
	frame     int32 // budget frame, when framed
	pins      int32 // ReadAt/WriteAt copying: not to be evicted
}

// Region is paged memory: an anonymous mapping whose pages live on a server slab and are
// brought in on fault.
type Region struct {
	p      *Pager
	mem    []byte
	base   uintptr
	slab   uint64
	remote fabric.Remote

	// guarded by p.mu
	pages   []page
	closing bool
	hist    [historyLen]int // recent faulting page indexes, for trend detection
	nhist   int
	win     int   // current read-ahead window
	stride  int   // stride of the last read-ahead, 0 if none
	ahead   []int // pages installed by read-ahead and not yet passed, in install order
	noAhead bool
}

// SetReadAhead turns read-ahead on (the default) or off for the region, as for data known to
// be accessed at random.
func (r *Region) SetReadAhead(on bool) {
	r.p.mu.Lock()
	r.noAhead = !on
	r.p.mu.Unlock()
}

// Bytes is the paged memory, valid until Close. Touching a non-resident page blocks the
// touching thread until the pager has brought the page in.
func (r *Region) Bytes() []byte { return r.mem }

// Len is the region's size in bytes.
func (r *Region) Len() int { return len(r.mem) }

// Close drops the region's pages without writing them back, unmaps it and releases its slab
// on the server. Nothing may touch the region's bytes afterwards. Idempotent.
func (r *Region) Close() error {
	p := r.p
	p.mu.Lock()
	if r.closing {
		p.mu.Unlock()
		return nil
	}
	r.closing = true
	for r.busyLocked() {
		p.cond.Wait()
	}
	for i := range r.pages {
		pg := &r.pages[i]
		switch pg.state {
		case stResident:
			p.releaseFrameLocked(pg)
		case stCached:
			p.releaseSlotLocked(pg)
		}
		pg.state, pg.ahead = stNone, false
	}
	r.ahead = r.ahead[:0]
	for i, x := range p.regions {
		if x == r {
			p.regions = append(p.regions[:i], p.regions[i+1:]...)
			break
		}
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	var errs []error
	if err := p.u.unregister(r.base, uintptr(len(r.mem))); err != nil {
		errs = append(errs, fmt.Errorf("pager: UFFDIO_UNREGISTER: %w", err))
	}
	if err := unix.Munmap(r.mem); err != nil {
		errs = append(errs, fmt.Errorf("pager: munmap: %w", err))
	}
	if err := p.freeSlab(r.slab); err != nil {
		errs = append(errs, fmt.Errorf("pager: release slab %d: %w", r.slab, err))
	}
	return errors.Join(errs...)
}

// busyLocked reports whether a handler or the evictor is working on one of the region's pages.
func (r *Region) busyLocked() bool {
	for i := range r.pages {
		if s := r.pages[i].state; s == stFetching || s == stEvicting {
			return true
		}
	}
	return false
}

func (r *Region) pageAddr(i int) uintptr { return r.base + uintptr(i)*PageSize }
