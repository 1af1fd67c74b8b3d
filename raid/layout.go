package raid

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/klauspost/reedsolomon"
)

// Layout is the shape of a volume: K data and M parity chunks per stripe over K+M members,
// Chunk bytes per chunk, parity rotating from stripe to stripe.
type Layout struct {
	Level string // "0", "1", "5", "6" or "k+m"
	K, M  int
	Chunk int
}

// Sentinel errors of the package.
var (
	ErrLayout    = errors.New("raid: bad layout")
	ErrRange     = errors.New("raid: outside the volume")
	ErrInvalid   = errors.New("raid: invalid request")
	ErrFormat    = errors.New("raid: malformed message")
	ErrForeign   = errors.New("raid: store belongs to another volume")
	ErrFailed    = errors.New("raid: volume failed: too many members lost")
	ErrHostAcc   = errors.New("raid: host memory not accessible")
	ErrStale     = errors.New("raid: host not connected to a member")
	ErrTarget    = errors.New("raid: target error")
	ErrNoVolume  = errors.New("raid: no volume")
	ErrBusy      = errors.New("raid: busy")
	ErrSuperblk  = errors.New("raid: bad superblock")
	ErrClosedVol = errors.New("raid: closed")
)

// ParseLayout parses a RAID level ("0", "1", "5", "6" or "k+m") for a member count n and a
// chunk size.
func ParseLayout(level string, n, chunk int) (Layout, error) {
	l := Layout{Level: level, Chunk: chunk}
	switch level {
	case "0":
		l.K, l.M = n, 0
	case "1":
		l.K, l.M = 1, n-1
	case "5":
		l.K, l.M = n-1, 1
	case "6":
		l.K, l.M = n-2, 2
	default:
		ks, ms, ok := strings.Cut(level, "+")
		k, err1 := strconv.Atoi(ks)
		m, err2 := strconv.Atoi(ms)
		if !ok || err1 != nil || err2 != nil {
			return Layout{}, fmt.Errorf("%w: level %q (0, 1, 5, 6 or k+m)", ErrLayout, level)
		}
		if k+m != n {
			return Layout{}, fmt.Errorf("%w: %d+%d needs %d members, got %d", ErrLayout, k, m, k+m, n)
		}
		l.K, l.M = k, m
	}
	return l, l.Check(n)
}

// Check validates the layout for n members.
func (l Layout) Check(n int) error {
	min := map[string]int{"0": 1, "1": 2, "5": 3, "6": 4}[l.Level]
	if min > 0 && n < min {
		return fmt.Errorf("%w: RAID %s needs at least %d members, got %d", ErrLayout, l.Level, min, n)
	}
	if l.K < 1 || l.M < 0 || l.K+l.M != n || l.K+l.M > 64 {
		return fmt.Errorf("%w: %d data + %d parity chunks over %d members (1..64 members)", ErrLayout, l.K, l.M, n)
	}
	if l.Chunk < 512 || l.Chunk > 16<<20 || l.Chunk%512 != 0 {
		return fmt.Errorf("%w: chunk size %d (a multiple of 512 up to 16 MiB)", ErrLayout, l.Chunk)
	}
	return nil
}

// N is the member count.
func (l Layout) N() int { return l.K + l.M }

// StripeData is the data bytes per stripe.
func (l Layout) StripeData() int64 { return int64(l.K) * int64(l.Chunk) }

// Mirror reports whether parity chunks are copies of the data (RAID 1): then every member
// pulls straight from the host and the controller computes nothing.
func (l Layout) Mirror() bool { return l.K == 1 && l.M > 0 }

// Member is the member holding shard j (data 0..K-1, parity K..N-1) of stripe s.
func (l Layout) Member(s int64, j int) int {
	if l.M == 0 {
		return j
	}
	n := int64(l.N())
	return int((int64(j) + n - s%n) % n)
}

// Shard is the inverse of Member: the shard member i holds in stripe s.
func (l Layout) Shard(s int64, i int) int {
	if l.M == 0 {
		return i
	}
	n := int64(l.N())
	return int((int64(i) + s%n) % n)
}

// String is a short description.
func (l Layout) String() string {
	return fmt.Sprintf("raid%s %d+%d chunk %d", l.Level, l.K, l.M, l.Chunk)
}

// extent is a piece of a request inside one data chunk.
type extent struct {
	stripe int64
	shard  int   // data shard
	co     int   // offset in the chunk
	n      int   // bytes
	hoff   int64 // offset from the request start
}

// extents splits [off, off+n) of the volume into per-chunk pieces, in volume order.
func (l Layout) extents(off, n int64) []extent {
	var out []extent
	sd := l.StripeData()
	for done := int64(0); done < n; {
		o := off + done
		s := o / sd
		in := o % sd
		d := int(in / int64(l.Chunk))
		co := int(in % int64(l.Chunk))
		k := min(int64(l.Chunk-co), n-done)
		out = append(out, extent{stripe: s, shard: d, co: co, n: int(k), hoff: done})
		done += k
	}
	return out
}

// codec computes parity for a layout; nil for RAID 0.
func newCodec(l Layout) (reedsolomon.Encoder, error) {
	if l.M == 0 {
		return nil, nil
	}
	return reedsolomon.New(l.K, l.M)
}
