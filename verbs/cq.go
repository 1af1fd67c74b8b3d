package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// CQOptions tune CreateCQ.
type CQOptions struct {
	// Channel delivers completion events. Nil: the CQ gets a private channel (unless BusyPoll).
	Channel *CompChannel
	// Vector is the completion vector.
	Vector int
	// BusyPoll makes Wait spin on ibv_poll_cq (yielding the processor between polls) instead
	// of sleeping on the channel: lowest latency, one core busy.
	BusyPoll bool
	// Batch is how many completions one cgo call polls at most (default 32).
	Batch int
}

// CQ is a completion queue (struct ibv_cq). Poll and Wait are safe for concurrent use.
type CQ struct {
	g        guard
	c        *Context
	cq       *C.struct_ibv_cq
	ch       *CompChannel
	ownCh    bool
	busy     bool
	h        uint64
	cqe      int
	notified atomic.Bool
	failure  atomic.Pointer[error]

	mu    sync.Mutex // poll state below
	buf   []WC       // last polled batch
	pos   int        // first unconsumed entry of buf
	armed bool
}

// CreateCQ creates a completion queue of at least cqe entries.
func (c *Context) CreateCQ(cqe int, opts *CQOptions) (*CQ, error) {
	var o CQOptions
	if opts != nil {
		o = *opts
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	if cqe <= 0 || (c.attr.MaxCQE > 0 && cqe > c.attr.MaxCQE) {
		return nil, fmt.Errorf("%w: CQ size %d (device max %d)", ErrInvalid, cqe, c.attr.MaxCQE)
	}
	own := false
	if o.Channel == nil && !o.BusyPoll {
		ch, err := c.CreateCompChannel()
		if err != nil {
			return nil, err
		}
		o.Channel, own = ch, true
	}
	fail := func(err error) (*CQ, error) {
		if own {
			o.Channel.Close()
		}
		return nil, err
	}
	if err := c.g.enter(); err != nil {
		return fail(err)
	}
	defer c.g.leave()
	var chp *C.struct_ibv_comp_channel
	if o.Channel != nil {
		if err := o.Channel.g.enter(); err != nil {
			return fail(err)
		}
		defer o.Channel.g.leave()
		chp = o.Channel.ch
	}
	q := &CQ{c: c, ch: o.Channel, ownCh: own, busy: o.BusyPoll, buf: make([]WC, 0, o.Batch)}
	q.h = newHandle(q)
	cq, err := C.ibv_create_cq(c.ctx, C.int(cqe), nil, chp, C.int(o.Vector))
	if cq == nil {
		dropHandle(q.h)
		return fail(callError(fmt.Sprintf("ibv_create_cq(%d)", cqe), errnoOf(-1, err)))
	}
	C.rk_set_cq_context(cq, C.uint64_t(q.h))
	q.cq, q.cqe = cq, int(cq.cqe)
	if q.ch != nil {
		q.ch.users.Add(1)
	}
	c.kids.add(q)
	return q, nil
}

// Len returns the real number of entries (the device may round the request up).
func (q *CQ) Len() int { return q.cqe }

// Channel returns the completion channel (nil for a busy-poll CQ without one).
func (q *CQ) Channel() *CompChannel { return q.ch }

func (q *CQ) asyncEvent(t AsyncEventType) {
	if t != EventCQErr {
		return
	}
	err := fmt.Errorf("%w (%s)", ErrCQOverrun, t)
	q.failure.CompareAndSwap(nil, &err)
	if q.ch != nil {
		q.ch.pfd.kick()
	}
}

// fail sets an error that Poll and Wait return from now on (first error wins).
func (q *CQ) fail(err error) {
	q.failure.CompareAndSwap(nil, &err)
	if q.ch != nil {
		q.ch.pfd.kick()
	}
}

// Poll copies available completions into out without blocking and returns how many. It hands
// out the rest of a previously polled batch first; when out is shorter than a batch, the
// unconsumed completions are kept for the next caller. After a CQ error (overrun) it returns
// the error once the already-polled completions are consumed.
func (q *CQ) Poll(out []WC) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	if err := q.g.enter(); err != nil {
		return 0, err
	}
	defer q.g.leave()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pollLocked(out)
}

