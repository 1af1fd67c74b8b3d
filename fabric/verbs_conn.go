package fabric

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/internal/scratch"
	"github.com/rdmakit/rdmakit/verbs"
)

// verbsConn is one RC connection: a queue pair with its own completion queue, a ring of posted
// receive buffers for messages, registered send buffers and a registered scratch area where
// atomics return the previous value (8 bytes per operation slot).
//
// There is no completion goroutine: the callers waiting for completions take turns driving
// the CQ (polling it, then parking in Go's poller on its completion channel) and hand every
// completion to the call it belongs to, which saves a goroutine switch per operation. Work
// request ids are integers: a tag and a slot number.
type verbsConn struct {
	b      *verbsBackend
	conn   *verbs.Conn
	qp     *verbs.QP
	cq     *verbs.CQ
	remote string

	rmem, smem, xmem *verbs.Memory // receive ring, send buffers, atomic scratch
	rmr, smr, xmr    *verbs.MR

	// Operation slots: a slot is owned by the caller of do from taking its token until it is
	// posted, then by whoever dispatches its completion, then it goes back to free.
	free  chan uint32   // free operation slots
	rd    chan struct{} // tokens for reads and atomics in flight (the negotiated initiator depth)
	smu   sync.Mutex    // slots
	slots []verbsSlot

	sfree chan uint32     // free send slots
	sends []*verbsSend    // the send posted on each slot, nil when free (guarded by smu)
	recvq chan verbsRecvd // received messages, in order
	wcs   []verbs.WC      // the leader's completion buffer

	// Whoever waits for a completion drives the CQ: one caller at a time (the leader, holding
	// lead) polls it and hands every completion to its owner; the others wait for their own
	// completion or for leadTok, passed on by a leader that is done, to take over.
	lead    sync.Mutex
	leadTok chan struct{}

	// lmu is held shared while posting or touching the connection's buffers, exclusively to
	// stop both (stopped) before the queue pair and buffers go away.
	lmu     sync.RWMutex
	stopped bool

	deadOnce sync.Once
	dead     chan struct{} // closed when the connection cannot carry operations any more
	deadCtx  context.Context
	deadStop context.CancelFunc // cancels deadCtx, with dead
	deadErr  error

	started   bool
	closeOnce sync.Once
	closeErr  error
}

// verbsSend is one Send in flight.
type verbsSend struct {
	done chan struct{}
	err  error
}

type verbsSlot struct {
	b    *verbsBatch
	i    int
	rd   bool // holds a read/atomic token
	used bool
}

type verbsRecvd struct {
	i int
	n int
}

// verbsBatch is one call of do: its operations and how many are still posted. Batches are
// pooled (verbsBatches): done carries one token per call, sent when the last operation has
// finished and the call has stopped posting, and the call takes it on every path before it
// returns, so a batch handed back holds no token and nothing refers to it.
type verbsBatch struct {
	ops         []Op
	mu          sync.Mutex
	outstanding int
	posting     bool
	done        chan struct{} // capacity 1
}

var verbsBatches = sync.Pool{New: func() any { return &verbsBatch{done: make(chan struct{}, 1)} }}

// finish records that n posted operations completed.
func (bt *verbsBatch) finish(n int) {
	bt.mu.Lock()
	bt.outstanding -= n
	if bt.outstanding == 0 && !bt.posting {
		bt.done <- struct{}{}
	}
	bt.mu.Unlock()
}

// Scratch of do calls: the work requests of a chunk and the op index of each.
var (
	verbsWRs   scratch.Pool[verbs.SendWR]
	verbsFirst scratch.Pool[int]
)

// Work request ids: tag << 32 | slot.
const (
	verbsTagOp   = 1
	verbsTagSend = 2
	verbsTagRecv = 3
	// verbsPostChunk is the most work requests posted by one cgo call.
	verbsPostChunk = 64
	// verbsGrace is how long a call waits for its flushed work requests after the connection
	// died before it closes the connection to take its buffers back.
	verbsGrace = 2 * time.Second
)

var errVerbsAborted = fmt.Errorf("%w: the connection was closed with the operation in flight", ErrClosed)

