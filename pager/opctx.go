package pager

import (
	"context"
	"sync/atomic"
	"time"
)

// opContext is the context of one loop's one-sided operations (a fault handler's, or the
// evictor's). context.WithTimeout costs close to a microsecond per call, a good part of a
// page-in; instead the loop stamps the start of each batch and the pager's watchdog ends the
// context if a batch runs past Options.Timeout. Once ended it stays ended: the failed batch
// has failed the pager.
type opContext struct {
	start atomic.Int64 // monoNow of the running batch's start; 0 when none runs
	ended atomic.Bool
	done  chan struct{}
}

func newOpContext() *opContext { return &opContext{done: make(chan struct{})} }

// Deadline is unknown to the operations: the watchdog enforces it.
func (c *opContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *opContext) Done() <-chan struct{} { return c.done }

func (c *opContext) Err() error {
	if c.ended.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *opContext) Value(any) any { return nil }

// expire ends the context if its running batch started before cutoff.
func (c *opContext) expire(cutoff int64) {
	if s := c.start.Load(); s != 0 && s < cutoff && c.ended.CompareAndSwap(false, true) {
		close(c.done)
	}
}

var monoBase = time.Now()

// monoNow is monotonic time in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(monoBase)) + 1 }

// watchdog ends the operation contexts whose batch has run longer than Options.Timeout; it
// looks a few times per Timeout.
func (p *Pager) watchdog() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.opt.Timeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		cutoff := monoNow() - int64(p.opt.Timeout)
		for _, h := range p.handlers {
			h.oc.expire(cutoff)
		}
		p.evictOC.expire(cutoff)
	}
}
