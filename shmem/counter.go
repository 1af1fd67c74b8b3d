package shmem

import "context"

// Counter is a cluster-wide 64-bit counter: one word of one member's portion, changed only by
// fetch-add, so concurrent Adds from any number of members and goroutines all count exactly.
type Counter struct {
	s    *Segment
	node int
	off  uint64
}

// Counter returns the counter in the word at off of node's portion. It checks the address.
func (s *Segment) Counter(node int, off uint64) (*Counter, error) {
	if _, err := s.check(node, off); err != nil {
		return nil, err
	}
	return &Counter{s: s, node: node, off: off}, nil
}

// Add adds delta and returns the counter's new value.
func (c *Counter) Add(ctx context.Context, delta int64) (int64, error) {
	old, err := c.s.FetchAdd(ctx, c.node, c.off, uint64(delta))
	return int64(old) + delta, err
}

// Load returns the counter's current value.
func (c *Counter) Load(ctx context.Context) (int64, error) {
	v, err := c.s.Load(ctx, c.node, c.off)
	return int64(v), err
}

// Reset sets the counter to v and returns its previous value.
func (c *Counter) Reset(ctx context.Context, v int64) (int64, error) {
	old, err := c.s.Store(ctx, c.node, c.off, uint64(v))
	return int64(old), err
}

// Sequencer hands out numbers that are unique and increasing cluster-wide: each Next is one
// fetch-add on a word of one member's portion, so the numbers form the order in which the
// requests reached that word.
type Sequencer struct {
	s    *Segment
	node int
	off  uint64
}

// Sequencer returns the sequencer in the word at off of node's portion; it starts at the word's
// value (0 in a new segment).
func (s *Segment) Sequencer(node int, off uint64) (*Sequencer, error) {
	if _, err := s.check(node, off); err != nil {
		return nil, err
	}
	return &Sequencer{s: s, node: node, off: off}, nil
}

// Next returns the next number.
func (q *Sequencer) Next(ctx context.Context) (uint64, error) {
	return q.s.FetchAdd(ctx, q.node, q.off, 1)
}

// NextN reserves n consecutive numbers and returns the first.
func (q *Sequencer) NextN(ctx context.Context, n uint64) (uint64, error) {
	return q.s.FetchAdd(ctx, q.node, q.off, n)
}
