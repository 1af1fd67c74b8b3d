package shmem

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is ctx with a deadline limit after its creation, made without a timer:
// context.WithTimeout costs close to a microsecond, as much as a whole atomic on shm, and
// almost every operation finishes while its caller still polls for the completion, before
// anything asks for Done. The timer-backed context is made the first time Done is called
// (a waiter about to park); until then Err compares the clock.
//
// Wrappers that were never armed are reused (lazyPool): allocating one per operation cost
// about 0.4 µs of the time between one operation's completion and the next one's post, one in
// flight on tcp;ofi_rxm (the allocator's memory is cold after the wait), against 0.1 µs for
// taking one from the pool. An armed wrapper is not reused: deriving a context from it arms it,
// so only an unarmed one is certainly held by nobody once its operations are over.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	once     sync.Once
	armed    atomic.Pointer[armedCtx]
}

type armedCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// withLazyDeadline gives ctx a deadline limit from now if it has none, and returns the
// wrapper (nil when ctx already has a deadline): call its release, which is nil-safe, when the
// operations are over, and do not use the context after that. (Not a release func: a method
// value is one more allocation per op.)
func withLazyDeadline(ctx context.Context, limit time.Duration) (context.Context, *lazyDeadline) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	c := lazyPool.Get().(*lazyDeadline)
	c.parent, c.deadline = ctx, time.Now().Add(limit)
	return c, c
}

// lazyPool holds wrappers that were released unarmed.
var lazyPool = sync.Pool{New: func() any { return new(lazyDeadline) }}

func (c *lazyDeadline) arm() *armedCtx {
	c.once.Do(func() {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		c.armed.Store(&armedCtx{ctx, cancel})
	})
	return c.armed.Load()
}

// release ends the wrapper's use: it stops an armed one's timer and puts an unarmed one back in
// lazyPool.
func (c *lazyDeadline) release() {
	if c == nil {
		return
	}
	if a := c.armed.Load(); a != nil {
		a.cancel()
		return
	}
	c.parent = nil
	lazyPool.Put(c)
}

// Deadline is the limit given at creation.
func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// Done arms the deadline's timer.
func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().ctx.Done() }

// Err is the armed context's error, or before that the parent's, or DeadlineExceeded once
// the deadline has passed.
func (c *lazyDeadline) Err() error {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value is the parent's.
func (c *lazyDeadline) Value(key any) any { return c.parent.Value(key) }
