package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// CQAttr configures OpenCQ.
type CQAttr struct {
	// Size is the queue depth and the most operations in flight on the queue (default 1024).
	Size int
	// NoWaitFD makes the queue poll instead of using a FI_WAIT_FD wait object. Without it the
	// wait fd is used where the provider has one and polling otherwise.
	NoWaitFD bool
	// Spin is how long a blocking call polls the queue itself before it parks (default 20µs).
	// A negative value never spins; a long one is busy polling.
	Spin time.Duration
	// Source reads completions with fi_cq_readfrom, which reports senders' addresses.
	Source bool
	// Linger is how long the progress goroutine keeps polling a queue with a wait fd after
	// the fd woke it (default 100µs; negative: never), and again after every poll that moved a
	// peer's data, unless an operation is posted on the queue meanwhile (its waiter polls).
	// A target of RMA and atomics is served only by progress: asleep, each request costs it a
	// wake-up through Go's poller, which on a small machine takes longer than the request, and
	// a peer that sends its next request a few µs later than the last finds it asleep again.
	// Lingering keeps such a target awake between a peer's back-to-back requests, at the cost
	// of polling a core for up to Linger after the last one. A provider with automatic data
	// progress (FI_PROGRESS_AUTO: sockets), which progresses in threads of its own, never
	// lingers.
	Linger time.Duration
}

// CQ is a completion queue (fi_cq_open, FI_CQ_FORMAT_TAGGED) with the machinery that turns
// completions into finished operations: a table of operation slots whose integer index is the
// operation context libfabric carries, leader/follower draining so whichever goroutine waits
// reaps for all, and one progress goroutine per queue that parks in Go's netpoller on the
// queue's wait fd (or polls with backoff) so providers with manual progress move data even
// when nobody waits, as a target of remote RMA and atomics needs.
type CQ struct {
	node
	c      *C.struct_fid_cq
	domain *Domain
	attr   CQAttr
	waiter *gateWaiter // nil: poll
	waitFD int         // libfabric's wait fd (in the waiter's epoll set; the assist set holds a dup)
	tagged bool        // FI_CQ_FORMAT_TAGGED (else FI_CQ_FORMAT_DATA)

	mu    sync.Mutex  // serializes draining
	comps []C.rk_comp // drain buffer, used under mu

	slotMu sync.Mutex
	free   []int32
	slots  []slot

	scratch   *Buffer // per-slot atomic operand/compare/result words
	scratchMR *MR

	parked       atomic.Int32  // goroutines parked in await
	spinning     atomic.Int32  // goroutines polling the queue in await (before they park)
	spins        atomic.Uint64 // awaits that began polling the queue, ever
	posts        atomic.Uint64 // slots allocated (operations posted on the queue), ever
	lingers      atomic.Uint64 // linger windows the progress goroutine opened, ever
	lingerServed atomic.Uint64 // polls in those windows that moved a peer's data, ever
	standingBy   atomic.Bool   // the progress goroutine keeps the wait fd's gate shut (standBy)
	longWait     atomic.Bool   // the progress goroutine waits on the fd longer than tickMin
	fdWaits      atomic.Uint64 // waits of the progress goroutine on the fd that ended, ever
	standbys     atomic.Uint64 // standBy waits that ended, ever
	orphaned     atomic.Bool   // an endpoint bound to the queue closed: fi_trywait is unsafe now
	eps          atomic.Int32  // endpoints bound to the queue and not closed
	progressOnce sync.Once
	polled       bool // driven by the domain's poller (no wait fd), set by progressOnce
	stop         chan struct{}
	stopped      chan struct{}
	failure      atomic.Pointer[error] // the CQ itself failed
	unowned      atomic.Uint64         // completions with no slot (counted, ignored)
	remote       chan uint64           // remote CQ data of incoming RMA (no local operation)
	assistID     atomic.Int32          // the queue's id in the assist set (0: not in it)
	assistFD     int                   // its dup of waitFD there, under assist.mu
}

