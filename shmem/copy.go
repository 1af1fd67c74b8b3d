package shmem

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Cached is the word at off of node's portion as this member last saw it: the local copy,
// updated by Refresh and by every operation this member runs on the word. It costs no
// communication and may be stale.
func (s *Segment) Cached(node int, off uint64) (uint64, error) {
	m, err := s.check(node, off)
	if err != nil {
		return 0, err
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	return atomic.LoadUint64(m.copyWord(off)), nil
}

// Refresh reads n bytes at off of node's portion into the local copy (one fabric read; words
// are read whole but the range is not a snapshot: words changing meanwhile may be seen before
// or after their change).
func (s *Segment) Refresh(ctx context.Context, node int, off uint64, n int) error {
	m, err := s.member(node)
	if err != nil {
		return err
	}
	if n <= 0 || off > uint64(s.cfg.PortionSize) || uint64(n) > uint64(s.cfg.PortionSize)-off {
		return fmt.Errorf("%w: [%d, %d+%d) of a %d-byte portion", ErrOutOfRange, off, off, n, s.cfg.PortionSize)
	}
	if s.isClosed() {
		return ErrClosed
	}
	ctx, lz := s.opCtx(ctx)
	defer lz.release()
	l, err := m.get(ctx)
	if err != nil {
		return err
	}
	if err := l.c.Read(ctx, m.copy, int(off), l.remote, off, n); err != nil {
		return m.failed(l, err)
	}
	return nil
}

// CopyOf appends the local copy of n bytes at off of node's portion to dst, word by word
// atomically where the range is word-aligned.
func (s *Segment) CopyOf(dst []byte, node int, off uint64, n int) ([]byte, error) {
	m, err := s.member(node)
	if err != nil {
		return dst, err
	}
	if n < 0 || off > uint64(s.cfg.PortionSize) || uint64(n) > uint64(s.cfg.PortionSize)-off {
		return dst, fmt.Errorf("%w: [%d, %d+%d) of a %d-byte portion", ErrOutOfRange, off, off, n, s.cfg.PortionSize)
	}
	if s.isClosed() {
		return dst, ErrClosed
	}
	b := m.copy.Bytes()
	i, end := off, off+uint64(n)
	for ; i < end; i++ {
		if i%8 == 0 && end-i >= 8 {
			v := atomic.LoadUint64(m.copyWord(i))
			dst = append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40),
				byte(v>>48), byte(v>>56))
			i += 7
			continue
		}
		dst = append(dst, b[i])
	}
	return dst, nil
}