// newConn allocates the connection's completion queue and buffers; start connects them to a
// queue pair.
func (b *verbsBackend) newConn() (c *verbsConn, err error) {
	o := b.opt
	c = &verbsConn{b: b, dead: make(chan struct{}), leadTok: make(chan struct{}, 1), wcs: make([]verbs.WC, 64)}
	c.deadCtx, c.deadStop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.release()
			err = verbsError(err)
		}
	}()
	if c.cq, err = b.ctx.CreateCQ(o.queueDepth+verbsSendSlots+o.recvDepth, &verbs.CQOptions{Batch: 64}); err != nil {
		return nil, err
	}
	if c.rmem, c.rmr, err = b.buffer(o.recvDepth * max(o.maxMessage, 1)); err != nil {
		return nil, err
	}
	if c.smem, c.smr, err = b.buffer(verbsSendSlots * max(o.maxMessage, 1)); err != nil {
		return nil, err
	}
	if c.xmem, c.xmr, err = b.buffer(8 * o.queueDepth); err != nil {
		return nil, err
	}
	c.free = make(chan uint32, o.queueDepth)
	for i := range o.queueDepth {
		c.free <- uint32(i)
	}
	c.slots = make([]verbsSlot, o.queueDepth)
	c.sfree = make(chan uint32, verbsSendSlots)
	c.sends = make([]*verbsSend, verbsSendSlots)
	for i := range verbsSendSlots {
		c.sfree <- uint32(i)
	}
	c.recvq = make(chan verbsRecvd, o.recvDepth)
	return c, nil
}

// buffer allocates and registers n bytes for local use.
func (b *verbsBackend) buffer(n int) (*verbs.Memory, *verbs.MR, error) {
	m, err := verbs.Alloc(n)
	if err != nil {
		return nil, nil, err
	}
	mr, err := b.pd.Register(m, verbs.AccessLocalWrite)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, mr, nil
}

// config is the queue pair configuration for the rdma_cm.
func (c *verbsConn) config() verbs.ConnConfig {
	o := c.b.opt
	return verbs.ConnConfig{PD: c.b.pd, SendCQ: c.cq, RecvCQ: c.cq,
		Cap: verbs.QPCap{MaxSendWR: o.queueDepth + verbsSendSlots, MaxRecvWR: o.recvDepth}, RNRRetryCount: 7}
}

// start takes the connected queue pair and posts the receive ring.
func (c *verbsConn) start(conn *verbs.Conn) error {
	c.conn, c.qp, c.started = conn, conn.QP(), true
	c.remote = conn.RemoteAddr().String()
	c.rd = make(chan struct{}, max(1, min(conn.InitiatorDepth(), c.b.opt.queueDepth)))
	for range cap(c.rd) {
		c.rd <- struct{}{}
	}
	wrs := make([]verbs.RecvWR, c.b.opt.recvDepth)
	for i := range wrs {
		c.recvWR(&wrs[i], i)
	}
	if _, err := c.qp.PostRecv(wrs); err != nil {
		return verbsError(err)
	}
	go func() {
		select {
		case <-conn.Done():
			c.markDead(fmt.Errorf("%w: the peer disconnected", ErrConnReset))
		case <-c.deadCtx.Done():
		}
	}()
	return nil
}

func (c *verbsConn) recvWR(w *verbs.RecvWR, i int) {
	n := c.b.opt.maxMessage
	w.ID = verbsTagRecv<<32 | uint64(i)
	w.Local(c.rmr.SGE(i*n, n))
}

// markDead records why the connection can carry no more operations and wakes every waiter.
func (c *verbsConn) markDead(err error) {
	c.deadOnce.Do(func() {
		c.deadErr = err
		close(c.dead)
		c.deadStop()
	})
}

// deadError is the error of a dead connection (only after dead is closed).
func (c *verbsConn) deadError() error {
	<-c.dead
	return c.deadErr
}