func (q *CQ) pollLocked(out []WC) (int, error) {
	if q.pos < len(q.buf) {
		n := copy(out, q.buf[q.pos:])
		q.pos += n
		return n, nil
	}
	if p := q.failure.Load(); p != nil {
		return 0, *p
	}
	if len(out) >= cap(q.buf) {
		n := C.rk_poll_cq(q.cq, (*C.rk_wc)(unsafe.Pointer(&out[0])), C.int(len(out)))
		if n < 0 {
			return 0, callError("ibv_poll_cq", syscall.EIO)
		}
		return int(n), nil
	}
	q.buf = q.buf[:cap(q.buf)]
	n := C.rk_poll_cq(q.cq, (*C.rk_wc)(unsafe.Pointer(&q.buf[0])), C.int(len(q.buf)))
	if n < 0 {
		q.buf, q.pos = q.buf[:0], 0
		return 0, callError("ibv_poll_cq", syscall.EIO)
	}
	q.buf, q.pos = q.buf[:int(n)], 0
	c := copy(out, q.buf)
	q.pos = c
	return c, nil
}

// arm requests a completion event (ibv_req_notify_cq) unless one is pending.
func (q *CQ) arm() error {
	if err := q.g.enter(); err != nil {
		return err
	}
	defer q.g.leave()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.armed {
		return nil
	}
	if rc := C.ibv_req_notify_cq(q.cq, 0); rc != 0 {
		return callError("ibv_req_notify_cq", syscall.Errno(rc))
	}
	q.armed = true
	return nil
}

// Wait blocks until at least one completion is available, copies up to len(out) of them and
// returns how many. It honours ctx (ErrTimeout / ErrCanceled) and returns ErrClosed when the
// CQ is closed meanwhile. Sleeping follows the race-free pattern: poll, arm
// (ibv_req_notify_cq), poll again, then park in the netpoller; on wake-up the channel is
// drained until EAGAIN with events acknowledged in batches.
func (q *CQ) Wait(ctx context.Context, out []WC) (int, error) {
	if len(out) == 0 {
		return 0, fmt.Errorf("%w: Wait with an empty buffer", ErrInvalid)
	}
	for spins := 0; ; spins++ {
		n, err := q.Poll(out)
		if n > 0 || err != nil {
			return n, err
		}
		if q.busy || q.ch == nil {
			if spins&63 == 0 {
				if err := ctxError(ctx); err != nil {
					return 0, err
				}
			}
			runtime.Gosched()
			continue
		}
		if err := q.arm(); err != nil {
			return 0, err
		}
		if n, err = q.Poll(out); n > 0 || err != nil {
			return n, err
		}
		err = q.ch.wait(ctx, func() (bool, error) {
			if q.notified.Swap(false) {
				q.mu.Lock()
				q.armed = false
				q.mu.Unlock()
				return true, nil
			}
			if q.g.isClosed() {
				return false, ErrClosed
			}
			if q.failure.Load() != nil {
				return true, nil
			}
			return false, nil
		})
		if err != nil {
			return 0, err
		}
	}
}

// Close destroys the CQ (and its private channel). Close the QPs using it first (or close the
// Context); otherwise it fails with EBUSY. A goroutine blocked in Wait returns ErrClosed. It
// is idempotent.
func (q *CQ) Close() error {
	did := false
	err := q.g.shut(func() error {
		if rc := C.ibv_destroy_cq(q.cq); rc != 0 {
			return callError("ibv_destroy_cq", syscall.Errno(rc))
		}
		dropHandle(q.h)
		did = true
		return nil
	})
	if err != nil || !did {
		return err
	}
	q.c.kids.remove(q)
	if q.ch != nil {
		q.ch.users.Add(-1)
		q.ch.pfd.kick()
		if q.ownCh {
			return q.ch.Close()
		}
	}
	return nil
}
