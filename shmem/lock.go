package shmem

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Lock is a cluster-wide lease-based lock in one word of one member's portion: 0 when free,
// else the holder's random 32-bit token (high half) and a renewal count (low half). Taking it
// is one compare-and-swap from 0; renewing it is one compare-and-swap that bumps the count.
//
// A holder that dies stops renewing. A waiter that sees the word unchanged for a whole lease
// (measured on its own clock from when it first saw that value) takes the lock over with one
// compare-and-swap from the value it saw. No clocks are shared: since a waiter's observation
// starts after the holder's last renewal was sent, the takeover happens at least a lease after
// it, so a holder that stops acting at Lease.Deadline never overlaps the next holder.
type Lock struct {
	s     *Segment
	node  int
	off   uint64
	lease time.Duration
}

// Lock returns the lock in the word at off of node's portion with the given lease (at least a
// millisecond). Every user of the lock must use the same lease.
func (s *Segment) Lock(node int, off uint64, lease time.Duration) (*Lock, error) {
	if _, err := s.check(node, off); err != nil {
		return nil, err
	}
	if lease < time.Millisecond {
		return nil, fmt.Errorf("%w: lease %v is shorter than 1ms", ErrConfig, lease)
	}
	return &Lock{s: s, node: node, off: off, lease: lease}, nil
}

// Lease is a held lock.
type Lease struct {
	l    *Lock
	word uint64    // the lock word as we last set it
	sent time.Time // when the operation that set it was sent
}

// Acquire takes the lock, waiting (polling with backoff) until it is free or its holder's lease
// has lapsed, or ctx ends.
func (l *Lock) Acquire(ctx context.Context) (*Lease, error) {
	var seen uint64
	var seenAt time.Time
	backoff := min(l.lease/16, 5*time.Millisecond)
	for {
		h, prev, err := l.try(ctx, 0)
		if err != nil || h != nil {
			return h, err
		}
		now := time.Now()
		switch {
		case prev != seen || seenAt.IsZero():
			seen, seenAt = prev, now
		case now.Sub(seenAt) >= l.lease:
			// The holder did not renew for a whole lease: take over.
			if h, _, err := l.try(ctx, seen); err != nil || h != nil {
				return h, err
			}
			seenAt = time.Time{}
		}
		d := backoff/2 + rand.N(backoff)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, fmt.Errorf("shmem: lock at node %d offset %d: %w", l.node, l.off, ctx.Err())
		}
		backoff = min(2*backoff, l.lease/4, 50*time.Millisecond)
	}
}

// TryAcquire takes the lock if it is free now; it returns nil and no error if it is held.
func (l *Lock) TryAcquire(ctx context.Context) (*Lease, error) {
	h, _, err := l.try(ctx, 0)
	return h, err
}

// try swaps the lock word from expect to a new token.
func (l *Lock) try(ctx context.Context, expect uint64) (*Lease, uint64, error) {
	token := uint64(rand.Uint32()|1) << 32
	sent := time.Now()
	prev, err := l.s.CompareSwap(ctx, l.node, l.off, expect, token|1)
	if err != nil {
		return nil, 0, err
	}
	if prev != expect {
		return nil, prev, nil
	}
	return &Lease{l: l, word: token | 1, sent: sent}, prev, nil
}

// Token is the lease's fencing token: the lock word as the holder last set it. It changes with
// every renewal and is never reused by another holder (barring a 32-bit token collision).
func (h *Lease) Token() uint64 { return h.word }

// Deadline is when the lease lapses unless renewed: the holder must not act on the protected
// state after it. It allows 1/16 of the lease for clock rate differences.
func (h *Lease) Deadline() time.Time { return h.sent.Add(h.l.lease - h.l.lease/16) }

// Renew extends the lease by another lease from now. It is ErrLockLost if the lease lapsed and
// someone took the lock over.
func (h *Lease) Renew(ctx context.Context) error {
	next := h.word&^0xffffffff | (h.word+1)&0xffffffff
	if next&0xffffffff == 0 {
		next++
	}
	sent := time.Now()
	prev, err := h.l.s.CompareSwap(ctx, h.l.node, h.l.off, h.word, next)
	if err != nil {
		return err
	}
	if prev != h.word {
		return fmt.Errorf("%w: lock at node %d offset %d now holds %#x", ErrLockLost, h.l.node, h.l.off, prev)
	}
	h.word, h.sent = next, sent
	return nil
}

// Release frees the lock. It is ErrLockLost if the lease had lapsed and someone took the lock
// over (which is then left alone).
func (h *Lease) Release(ctx context.Context) error {
	prev, err := h.l.s.CompareSwap(ctx, h.l.node, h.l.off, h.word, 0)
	if err != nil {
		return err
	}
	if prev != h.word {
		return fmt.Errorf("%w: lock at node %d offset %d now holds %#x", ErrLockLost, h.l.node, h.l.off, prev)
	}
	return nil
}
