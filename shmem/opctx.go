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
// operations are over. (Not a release func: a method value is one more allocation per op.)
func withLazyDeadline(ctx context.Context, limit time.Duration) (context.Context, *lazyDeadline) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	c := &lazyDeadline{parent: ctx, deadline: time.Now().Add(limit)}
	return c, c
}

func (c *lazyDeadline) arm() *armedCtx {
	c.once.Do(func() {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		c.armed.Store(&armedCtx{ctx, cancel})
	})
	return c.armed.Load()
}

func (c *lazyDeadline) release() {
	if c == nil {
		return
	}
	if a := c.armed.Load(); a != nil {
		a.cancel()
	}
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
