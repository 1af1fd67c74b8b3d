package ofi

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// Close ranks: a parent closes its children in ascending rank, so endpoints go before the
// queues they are bound to, and queues before the memory regions and the parent itself.
const (
	rankEndpoint = iota
	rankQueue    // CQ, counter, AV, EQ
	rankMR
	rankDomain
)

// node is the part of every libfabric object that makes Close idempotent and ordered. A node
// remembers its children; closing it closes them first.
type node struct {
	use      sync.RWMutex // held shared across C calls on the object, exclusively by close
	mu       sync.Mutex
	closed   bool          // under mu
	closing  atomic.Bool   // closed, for isClosed: read on every operation, without mu
	done     chan struct{} // closed when the object is closed
	rank     int
	parent   *node
	children []*node
	release  func() error // the object's own fi_close
}

func (n *node) init(parent *node, rank int, release func() error) error {
	n.done = make(chan struct{})
	n.rank = rank
	n.release = release
	if parent == nil {
		return nil
	}
	parent.mu.Lock()
	defer parent.mu.Unlock()
	if parent.closed {
		return ErrClosed
	}
	n.parent = parent
	parent.children = append(parent.children, n)
	return nil
}

// enter takes the object for one C call; it fails once Close has begun. exit must follow.
func (n *node) enter() bool {
	n.use.RLock()
	if n.isClosed() {
		n.use.RUnlock()
		return false
	}
	return true
}

func (n *node) exit() { n.use.RUnlock() }

// isClosed reports whether Close has begun.
func (n *node) isClosed() bool { return n.closing.Load() }

// close releases the children (by rank, newest first within a rank), then the object itself.
// A second call returns nil.
func (n *node) close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.closing.Store(true)
	close(n.done)
	kids := slices.Clone(n.children)
	n.children = nil
	n.mu.Unlock()

	slices.Reverse(kids)
	slices.SortStableFunc(kids, func(a, b *node) int { return a.rank - b.rank })
	var errs []error
	for _, k := range kids {
		errs = append(errs, k.close())
	}
	n.use.Lock() // wait for C calls in progress; enter refuses new ones from here on
	if n.release != nil {
		errs = append(errs, n.release())
	}
	n.use.Unlock()
	if p := n.parent; p != nil {
		p.mu.Lock()
		p.children = slices.DeleteFunc(p.children, func(c *node) bool { return c == n })
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}
