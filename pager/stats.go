package pager

import (
	"fmt"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a pager's counters.
type Stats struct {
	Faults       uint64 // missing-page faults served (every kind below)
	MajorFaults  uint64 // faults that waited for an RDMA READ of their page
	PrefetchHits uint64 // faults served from the prefetch cache, no network wait
	ZeroFills    uint64 // faults on never-written pages, served with the zero page
	WriteFaults  uint64 // first writes to clean pages (write-protect faults)
	RemoteReads  uint64 // pages read from the server (demand and prefetch)
	RemoteWrites uint64 // dirty pages written back to the server
	Evictions    uint64 // pages dropped from the local cache
	Prefetched   uint64 // pages read ahead (installed, or kept in the prefetch cache)
	Resident     int    // pages mapped now
	Budget       int    // most pages mapped at once
	// FaultLatency is the time from reading a fault's message to the page being in place
	// (its thread is woken then).
	FaultLatency Histogram
}

// HitRate is the share of faults served without waiting on the network: from the prefetch
// cache or with the zero page. (User space sees no accesses to resident pages, so hits on
// resident pages cannot be counted; nor can accesses to read-ahead pages installed before
// they were touched, which never fault.)
func (s Stats) HitRate() float64 {
	if s.Faults == 0 {
		return 0
	}
	return float64(s.PrefetchHits+s.ZeroFills) / float64(s.Faults)
}

// String formats the counters on one line.
func (s Stats) String() string {
	return fmt.Sprintf("faults %d (major %d, prefetch hits %d, zero %d) write-faults %d, remote reads %d writes %d, "+
		"evictions %d, prefetched %d, resident %d/%d pages, hit rate %.1f%%, fault p50 %v p99 %v",
		s.Faults, s.MajorFaults, s.PrefetchHits, s.ZeroFills, s.WriteFaults, s.RemoteReads, s.RemoteWrites,
		s.Evictions, s.Prefetched, s.Resident, s.Budget, 100*s.HitRate(),
		s.FaultLatency.Quantile(0.5), s.FaultLatency.Quantile(0.99))
}

type counters struct {
	faults, major, prefetchHits, zero, wp, reads, writes, evictions, prefetched atomic.Uint64
	lat                                                                         histogram
}

// histBuckets covers 0 ns to beyond an hour with 8 buckets per power of two (12.5% wide).
const histBuckets = 16 + 40*8

type histogram struct{ b [histBuckets]atomic.Uint64 }

func bucketOf(ns uint64) int {
	if ns < 16 {
		return int(ns)
	}
	e := bits.Len64(ns) - 4
	m := ns >> e // in [8, 16)
	i := 16 + (e-1)*8 + int(m-8)
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketMid is the middle of bucket i in nanoseconds.
func bucketMid(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := (i-16)/8 + 1
	m := uint64(8 + (i-16)%8)
	lo := m << e
	return lo + (uint64(1)<<e)/2
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.b[bucketOf(uint64(d))].Add(1)
}

func (h *histogram) snapshot() Histogram {
	var out Histogram
	for i := range h.b {
		out.Counts[i] = h.b[i].Load()
	}
	return out
}

// Histogram is a latency distribution with buckets 12.5% wide.
type Histogram struct {
	Counts [histBuckets]uint64
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.Counts[bucketOf(uint64(d))]++
}

// Total is the number of samples.
func (h Histogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile is the sample at quantile q (0..1), to within a bucket; 0 without samples.
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	if rank >= total {
		rank = total - 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen > rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(histBuckets - 1))
}

// Sub is h minus an earlier snapshot of the same histogram.
func (h Histogram) Sub(earlier Histogram) Histogram {
	for i := range h.Counts {
		h.Counts[i] -= earlier.Counts[i]
	}
	return h
}

// String lists the non-empty buckets.
func (h Histogram) String() string {
	var b strings.Builder
	for i, c := range h.Counts {
		if c > 0 {
			fmt.Fprintf(&b, "%v:%d ", time.Duration(bucketMid(i)), c)
		}
	}
	return strings.TrimSpace(b.String())
}
