package verbs

import (
	"sort"
	"sync"
	"sync/atomic"
)

// guard makes an object safe against use after Close: operations hold the read side, Close
// takes the write side once.
type guard struct {
	mu     sync.RWMutex
	closed bool
}

// enter starts an operation; it fails with ErrClosed after Close.
func (g *guard) enter() error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (g *guard) leave() { g.mu.RUnlock() }

// shut runs release once; a failing release leaves the object open.
func (g *guard) shut(release func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	if err := release(); err != nil {
		return err
	}
	g.closed = true
	return nil
}

func (g *guard) isClosed() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.closed
}

// closer is an object a Context closes when it is closed itself.
type closer interface{ Close() error }

// children keeps what a Context created, in creation order, so that Context.Close releases
// them in reverse order: a QP (created after its CQs and PD) goes before them, an MR before
// its PD, and so on.
type children struct {
	mu   sync.Mutex
	seq  uint64
	objs map[closer]uint64
}

func (c *children) add(o closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.objs == nil {
		c.objs = map[closer]uint64{}
	}
	c.seq++
	c.objs[o] = c.seq
}

func (c *children) remove(o closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.objs, o)
}

// closeAll closes every child, newest first, and returns the first error.
func (c *children) closeAll() error {
	c.mu.Lock()
	list := make([]closer, 0, len(c.objs))
	for o := range c.objs {
		list = append(list, o)
	}
	sort.Slice(list, func(i, j int) bool { return c.objs[list[i]] > c.objs[list[j]] })
	c.mu.Unlock()
	var first error
	for _, o := range list {
		if err := o.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Handles: integers stored in cq_context / qp_context / srq_context / cm_id->context so that C
// keeps no Go pointer. They map back to the Go object through this table.
var (
	handleSeq   atomic.Uint64
	handleMu    sync.RWMutex
	handleTable = map[uint64]any{}
)

func newHandle(obj any) uint64 {
	h := handleSeq.Add(1)
	handleMu.Lock()
	handleTable[h] = obj
	handleMu.Unlock()
	return h
}

func lookupHandle(h uint64) any {
	handleMu.RLock()
	defer handleMu.RUnlock()
	return handleTable[h]
}

func dropHandle(h uint64) {
	handleMu.Lock()
	delete(handleTable, h)
	handleMu.Unlock()
}
