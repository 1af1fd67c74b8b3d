package raid

// piece is part of a target command staged in its buffer: n bytes at member offset moff and
// remote offset roff, at boff in the buffer.
type piece struct {
	moff int64
	roff uint64
	boff int
	n    int
}

// staged is the pieces of a command staged in a target buffer at once, back to back.
type staged struct {
	pieces []piece
	merged []piece
	used   int
}

func (s *staged) add(p piece) {
	s.pieces = append(s.pieces, p)
	s.used += p.n
}

func (s *staged) reset() { s.pieces, s.used = s.pieces[:0], 0 }

// runs merges consecutive pieces that are contiguous in the buffer and in the space off
// measures (the store or the remote region) into runs of at most limit bytes. The result is
// valid until the next call.
func (s *staged) runs(off func(piece) int64, limit int) []piece {
	s.merged = s.merged[:0]
	for _, p := range s.pieces {
		if n := len(s.merged); n > 0 {
			r := &s.merged[n-1]
			if r.boff+r.n == p.boff && off(*r)+int64(r.n) == off(p) && r.n+p.n <= limit {
				r.n += p.n
				continue
			}
		}
		s.merged = append(s.merged, p)
	}
	return s.merged
}
