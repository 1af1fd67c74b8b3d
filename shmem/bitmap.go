package shmem

import (
	"context"

	"fmt"
	"math/bits"
	"sync/atomic"
)

// Bitmap is a cluster-wide ID allocator: bit i of a run of words in one member's portion is set
// while ID i is claimed. A claim is one fetch-or of a bit this member's local copy shows free:
// the fetched previous value says whether this caller set the bit or someone else already had,
// so an ID never has two owners. A release is one fetch-and. No locks, no server code.
type Bitmap struct {
	s     *Segment
	node  int
	off   uint64
	n     uint64 // IDs
	words uint64
	next  atomic.Uint64 // word to start the next search at
}

// Bitmap returns the allocator of IDs [0, n) kept in ceil(n/64) words at off of node's portion.
func (s *Segment) Bitmap(node int, off, n uint64) (*Bitmap, error) {
	if n == 0 {
		return nil, fmt.Errorf("%w: bitmap of 0 IDs", ErrWidth)
	}
	words := (n + 63) / 64
	if _, err := s.check(node, off); err != nil {
		return nil, err
	}
	if words > uint64(s.cfg.PortionSize)/8 || off > uint64(s.cfg.PortionSize)-8*words {
		return nil, fmt.Errorf("%w: %d-word bitmap at offset %d of a %d-byte portion", ErrOutOfRange, words, off,
			s.cfg.PortionSize)
	}
	b := &Bitmap{s: s, node: node, off: off, n: n, words: words}
	b.next.Store(uint64(s.Self()) * words / uint64(s.Members())) // members start apart
	return b, nil
}

// Len is the number of IDs.
func (b *Bitmap) Len() uint64 { return b.n }

// valid is the mask of word w's bits that are IDs.
func (b *Bitmap) valid(w uint64) uint64 {
	if rest := b.n - w*64; rest < 64 {
		return 1<<rest - 1
	}
	return ^uint64(0)
}

// Claim claims a free ID. It searches from where this allocator last succeeded, trusting the
// local copy to skip full words; only when the copy shows no free ID at all does it refresh
// the copy and search again. ErrFull: every ID was claimed when it looked.
func (b *Bitmap) Claim(ctx context.Context) (uint64, error) {
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			if err := b.s.Refresh(ctx, b.node, b.off, int(8*b.words)); err != nil {
				return 0, err
			}
		}
		start := b.next.Load() % b.words
		for i := uint64(0); i < b.words; i++ {
			w := (start + i) % b.words
			id, ok, err := b.claimIn(ctx, w)
			if err != nil {
				return 0, err
			}
			if ok {
				b.next.Store(w)
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: all %d IDs claimed", ErrFull, b.n)
}

// claimIn tries the bits of word w that the local copy shows free, refreshing the copy with
// every attempt, until one is ours or the word is full.
func (b *Bitmap) claimIn(ctx context.Context, w uint64) (uint64, bool, error) {
	off := b.off + 8*w
	for {
		seen, err := b.s.Cached(b.node, off)
		if err != nil {
			return 0, false, err
		}
		free := ^seen & b.valid(w)
		if free == 0 {
			return 0, false, nil
		}
		// Spread contenders over the free bits: start at a bit derived from our index.
		rot := uint(b.s.Self()*7) % 64
		r := bits.RotateLeft64(free, -int(rot))
		bit := (uint(bits.TrailingZeros64(r)) + rot) % 64
		old, err := b.s.Or(ctx, b.node, off, 1<<bit)
		if err != nil {
			return 0, false, err
		}
		if old&(1<<bit) == 0 {
			return w*64 + uint64(bit), true, nil
		}
	}
}

// Release frees id. Releasing an ID that is not claimed is ErrNotHeld (and changes nothing).
func (b *Bitmap) Release(ctx context.Context, id uint64) error {
	if id >= b.n {
		return fmt.Errorf("%w: ID %d of %d", ErrOutOfRange, id, b.n)
	}
	bit := uint64(1) << (id % 64)
	old, err := b.s.And(ctx, b.node, b.off+8*(id/64), ^bit)
	if err != nil {
		return err
	}
	if old&bit == 0 {
		return fmt.Errorf("%w: ID %d was free", ErrNotHeld, id)
	}
	return nil
}

// Claimed reports whether id is claimed now (one atomic read).
func (b *Bitmap) Claimed(ctx context.Context, id uint64) (bool, error) {
	if id >= b.n {
		return false, fmt.Errorf("%w: ID %d of %d", ErrOutOfRange, id, b.n)
	}
	v, err := b.s.Load(ctx, b.node, b.off+8*(id/64))
	return v&(1<<(id%64)) != 0, err
}

// Count refreshes the local copy and counts the claimed IDs in it.
func (b *Bitmap) Count(ctx context.Context) (uint64, error) {
	if err := b.s.Refresh(ctx, b.node, b.off, int(8*b.words)); err != nil {
		return 0, err
	}
	var n uint64
	for w := uint64(0); w < b.words; w++ {
		v, err := b.s.Cached(b.node, b.off+8*w)
		if err != nil {
			return 0, err
		}
		n += uint64(bits.OnesCount64(v & b.valid(w)))
	}
	return n, nil
}
