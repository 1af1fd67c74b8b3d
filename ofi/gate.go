package ofi

import (
	"time"

	"golang.org/x/sys/unix"
)

// gateWaiter parks a goroutine until a libfabric wait fd becomes readable, as fdWaiter does,
// but the fd's events pass only while the gate is open. The wait fd sits in an epoll set of its
// own, edge-triggered, and Go's poller watches that set; shutting the gate empties the fd's
// event mask, and until it opens again the provider's activity on the fd wakes no thread.
// Opening it on a readable fd wakes the next wait.
//
// A queue's progress goroutine needs that while waiters poll the queue themselves. Go's poller
// watches a file for as long as it is open, so a wait fd handed to it directly wakes a thread
// (on another CPU) for each completion, however many goroutines are reaping the queue already,
// and on this project's 2-core machines a cross-CPU wake-up costs about 10 µs.
//
// One goroutine uses a gateWaiter (openGate, shut, wait); kick and close may come from any.
type gateWaiter struct {
	ep   int       // the epoll set holding fd (owned)
	fd   int       // the provider's wait fd (not owned)
	w    *fdWaiter // Go's poller on a dup of ep
	open bool      // the gate is open (as far as the waiting goroutine knows)

	// The wait in progress (one at a time): its skip test, whether an event passed, and the
	// ready test handed to Go's poller, made once so that a wait allocates nothing.
	skip  func() bool
	fired bool
	ready func(uintptr) bool
}

// newGateWaiter wraps the wait fd fd, its gate open. It fails when the fd cannot be watched
// (then callers poll).
func newGateWaiter(fd int) (*gateWaiter, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ev := unix.EpollEvent{Events: gateEvents}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(ep)
		return nil, err
	}
	w, err := newFDWaiter(ep)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	g := &gateWaiter{ep: ep, fd: fd, w: w, open: true}
	g.ready = func(uintptr) bool {
		g.fired = g.harvest()
		return g.fired || g.skip != nil && g.skip()
	}
	return g, nil
}

// openGate lets the fd's events through again; an fd readable now wakes the next wait.
func (g *gateWaiter) openGate() error { return g.set(true) }

// shut keeps the fd's events from waking anyone until the gate opens.
func (g *gateWaiter) shut() error { return g.set(false) }

// set opens or shuts the gate: the fd's event mask in the set is gateEvents or empty.
func (g *gateWaiter) set(open bool) error {
	if g.open == open {
		return nil
	}
	var ev unix.EpollEvent
	if open {
		ev.Events = gateEvents
	}
	if err := unix.EpollCtl(g.ep, unix.EPOLL_CTL_MOD, g.fd, &ev); err != nil {
		return err
	}
	g.open = open
	return nil
}

// gateEvents is the fd's event mask while the gate is open.
const gateEvents = unix.EPOLLIN | unix.EPOLLET

// wait parks until an event passes the gate (true), the deadline passes or kick is called
// (false, nil), or the waiter is closed (os.ErrClosed). If skip reports true once the deadline
// is set, it returns at once: a kick that came before cannot be lost to the new deadline.
func (g *gateWaiter) wait(deadline time.Time, skip func() bool) (bool, error) {
	g.skip, g.fired = skip, false
	err := g.w.await(deadline, g.ready)
	g.skip = nil
	return g.fired, err
}

// harvest takes the pending event off the set and reports whether there was one. Go's poller
// is edge-triggered: the set must be empty before the next wait.
func (g *gateWaiter) harvest() bool {
	var evs [1]unix.EpollEvent
	n, err := unix.EpollWait(g.ep, evs[:], 0)
	return err == nil && n > 0
}

// kick wakes a goroutine parked in wait.
func (g *gateWaiter) kick() { g.w.kick() }

// close releases the epoll set; the provider's fd stays open.
func (g *gateWaiter) close() error {
	err := g.w.close()
	if e := unix.Close(g.ep); err == nil {
		err = e
	}
	return err
}