// slot states
const (
	slotFree = iota
	slotPending
	slotDone
	slotAbandoned // the waiter gave up; the completion, when it comes, frees the slot
)

type slot struct {
	state   atomic.Int32
	waiting atomic.Bool   // a waiter is parked (or about to park) on ch
	ch      chan struct{} // cap 1: completion signal for a parked waiter
	comp    completion
	flow    *flow // the endpoint's flow limit the op holds cost bytes of, or nil
	cost    int64
}

// completion is what the queue reported for one operation.
type completion struct {
	len, data, tag, flags uint64
	src                   Addr
	err                   error
}

const scratchStride = 32 // operand, compare, result, spare: one 8-byte word each

// OpenCQ opens a completion queue in the domain.
func (d *Domain) OpenCQ(attr CQAttr) (*CQ, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	if attr.Size <= 0 {
		attr.Size = 1024
	}
	if attr.Spin == 0 {
		attr.Spin = 20 * time.Microsecond
	}
	if attr.Linger == 0 {
		attr.Linger = 100 * time.Microsecond
	}
	if d.info.DataProgress() == ProgressAuto {
		attr.Linger = -1 // the provider's own threads progress it (sockets): polling serves nobody
	}
	q := &CQ{domain: d, attr: attr, comps: make([]C.rk_comp, 64), remote: make(chan uint64, attr.Size),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	var ca C.struct_fi_cq_attr
	ca.size = C.size_t(attr.Size)
	ca.wait_obj = C.FI_WAIT_NONE
	var rc C.int = -1
	d.quiet.RLock()
	// Tagged entries where the provider has them (verbs MSG has only data entries), a wait fd
	// where it has one.
	for _, format := range []C.enum_fi_cq_format{C.FI_CQ_FORMAT_TAGGED, C.FI_CQ_FORMAT_DATA} {
		ca.format = format
		q.tagged = format == C.FI_CQ_FORMAT_TAGGED
		if !attr.NoWaitFD {
			ca.wait_obj = C.FI_WAIT_FD
			rc = C.fi_cq_open(d.c, &ca, &q.c, nil)
		}
		if rc != 0 {
			ca.wait_obj = C.FI_WAIT_NONE
			rc = C.fi_cq_open(d.c, &ca, &q.c, nil)
		}
		if rc == 0 {
			break
		}
	}
	d.quiet.RUnlock()
	if rc != 0 {
		return nil, fiErr("fi_cq_open", C.ssize_t(rc))
	}
	if ca.wait_obj == C.FI_WAIT_FD {
		var fd C.int
		if C.rk_getwait_fd(&q.c.fid, &fd) == 0 {
			q.waiter, _ = newGateWaiter(int(fd)) // nil: the fd cannot be watched; poll the queue
			q.waitFD = int(fd)
		}
	}
	q.slots = make([]slot, attr.Size)
	q.free = make([]int32, attr.Size)
	for i := range q.slots {
		q.slots[i].ch = make(chan struct{}, 1)
		q.free[i] = int32(attr.Size - 1 - i)
	}
	var err error
	if q.scratch, err = Alloc(attr.Size * scratchStride); err == nil {
		q.scratchMR, err = d.RegMR(q.scratch.Bytes(), AccessLocal)
	}
	if err != nil {
		q.releaseC()
		return nil, fmt.Errorf("atomic scratch: %w", err)
	}
	if err := q.init(&d.node, rankQueue, q.release); err != nil {
		q.releaseC()
		return nil, err
	}
	return q, nil
}

// startProgress starts the progress goroutine; endpoints call it when they are enabled (some
// providers must not be driven before: rxm dereferences endpoint state Enable creates).
func (q *CQ) startProgress() {
	q.progressOnce.Do(func() {
		if q.waiter == nil {
			q.polled = true
			q.domain.poll.add(q)
			return
		}
		assist.add(q, q.waitFD)
		go q.progress()
	})
}

func (q *CQ) releaseC() {
	if q.scratchMR != nil {
		q.scratchMR.Close()
	}
	if q.scratch != nil {
		q.scratch.Free()
	}
	if q.waiter != nil {
		q.waiter.close()
	}
	C.fi_close(&q.c.fid)
}

// release stops the progress goroutine, then closes the queue and its scratch memory.
func (q *CQ) release() error {
	close(q.stop)
	if q.waiter != nil {
		q.waiter.kick()
	}
	q.progressOnce.Do(func() { close(q.stopped) }) // never started
	// After the Once: startProgress cannot add the queue to the assist set again.
	assist.remove(q)
	if q.polled {
		q.domain.poll.remove(q)
	} else {
		<-q.stopped
	}
	q.mu.Lock() // no drain in flight
	defer q.mu.Unlock()
	if q.waiter != nil {
		q.waiter.close()
	}
	q.domain.quiet.Lock()
	err := fiErr("fi_close(cq)", C.ssize_t(C.fi_close(&q.c.fid)))
	q.domain.quiet.Unlock()
	q.scratchMR.Close()
	q.scratch.Free()
	return err
}

// Close closes the queue; endpoints bound to it must be closed first (closing the domain does
// that in order). Parked waiters return ErrClosed. Idempotent.
func (q *CQ) Close() error { return q.close() }

// WaitFD reports whether the queue is driven by a wait fd in Go's poller (false: polling).
func (q *CQ) WaitFD() bool { return q.waiter != nil }

// Unowned is the number of completions that matched no operation of this package (for
// example completions of operations posted through another binding); they are dropped.
func (q *CQ) Unowned() uint64 { return q.unowned.Load() }

// RemoteData waits for the remote CQ data of a peer's write with data (WriteData) that
// targeted this side, in arrival order.
func (q *CQ) RemoteData(ctx context.Context) (uint64, error) {
	for {
		select {
		case v := <-q.remote:
			return v, nil
		default:
		}
		q.poll()
		select {
		case v := <-q.remote:
			return v, nil
		case <-ctx.Done():
			return 0, ctxErr(ctx)
		case <-q.done:
			return 0, ErrClosed
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// allocSlot reserves an operation slot for an op that moves cost bytes under the flow limit
// f (nil: none); it returns -1 when all slots are in flight or f has no room for cost.
// freeSlot gives the bytes back.
func (q *CQ) allocSlot(f *flow, cost int64) int32 {
	if f == nil || cost <= 0 {
		f, cost = nil, 0
	} else if !f.take(cost) {
		return -1
	}
	q.slotMu.Lock()
	defer q.slotMu.Unlock()
	n := len(q.free)
	if n == 0 {
		if f != nil {
			f.give(cost)
		}
		return -1
	}
	id := q.free[n-1]
	q.free = q.free[:n-1]
	q.posts.Add(1)
	s := &q.slots[id]
	select { // a stale signal from an earlier use
	case <-s.ch:
	default:
	}
	s.comp = completion{}
	s.flow, s.cost = f, cost
	s.waiting.Store(false)
	s.state.Store(slotPending)
	return id
}

func (q *CQ) freeSlot(id int32) {
	s := &q.slots[id]
	if s.flow != nil {
		s.flow.give(s.cost)
		s.flow = nil
	}
	s.state.Store(slotFree)
	q.slotMu.Lock()
	q.free = append(q.free, id)
	q.slotMu.Unlock()
}

// scratchAddr is the address of word w (0 operand, 1 compare, 2 result) of a slot.
func (q *CQ) scratchAddr(id int32, w int) uint64 {
	return uint64(uintptr(unsafe.Pointer(&q.scratch.Bytes()[int(id)*scratchStride+8*w])))
}

func (q *CQ) scratchWord(id int32, w int) []byte {
	off := int(id)*scratchStride + 8*w
	return q.scratch.Bytes()[off : off+8 : off+8]
}

// result reads the fetched value of a finished atomic from its slot's scratch.
func (q *CQ) result(id int32, dt Datatype) uint64 {
	return getWord(q.scratchWord(id, 2), dt)
}

func putWord(b []byte, dt Datatype, v uint64) {
	switch dt.Size() {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

func getWord(b []byte, dt Datatype) uint64 {
	switch dt.Size() {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return binary.LittleEndian.Uint64(b)
}

// drainLocked reads the queue until it is empty (EAGAIN) and finishes the operations it
// reports. q.mu is held. It returns the number of completions.
func (q *CQ) drainLocked() int { return q.drain(false) }

// drain is drainLocked; with try it reads nothing while a progress goroutine of the domain
// holds or waits for the quiet lock (fi_trywait), instead of parking until it is done. A queue
// whose endpoints are all closed is not read (unbound).
func (q *CQ) drain(try bool) int {
	if q.unbound() {
		return 0
	}
	total := 0
	for {
		if !try {
			q.domain.quiet.RLock()
		} else if !q.domain.quiet.TryRLock() {
			return total
		}
		n := C.rk_cq_drain(q.c, &q.comps[0], C.int(len(q.comps)), boolInt(q.attr.Source), boolInt(q.tagged))
		q.domain.quiet.RUnlock()
		if n < 0 {
			q.readFailed(n)
			return total
		}
		q.dispatch(q.comps[:n])
		total += int(n)
		if int(n) < len(q.comps) {
			return total
		}
	}
}

// unbound reports whether every endpoint bound to the queue has closed (and one had been
// bound): rxm (libfabric 1.17) crashed in fi_cq_read on such a queue, between the endpoint's
// close and the queue's, after a receive on it had been cancelled (an ofi Recv whose context
// ended). Its operations have all ended with the endpoint; a newly bound endpoint makes it
// readable again.
func (q *CQ) unbound() bool { return q.orphaned.Load() && q.eps.Load() <= 0 }

// readFailed records that the queue itself failed: rk_cq_drain returned the negative fi errno
// rc. Waiters report it.
func (q *CQ) readFailed(rc C.int) {
	err := fiErr("fi_cq_read", C.ssize_t(rc))
	q.failure.Store(&err)
}

// dispatch finishes the operations of a batch of completions.
func (q *CQ) dispatch(comps []C.rk_comp) {
	for i := range comps {
		c := &comps[i]
		id := int64(c.ctx) - 1
		if id < 0 || id >= int64(len(q.slots)) {
			if c.err == 0 && c.flags&C.FI_REMOTE_CQ_DATA != 0 {
				select { // a peer's write with data: keep it for RemoteData
				case q.remote <- uint64(c.data):
					continue
				default:
				}
			}
			q.unowned.Add(1)
			continue
		}
		s := &q.slots[id]
		s.comp = completion{len: uint64(c.len), data: uint64(c.data), tag: uint64(c.tag),
			flags: uint64(c.flags), src: Addr(c.src)}
		if c.err != 0 {
			text := C.GoString(&c.text[0])
			s.comp.err = &Error{Op: "completion", Errno: int(c.err), ProvErrno: int(c.prov_errno), Text: text}
		}
		if s.state.CompareAndSwap(slotPending, slotDone) {
			// Signal only a waiter that parks: one that polls sees the state, and a signal
			// nobody takes costs a channel operation now and another at the slot's next use.
			if s.waiting.Load() {
				select {
				case s.ch <- struct{}{}:
				default:
				}
			}
		} else if s.state.Load() == slotAbandoned {
			q.freeSlot(int32(id))
		}
	}
}

// poll drains the queue if no one else is draining it and no fi_trywait holds the domain.
// Its callers poll again soon (a spinning waiter, a post retrying): parking on either lock
// would cost them more than the wait. A trywait comes from a progress goroutine the caller's
// own RUnlock often readied; the caller's runtime.Gosched lets it run.
func (q *CQ) poll() int {
	if !q.mu.TryLock() {
		return 0
	}
	defer q.mu.Unlock()
	return q.drain(true)
}

// await waits until slot id finishes, ctx ends, done closes (an endpoint closing) or stop
// closes (nil: never). It spins (polling the queue itself) for attr.Spin, then parks. On
// return without completion the slot is abandoned and the error says why, except that with
// keep a ctx that ends or a stop leaves the slot pending for a later await. With watch it only
// parks, and not as a waiter the progress goroutine serves (Endpoint.Watch).
func (q *CQ) await(ctx context.Context, id int32, done, stop <-chan struct{}, keep, watch bool) error {
	s := &q.slots[id]
	if watch {
		return q.park(ctx, s, done, stop, keep)
	}
	var spinUntil time.Time
	q.spinning.Add(1)
	if q.attr.Spin > 0 {
		q.spins.Add(1)
	}
	var pp *poller // the domain's poller, which stands by while we spin (polled queues)
	if q.waiter == nil && q.attr.Spin > 0 {
		pp = &q.domain.poll
		pp.spinStart()
	}
	for i := 0; s.state.Load() == slotPending; i++ {
		if q.poll() > 0 {
			continue
		}
		if q.attr.Spin > 0 {
			if i == 0 {
				spinUntil = time.Now().Add(q.attr.Spin)
			} else if i&63 == 0 && time.Now().After(spinUntil) {
				break
			}
			if assist.due(i) {
				assist.help(q) // Go finds netpoller goroutines late while anything spins
			}
			if pp != nil && i&7 == 7 {
				pp.serve(q)
			}
			if i&15 == 15 {
				runtime.Gosched()
			}
			continue
		}
		break
	}
	parking := s.state.Load() == slotPending
	if parking {
		q.parked.Add(1) // before we stop spinning: the last spinner sees it
		defer q.parked.Add(-1)
	}
	if pp != nil {
		pp.spinDone()
		if parking {
			pp.parked()
		}
	}
	if q.spinning.Add(-1) == 0 && q.parked.Load() > 0 && q.standingBy.Load() {
		q.waiter.kick() // nobody polls the queue now: its progress goroutine must
	} else if parking && q.longWait.Load() {
		q.waiter.kick() // back to the short safety tick while someone waits
	}
	return q.park(ctx, s, done, stop, keep)
}

// park is await's wait for the completion signal of slot s.
func (q *CQ) park(ctx context.Context, s *slot, done, stop <-chan struct{}, keep bool) error {
	for s.state.Load() == slotPending {
		s.waiting.Store(true) // then look again: dispatch sets the state, then looks at waiting
		if s.state.Load() != slotPending {
			break
		}
		var err error
		select {
		case <-s.ch:
		case <-ctx.Done():
			err = ctxErr(ctx)
		case <-stop:
			err = ErrStopped
		case <-done:
			err = ErrClosed
		case <-q.done:
			err = ErrClosed
		}
		if err != nil {
			if keep && err != ErrClosed {
				if s.state.Load() == slotPending {
					return err
				}
				break
			}
			if s.state.CompareAndSwap(slotPending, slotAbandoned) {
				return err
			}
			break // it finished meanwhile
		}
	}
	if f := q.failure.Load(); f != nil && s.state.Load() != slotDone {
		return *f
	}
	return nil
}

// progress runs while the queue is open: it drains the queue whenever its wait fd fires (or,
// without one, on a backoff timer), which also drives providers whose data progress is
// manual. Edge-triggered: drain until EAGAIN, then fi_trywait before parking again (and a
// safety tick, tickMin to tickMax). While goroutines poll the queue in await it stands by
// instead (standBy).
func (q *CQ) progress() {
	defer close(q.stopped)
	tick := tickMin
	recheck := standbyRecheck
	idle := time.Duration(0)
	var spins uint64                     // q.spins when the goroutine last looked
	var lingerUntil, lingerCap time.Time // the window's end, and the latest it may end
	var lingerPosts uint64               // q.posts when the linger window opened
	// The waits' skip tests, made once: a func value made per wait is an allocation per wake.
	longWaitEnds := func() bool { return q.stopping() || tick > tickMin && q.parked.Load() > 0 }
	unattended := q.unattended
	for {
		if q.stopping() {
			return
		}
		if q.waiter != nil && !q.orphaned.Load() {
			// Waiters polling now, or since the last look, will most likely poll again: leave
			// the queue to them unless one is parked with nobody polling.
			s := q.spins.Load()
			if q.spinning.Load() > 0 || s != spins && q.parked.Load() == 0 {
				spins = s
				q.standBy(recheck, unattended)
				recheck = min(2*recheck, standbyRecheckMax)
				continue
			}
			recheck = standbyRecheck
		}
		if q.unbound() {
			// Nothing to serve until an endpoint is bound again, or the queue closes.
			if !q.sleep(tickMin) {
				return
			}
			continue
		}
		q.mu.Lock()
		n := q.drainLocked()
		q.mu.Unlock()
		if n > 0 {
			idle, tick = 0, tickMin
			continue
		}
		if !lingerUntil.IsZero() {
			if q.linger(&lingerUntil, lingerCap, lingerPosts) {
				continue
			}
			lingerUntil = time.Time{}
		}
		if q.waiter != nil && !q.orphaned.Load() {
			// Edge-triggered: the queue is drained; fi_trywait arms the wait object (rxm and
			// tcp only watch their sockets once asked) or says there is more to read.
			q.mu.Lock()
			if q.orphaned.Load() {
				// An endpoint closed since the check above (Endpoint.release marks the queue
				// before it takes q.mu): its entry may still be in the wait set, and
				// fi_trywait would call into the freed endpoint.
				q.mu.Unlock()
				continue
			}
			q.domain.quiet.Lock()
			busy := C.rk_trywait1(q.domain.fabric.c, q.c) != 0
			q.domain.quiet.Unlock()
			q.mu.Unlock()
			if busy {
				runtime.Gosched()
				continue
			}
			if q.parked.Load() > 0 {
				tick = tickMin // someone waits: keep the safety net tight
			}
			fired := false
			q.longWait.Store(tick > tickMin)
			err := q.waiter.openGate()
			if err == nil {
				fired, err = q.waiter.wait(time.Now().Add(tick), longWaitEnds)
			}
			q.longWait.Store(false)
			q.fdWaits.Add(1)
			if fired {
				tick = tickMin
				if q.attr.Linger > 0 {
					now := time.Now()
					lingerUntil, lingerPosts = now.Add(q.attr.Linger), q.posts.Load()
					lingerCap = now.Add(max(lingerMaxWindows*q.attr.Linger, lingerMaxFloor))
					q.lingers.Add(1)
					// The goroutine polls through the window: with the gate open, each
					// request arriving meanwhile would also wake a thread in Go's poller.
					// It opens again before the next wait.
					q.waiter.shut()
				}
			} else {
				tick = min(2*tick, tickMax) // a quiet queue: wake less often
			}
			if err != nil {
				if q.stopping() {
					return
				}
				time.Sleep(time.Millisecond)
			}
			continue
		}
		if q.waiter != nil {
			q.waiter.shut() // orphaned: polled from now on
		}
		// No wait fd (or no longer usable): back off from 10µs to 100µs, staying at 20µs while
		// someone waits. Not further: a provider without a wait fd (shm) serves peers' RMA
		// only when polled, and an idle-looking queue may be the target of a transfer.
		switch {
		case idle == 0:
			idle = 10 * time.Microsecond
		case q.parked.Load() > 0:
			idle = 20 * time.Microsecond
		case idle < 100*time.Microsecond:
			idle *= 2
		}

		if !q.sleep(idle) {
			return
		}
	}
}

// sleep waits d, or until the queue stops; it reports whether the queue is still running.
func (q *CQ) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	select {
	case <-q.stop:
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// linger polls the queue for part of its linger window, which ends at *until, and reports
// whether the window is still open. Polls that moved a peer's data extend the window to
// attr.Linger from the end of the part. The window closes when its time is up, when an
// operation was posted on the queue since it opened (posts moved off the posts it opened
// with: that operation's waiter polls the queue, and a lingering goroutine would only take
// q.mu from it) or a waiter polls, or when the queue closes. Each part is one cgo call of at
// most lingerStep holding q.mu and the domain's quiet lock (shared), so that neither is kept
// from others for long.
func (q *CQ) linger(until *time.Time, limit time.Time, posts uint64) bool {
	if until.After(limit) {
		*until = limit
	}
	left := time.Until(*until)
	if left <= 0 || q.posts.Load() != posts || q.spinning.Load() > 0 || q.stopping() || q.orphaned.Load() {
		return false
	}
	q.mu.Lock()
	q.domain.quiet.RLock()
	served := C.rk_linger(q.c, C.int64_t(min(left, lingerStep)), C.int64_t(lingerWork))
	q.domain.quiet.RUnlock()
	q.mu.Unlock()
	if served > 0 {
		q.lingerServed.Add(uint64(served))
		*until = time.Now().Add(q.attr.Linger) // no further than limit (above)
	}
	return true
}

// A linger window extends by the queue's Linger after each poll that served a request, but it
// ends at the latest lingerMaxWindows Lingers (lingerMaxFloor at least) after it opened; the
// next request opens another. Served requests are told from idle polls by time, and on a VM
// idle polls are not all short: with WithLinger(10ms) on both ends of an idle tcp;ofi_rxm
// connection, 100-500 polls a second took over 3 µs (a hundred over 20 µs), each counted as
// a request served, and a window, once a request had opened it, never ended: a core spent on
// an idle connection. A stream of requests now costs a wake-up per capped window.
const (
	lingerMaxWindows = 2
	lingerMaxFloor   = 10 * time.Millisecond
)

// A linger window is polled in cgo calls of at most lingerStep. A poll that takes longer than
// lingerWork moved data (an idle zero-count fi_cq_read on tcp;ofi_rxm is one epoll_wait, about
// a µs on a VM; serving a request receives and sends).
const (
	lingerStep = 20 * time.Microsecond
	lingerWork = 3 * time.Microsecond
)

// standBy is the progress goroutine's wait while goroutines poll the queue in await. They reap
// it themselves, so the wait fd's gate is shut: open, it would wake this goroutine (on another
// CPU, in Go's poller) for every completion they reap. Work they leave behind when they stop
// waits one or two recheck periods. It returns after one, at once when a waiter parks with
// nobody polling (await kicks), or when the queue closes. unattended is q.unattended.
func (q *CQ) standBy(recheck time.Duration, unattended func() bool) {
	q.standingBy.Store(true)
	if q.waiter.shut() == nil {
		q.waiter.wait(time.Now().Add(recheck), unattended)
	}
	q.standingBy.Store(false)
	q.standbys.Add(1)
}

// A standing-by progress goroutine looks whether waiters still poll its queue after
// standbyRecheck, and after twice as long each time they still did, up to standbyRecheckMax.
// Each look is a wake-up on another CPU, which on a 2-core machine delays the waiter or its
// peer: a queue polled by one goroutine doing operations back to back was looked at 500 times
// a second at a fixed 2 ms.
const (
	standbyRecheck    = 2 * time.Millisecond
	standbyRecheckMax = 8 * time.Millisecond
)

// The progress goroutine's wait on the wait fd also ends after tickMin, a safety net against an
// edge the provider missed, and after twice as long each time it ran out with the queue empty,
// up to tickMax, unless a waiter is parked (await kicks a long wait): each queue of an idle
// process woke 100 times a second at a fixed 10 ms, and a process holds a queue per connection.
const (
	tickMin = 10 * time.Millisecond
	tickMax = 160 * time.Millisecond
)

// unattended reports whether the progress goroutine must serve the queue now: it is closing,
// or a waiter is parked with no goroutine polling.
func (q *CQ) unattended() bool {
	return q.stopping() || q.spinning.Load() == 0 && q.parked.Load() > 0
}

// stopping reports whether the queue is closing.
func (q *CQ) stopping() bool {
	select {
	case <-q.stop:
		return true
	default:
		return false
	}
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
