package pager

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// msgBatch is the most fault messages a handler reads, and serves together, at once.
const msgBatch = 16

// handler is one fault-service loop: its epoll instance and the scratch space it reuses for
// every batch, so that serving a fault allocates nothing.
type handler struct {
	id      int
	ep      int // epoll instance: the userfaultfd (exclusive wake-ups) and the stop eventfd
	oc      *opContext
	msgs    [msgBatch * msgSize]byte
	faults  []fault
	claims  []claim
	ops     []fabric.Op
	wakes   []uintptr // addresses to wake after the batch (duplicate or stale messages)
	lost    []pageRef // pages to deny after the batch
	ahead   []readAhead
	victims []victim // for evicting on behalf of read-ahead
}

// newHandler sets up handler id's epoll instance. The userfaultfd is watched with
// EPOLLEXCLUSIVE, so a fault wakes one idle handler rather than all of them: on a small
// machine a herd of woken handlers competes with the one that serves the fault.
func newHandler(id, ufd, stopfd int) (*handler, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pager: epoll: %w", err)
	}
	evs := []unix.EpollEvent{{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(ufd)},
		{Events: unix.EPOLLIN, Fd: int32(stopfd)}}
	for i := range evs {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, int(evs[i].Fd), &evs[i]); err != nil {
			unix.Close(ep)
			return nil, fmt.Errorf("pager: epoll: %w", err)
		}
	}
	return &handler{id: id, ep: ep, oc: newOpContext(), faults: make([]fault, 0, msgBatch),
		claims: make([]claim, 0, msgBatch)}, nil
}

// handle is one fault-service loop. It sleeps in epoll until the userfaultfd has messages,
// reads the pending ones in one batch and serves them. (Waiting first, rather than reading
// until EAGAIN, saves a system call per fault; the userfaultfd is level-triggered, so a
// message that arrives while the loop is busy is reported by the next wait.) It touches only
// the userfaultfd, the staging memory and the pager's tables, never paged memory, so it can
// never fault on a page it is meant to serve.
func (p *Pager) handle(h *handler) {
	defer p.wg.Done()
	var evs [2]unix.EpollEvent
	for {
		k, err := unix.EpollWait(h.ep, evs[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.log.Error("pager: epoll_wait", "err", err)
			return
		}
		for _, e := range evs[:k] {
			if e.Fd == int32(p.stopfd) {
				return
			}
		}
		n, err := p.u.read(h.msgs[:])
		switch {
		case err == unix.EAGAIN, err == unix.EINTR:
			continue // another loop took them
		case err != nil:
			p.log.Error("pager: read userfaultfd", "err", err)
			return
		}
		t0 := time.Now()
		h.faults = h.faults[:0]
		for off := 0; off+msgSize <= n; off += msgSize {
			if f, ok := decodeMsg(h.msgs[off : off+msgSize]); ok {
				h.faults = append(h.faults, f)
			}
		}
		p.serveBatch(h, t0)
	}
}
