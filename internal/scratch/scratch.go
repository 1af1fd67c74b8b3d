// Package scratch pools the slices a batched call needs for its own length only (the
// per-operation descriptors each layer builds for the layer below), so that a pipelined loop
// of batches allocates nothing once warm: at tens of thousands of operations a second the
// garbage of a few slices per batch made the collector run several times a second, each
// cycle taking CPU the peer's process needed on a small machine.
package scratch

import "sync"

// MaxKept is the largest capacity a pool keeps: a rare huge batch does not pin its slices.
const MaxKept = 4096

// Pool hands out zeroed slices of T. The zero Pool is ready to use.
type Pool[T any] struct{ p sync.Pool }

// Get returns a slice of length n, every element zero. Give it back with Put when the call
// is done with it (nothing may keep a reference to it then).
func (p *Pool[T]) Get(n int) *[]T {
	if s, ok := p.p.Get().(*[]T); ok {
		if cap(*s) >= n {
			*s = (*s)[:n]
			return s
		}
		// Too small: drop it. Kept, it would come back to calls of this size again and again
		// (each then allocating); dropped, the pool's slices grow to the largest size in use.
	}
	s := make([]T, n, max(n, 8))
	return &s
}

// Put clears s (dropping what its elements referenced) and keeps it for a later Get, unless
// it is larger than MaxKept.
func (p *Pool[T]) Put(s *[]T) {
	if s == nil || cap(*s) > MaxKept {
		return
	}
	clear((*s)[:cap(*s)])
	*s = (*s)[:0]
	p.p.Put(s)
}