func (c *verbsConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// passLead lets a waiting caller take over the CQ.
func (c *verbsConn) passLead() {
	select {
	case c.leadTok <- struct{}{}:
	default:
	}
}

// leadUntil polls the CQ and dispatches completions until until reports true, ctx ends or
// the connection dies. The caller holds lead.
func (c *verbsConn) leadUntil(ctx context.Context, until func() bool) error {
	spin := c.b.opt.spin
	var lctx context.Context
	for !until() {
		n, err := c.cq.Poll(c.wcs)
		if n == 0 && err == nil && spin > 0 {
			deadline := time.Now().Add(spin)
			for i := 0; n == 0 && err == nil; i++ {
				if i&15 == 15 && time.Now().After(deadline) {
					break
				}
				n, err = c.cq.Poll(c.wcs)
			}
		}
		if n == 0 && err == nil {
			if lctx == nil {
				var cancel context.CancelFunc
				lctx, cancel = context.WithCancel(ctx)
				stop := context.AfterFunc(c.deadCtx, cancel)
				defer func() {
					stop()
					cancel()
				}()
			}
			n, err = c.cq.Wait(lctx, c.wcs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return verbsError(ctx.Err())
			}
			if c.isDead() {
				return c.deadError()
			}
			err = fmt.Errorf("%w: completion queue: %w", ErrConnReset, verbsError(err))
			c.markDead(err)
			return err
		}
		c.dispatch(c.wcs[:n])
	}
	return nil
}

// waitOn receives from ch (a closed done channel, free slots, received messages), driving the
// CQ while no one else does. It fails when ctx ends or the connection dies first.
func waitOn[T any](c *verbsConn, ctx context.Context, ch <-chan T) (v T, err error) {
	got := false
	take := func() bool {
		if !got {
			select {
			case v = <-ch:
				got = true
			default:
			}
		}
		return got
	}
	tok := false // holding a turn passed on by a leader: pass it on unless we lead
	defer func() {
		if tok {
			c.passLead()
		}
	}()
	for {
		if take() {
			return v, nil
		}
		if c.lead.TryLock() {
			tok = false
			err := c.leadUntil(ctx, take)
			c.lead.Unlock()
			c.passLead()
			if take() {
				return v, nil
			}
			return v, err
		}
		select {
		case v = <-ch:
			return v, nil
		case <-c.leadTok:
			tok = true
		case <-ctx.Done():
			return v, verbsError(ctx.Err())
		case <-c.dead:
			if take() { // what arrived before the end
				return v, nil
			}
			return v, c.deadError()
		}
	}
}

func (c *verbsConn) dispatch(wcs []verbs.WC) {
	for _, wc := range wcs {
		var err error
		if wc.Status != verbs.WCSuccess {
			err = c.wcError(wc)
		}
		slot := uint32(wc.ID)
		switch wc.ID >> 32 {
		case verbsTagOp:
			c.smu.Lock()
			s := c.slots[slot]
			c.slots[slot] = verbsSlot{}
			c.smu.Unlock()
			if !s.used {
				continue
			}
			op := &s.b.ops[s.i]
			op.Err = err
			if err == nil && op.Kind == OpAtomic {
				op.Result = binary.NativeEndian.Uint64(c.xmr.Bytes()[8*slot:])
			}
			if s.rd {
				c.rd <- struct{}{}
			}
			c.free <- slot
			s.b.finish(1)
		case verbsTagSend:
			c.smu.Lock()
			snd := c.sends[slot]
			c.sends[slot] = nil
			c.smu.Unlock()
			if snd != nil {
				snd.err = err
				close(snd.done)
			}
		case verbsTagRecv:
			if err == nil {
				c.recvq <- verbsRecvd{i: int(slot), n: int(wc.ByteLen)}
			}
		}
	}
}

// wcError turns a failed completion into an error. On RC any failed completion moves the
// queue pair to the error state: the connection is lost, and the error says so.
func (c *verbsConn) wcError(wc verbs.WC) error {
	werr := wc.Err()
	var err error
	if errors.Is(werr, verbs.ErrFlushed) {
		if c.isDead() {
			err = c.deadError()
			if !errors.Is(err, ErrConnReset) {
				err = fmt.Errorf("%w: %w", ErrConnReset, werr)
			}
		} else {
			err = fmt.Errorf("%w: %w", ErrConnReset, werr)
		}
	} else {
		err = verbsError(werr)
		if !errors.Is(err, ErrConnReset) {
			err = fmt.Errorf("%w (the queue pair is in error: %w)", err, ErrConnReset)
		}
	}
	c.markDead(err)
	return err
}

// usable reports why nothing can be posted, or nil.
func (c *verbsConn) usable() error {
	if c.isDead() {
		return c.deadError()
	}
	return nil
}

// takeSlot takes an operation slot (and a read/atomic token when rd); without block it fails
// at once (nil error, ok false) when none is free.
func (c *verbsConn) takeSlot(ctx context.Context, rd, block bool) (slot uint32, ok bool, err error) {
	if !block {
		select {
		case slot = <-c.free:
		default:
			return 0, false, nil
		}
		if rd {
			select {
			case <-c.rd:
			default:
				c.free <- slot
				return 0, false, nil
			}
		}
		return slot, true, nil
	}
	slot, err = waitOn(c, ctx, c.free)
	if err != nil {
		return 0, false, err
	}
	if rd {
		if _, err = waitOn(c, ctx, c.rd); err != nil {
			c.free <- slot
			return 0, false, err
		}
	}
	return slot, true, nil
}

func (c *verbsConn) buildWR(w *verbs.SendWR, op *Op, slot uint32) {
	*w = verbs.SendWR{ID: verbsTagOp<<32 | uint64(slot), Flags: verbs.Signaled,
		RemoteAddr: op.Remote.Addr + op.RemoteOff, RKey: uint32(op.Remote.Key)}
	switch op.Kind {
	case OpRead, OpWrite:
		w.Opcode = verbs.OpRead
		if op.Kind == OpWrite {
			w.Opcode = verbs.OpWrite
		}
		w.Local(op.Mem.impl.(*verbsMemory).mr.SGE(op.Off, op.Len))
	case OpAtomic:
		w.Local(c.xmr.SGE(8*int(slot), 8))
		switch op.Atomic {
		case FetchAdd:
			w.Opcode, w.CompareAdd = verbs.OpFetchAdd, op.Operand
		case CompareSwap:
			w.Opcode, w.CompareAdd, w.Swap = verbs.OpCompareSwap, op.Compare, op.Operand
		}
	}
}

func (c *verbsConn) do(ctx context.Context, ops []Op) error {
	if err := c.usable(); err != nil {
		for i := range ops {
			ops[i].Err = err
		}
		return err
	}
	bt := verbsBatches.Get().(*verbsBatch)
	bt.ops, bt.outstanding, bt.posting = ops, 0, true
	defer func() {
		bt.ops = nil
		verbsBatches.Put(bt)
	}()
	chunk := min(len(ops), verbsPostChunk)
	pw, pf := verbsWRs.Get(chunk), verbsFirst.Get(chunk)
	defer verbsWRs.Put(pw)
	defer verbsFirst.Put(pf)
	wrs, first := (*pw)[:0], (*pf)[:0] // first: op index of each gathered work request
	var stop error
	i := 0
	for i < len(ops) && stop == nil {
		wrs, first = wrs[:0], first[:0]
		for i < len(ops) && len(wrs) < verbsPostChunk {
			rd := ops[i].Kind != OpWrite
			slot, ok, err := c.takeSlot(ctx, rd, len(wrs) == 0)
			if err != nil {
				stop = err
			}
			if !ok {
				break
			}
			wrs = append(wrs, verbs.SendWR{})
			c.buildWR(&wrs[len(wrs)-1], &ops[i], slot)
			first = append(first, i)
			c.smu.Lock()
			c.slots[slot] = verbsSlot{b: bt, i: i, rd: rd, used: true}
			c.smu.Unlock()
			i++
		}
		if len(wrs) == 0 {
			break
		}
		bt.mu.Lock()
		bt.outstanding += len(wrs)
		bt.mu.Unlock()
		posted, err := c.postSend(wrs)
		if posted < len(wrs) {
			stop = err
			unposted := 0
			for j := posted; j < len(wrs); j++ {
				slot := uint32(wrs[j].ID)
				c.smu.Lock()
				s := c.slots[slot]
				c.slots[slot] = verbsSlot{}
				c.smu.Unlock()
				if !s.used {
					continue // close failed it already
				}
				unposted++
				ops[first[j]].Err = err
				if s.rd {
					c.rd <- struct{}{}
				}
				c.free <- slot
			}
			bt.finish(unposted)
		}
	}
	for ; i < len(ops); i++ {
		ops[i].Err = stop
	}
	bt.mu.Lock()
	bt.posting = false
	if bt.outstanding == 0 {
		bt.done <- struct{}{}
	}
	bt.mu.Unlock()
	if err := c.await(ctx, bt.done); err != nil {
		for i := range ops {
			if errors.Is(ops[i].Err, errVerbsAborted) {
				ops[i].Err = err
			}
		}
		return fmt.Errorf("%w (connection closed)", err)
	}
	for i := range ops {
		if err := ops[i].Err; err != nil {
			if len(ops) > 1 {
				return fmt.Errorf("op %d: %w", i, err)
			}
			return err
		}
	}
	return nil
}

// postSend posts work requests unless the connection is stopped or dead.
func (c *verbsConn) postSend(wrs []verbs.SendWR) (int, error) {
	c.lmu.RLock()
	defer c.lmu.RUnlock()
	if c.stopped {
		return 0, fmt.Errorf("connection: %w", ErrClosed)
	}
	if err := c.usable(); err != nil {
		return 0, err
	}
	n, err := c.qp.PostSend(wrs)
	if err != nil {
		if derr := c.usable(); derr != nil {
			return n, derr
		}
		err = verbsError(err)
	}
	return n, err
}

// await waits for done. If ctx ends first, or the connection dies, the connection is closed,
// which takes the buffers back from the device; await then returns the context's error (or
// the connection's).
func (c *verbsConn) await(ctx context.Context, done <-chan struct{}) error {
	_, err := waitOn(c, ctx, done)
	if err == nil {
		return nil
	}
	c.close()
	<-done // close failed what was still posted
	return err
}

func (c *verbsConn) send(ctx context.Context, msg []byte) error {
	if err := c.usable(); err != nil {
		return err
	}
	var slot uint32
	select {
	case slot = <-c.sfree:
	case <-ctx.Done():
		return verbsError(ctx.Err())
	case <-c.dead:
		return c.deadError()
	}
	var w verbs.SendWR
	w.ID, w.Opcode, w.Flags = verbsTagSend<<32|uint64(slot), verbs.OpSend, verbs.Signaled
	n := c.b.opt.maxMessage
	c.lmu.RLock()
	if c.stopped {
		c.lmu.RUnlock()
		return fmt.Errorf("connection: %w", ErrClosed)
	}
	copy(c.smr.Bytes()[int(slot)*n:], msg)
	c.lmu.RUnlock()
	if len(msg) > 0 {
		w.Local(c.smr.SGE(int(slot)*n, len(msg)))
	}
	snd := &verbsSend{done: make(chan struct{})}
	c.smu.Lock()
	c.sends[slot] = snd
	c.smu.Unlock()
	if _, err := c.postSend([]verbs.SendWR{w}); err != nil {
		c.smu.Lock()
		mine := c.sends[slot] == snd
		c.sends[slot] = nil
		c.smu.Unlock()
		if mine {
			c.sfree <- slot
		}
		return err
	}
	if err := c.await(ctx, snd.done); err != nil {
		return fmt.Errorf("%w (connection closed)", err)
	}
	c.sfree <- slot
	return snd.err
}

func (c *verbsConn) recv(ctx context.Context, buf []byte) (int, error) {
	m, err := waitOn(c, ctx, c.recvq)
	if err != nil {
		return 0, err // nothing consumed: after a timeout the conn stays usable
	}
	c.lmu.RLock()
	defer c.lmu.RUnlock()
	if c.stopped {
		return 0, fmt.Errorf("connection: %w", ErrClosed)
	}
	sz := c.b.opt.maxMessage
	n := copy(buf, c.rmr.Bytes()[m.i*sz:m.i*sz+m.n])
	if n < m.n {
		err = fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrTooLarge, m.n, len(buf))
	}
	if !c.isDead() {
		var w [1]verbs.RecvWR
		c.recvWR(&w[0], m.i)
		if _, perr := c.qp.PostRecv(w[:]); perr != nil && err == nil {
			if derr := c.usable(); derr != nil {
				return n, derr
			}
			err = verbsError(perr)
		}
	}
	return n, err
}

func (c *verbsConn) remoteAddr() string { return c.remote }

// close stops posting, destroys the queue pair (disconnecting), waits for the CQ's driver to
// leave, fails what was still posted, then releases the completion queue and buffers.
// Idempotent.
func (c *verbsConn) close() error {
	c.closeOnce.Do(func() {
		c.markDead(fmt.Errorf("connection: %w", ErrClosed))
		c.lmu.Lock()
		c.stopped = true
		c.lmu.Unlock()
		var errs []error
		if c.conn != nil {
			errs = append(errs, c.conn.Close())
		}
		c.lead.Lock() // the leader left (markDead woke it); nobody leads any more
		if c.started {
			c.failPending()
		}
		errs = append(errs, c.release())
		c.closeErr = verbsError(errors.Join(errs...))
	})
	return c.closeErr
}

// failPending ends every operation and send still posted (nobody drives the CQ any more).
func (c *verbsConn) failPending() {
	c.smu.Lock()
	defer c.smu.Unlock()
	for i, s := range c.slots {
		if !s.used {
			continue
		}
		c.slots[i] = verbsSlot{}
		s.b.ops[s.i].Err = errVerbsAborted
		s.b.finish(1)
	}
	for i, snd := range c.sends {
		if snd != nil {
			c.sends[i] = nil
			snd.err = errVerbsAborted
			close(snd.done)
		}
	}
}

// release frees the completion queue and buffers (the queue pair is gone or never was).
func (c *verbsConn) release() error {
	var errs []error
	if c.cq != nil {
		errs = append(errs, c.cq.Close())
	}
	for _, mr := range []*verbs.MR{c.rmr, c.smr, c.xmr} {
		if mr != nil {
			errs = append(errs, mr.Close())
		}
	}
	for _, m := range []*verbs.Memory{c.rmem, c.smem, c.xmem} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}
