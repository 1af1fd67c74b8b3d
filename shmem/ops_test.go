package shmem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/internal/allocs"
	"github.com/rdmakit/rdmakit/shmem"
)

func TestOps(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testOps(t, tr) })
	}
}

// testOps runs every word operation against both members of a two-member segment on tr.
func testOps(t *testing.T, tr transport) {
	segs := cluster(t, tr, 2, 4096)
	ctx := ctxT(t, 30*time.Second)
	a := segs[0]
	t.Logf("caps %v", a.Caps().Atomics)
	type step struct {
		name string
		run  func() (uint64, error)
		old  uint64
		want uint64
	}
	for node := range 2 {
		const off = 64
		for _, s := range []step{
			{"store", func() (uint64, error) { return a.Store(ctx, node, off, 40) }, 0, 40},
			{"fetch-add", func() (uint64, error) { return a.FetchAdd(ctx, node, off, 2) }, 40, 42},
			{"or", func() (uint64, error) { return a.Or(ctx, node, off, 0xf00) }, 42, 0xf2a},
			{"and", func() (uint64, error) { return a.And(ctx, node, off, 0xff0) }, 0xf2a, 0xf20},
			{"xor", func() (uint64, error) { return a.Xor(ctx, node, off, 0x0f0) }, 0xf20, 0xfd0},
			{"masked-swap", func() (uint64, error) { return a.MaskedSwap(ctx, node, off, 0x1234, 0x00ff) }, 0xfd0, 0xf34},
			{"set-bits", func() (uint64, error) { return a.SetBits(ctx, node, off, 8, 4, 0x5) }, 0xf34, 0x534},
			{"compare-swap hit", func() (uint64, error) { return a.CompareSwap(ctx, node, off, 0x534, 7) }, 0x534, 7},
			{"compare-swap miss", func() (uint64, error) { return a.CompareSwap(ctx, node, off, 6, 9) }, 7, 7},
			{"load", func() (uint64, error) { return a.Load(ctx, node, off) }, 7, 7},
		} {
			old, err := s.run()
			if err != nil {
				t.Fatalf("node %d %s: %v", node, s.name, err)
			}
			if old != s.old {
				t.Errorf("node %d %s: old %#x, want %#x", node, s.name, old, s.old)
			}
			// the other member sees the result
			if v, err := segs[1].Load(ctx, node, off); err != nil || v != s.want {
				t.Errorf("node %d after %s: word %#x (%v), want %#x", node, s.name, v, err, s.want)
			}
		}
	}
	// CSwap against the local copy: stale copy fails and refreshes, then succeeds.
	if _, err := segs[1].Store(ctx, 0, 8, 100); err != nil {
		t.Fatal(err)
	}
	prev, ok, err := a.CSwap(ctx, 0, 8, 5)
	if err != nil || ok || prev != 100 {
		t.Fatalf("stale CSwap: prev %d ok %v err %v; want 100, false", prev, ok, err)
	}
	if c, _ := a.Cached(0, 8); c != 100 {
		t.Fatalf("copy after failed CSwap = %d, want 100", c)
	}
	prev, ok, err = a.CSwap(ctx, 0, 8, 5)
	if err != nil || !ok || prev != 100 {
		t.Fatalf("fresh CSwap: prev %d ok %v err %v; want 100, true", prev, ok, err)
	}
	if v, _ := segs[1].Load(ctx, 0, 8); v != 5 {
		t.Fatalf("word after CSwap = %d", v)
	}
}

func TestBadInput(t *testing.T) {
	segs := cluster(t, transports[0], 2, 1024)
	s := segs[0]
	ctx := ctxT(t, 30*time.Second)
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"unknown node", func() error { _, err := s.FetchAdd(ctx, 2, 0, 1); return err }(), shmem.ErrUnknownNode},
		{"negative node", func() error { _, err := s.Load(ctx, -1, 0); return err }(), shmem.ErrUnknownNode},
		{"misaligned", func() error { _, err := s.Or(ctx, 1, 12, 1); return err }(), shmem.ErrMisaligned},
		{"past the portion", func() error { _, err := s.Store(ctx, 1, 1024, 1); return err }(), shmem.ErrOutOfRange},
		{"huge offset", func() error { _, err := s.Store(ctx, 1, ^uint64(0)&^7, 1); return err }(), shmem.ErrOutOfRange},
		{"width 0", func() error { _, err := s.SetBits(ctx, 1, 0, 0, 0, 0); return err }(), shmem.ErrWidth},
		{"width 65", func() error { _, err := s.SetBits(ctx, 1, 0, 0, 65, 0); return err }(), shmem.ErrWidth},
		{"field past bit 63", func() error { _, err := s.SetBits(ctx, 1, 0, 60, 8, 1); return err }(), shmem.ErrWidth},
		{"value wider than field", func() error { _, err := s.SetBits(ctx, 1, 0, 0, 4, 16); return err }(), shmem.ErrWidth},
		{"refresh past the end", s.Refresh(ctx, 1, 1000, 100), shmem.ErrOutOfRange},
		{"refresh unknown node", s.Refresh(ctx, 5, 0, 8), shmem.ErrUnknownNode},
		{"cached misaligned", func() error { _, err := s.Cached(0, 3); return err }(), shmem.ErrMisaligned},
		{"unknown kind", s.Do(ctx, []shmem.Op{{Kind: 99}}), fabric.ErrInvalid},
		{"bad op in a batch", s.Do(ctx, []shmem.Op{{Kind: shmem.OpAdd, Node: 1, Off: 0, Value: 1},
			{Kind: shmem.OpAdd, Node: 1, Off: 4096}}), shmem.ErrOutOfRange},
		{"bitmap too big", func() error { _, err := s.Bitmap(1, 0, 1024*8+1); return err }(), shmem.ErrOutOfRange},
		{"lock lease too short", func() error { _, err := s.Lock(1, 0, time.Microsecond); return err }(), shmem.ErrConfig},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
		}
	}
	// the rejected batch changed nothing
	if v, err := s.Load(ctx, 1, 0); err != nil || v != 0 {
		t.Errorf("word after rejected batch = %d, %v", v, err)
	}
	for _, c := range []struct {
		name string
		cfg  shmem.Config
	}{
		{"no members", shmem.Config{PortionSize: 8}},
		{"self out of range", shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:1"}, Self: 1, PortionSize: 8}},
		{"odd size", shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:1"}, PortionSize: 12}},
		{"bad address", shmem.Config{Members: []string{"tcp:x"}, PortionSize: 8}},
		{"duplicate", shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:1", "ofi+tcp://127.0.0.1:1"}, PortionSize: 8}},
	} {
		if _, err := shmem.Join(ctx, c.cfg); !errors.Is(err, shmem.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", c.name, err)
		}
	}
}

// Do on one node allocates nothing on the Go heap, for one operation and for a pipelined batch,
// whether the caller's context has a deadline or Do gives it one (the lazy deadline, allocated
// per call before, now reused unless it was armed). The one-op path
// used to allocate Do's arguments (moved to the heap for the several-node path's goroutines),
// a release closure and the fabric op handed to the connection; a batch allocated each
// layer's per-op slices (7 allocations, 16 KiB for 32 ops), and at tens of thousands of
// operations a second that garbage ran the collector several times a second. The count is the
// process's, so it also holds the queues' progress goroutines to a wake-up without
// allocations (two each before: the wait's closures); the target here is in this process.
func TestDoAllocs(t *testing.T) {
	if raceEnabled {
		// Its sync.Pool drops a quarter of what is put back (here and in ofi), at random:
		// one to two allocations per operation either way. `make test-cgocheck` runs this
		// package without the race detector.
		t.Skip("allocation counts under the race detector are random")
	}
	segs := cluster(t, transports[0], 2, 4096)
	a := segs[0]
	for _, deadline := range []bool{true, false} {
		ctx := context.Background() // Do gives it a deadline (Config.OpTimeout) for the call
		if deadline {
			ctx = ctxT(t, 30*time.Second)
		}
		for _, n := range []int{1, 32} {
			ops := make([]shmem.Op, n)
			do := func() {
				for i := range ops {
					ops[i] = shmem.Op{Kind: shmem.OpAdd, Node: 1, Off: 64, Value: 1}
				}
				if err := a.Do(ctx, ops); err != nil {
					t.Fatal(err)
				}
			}
			do() // connect, fill the pools
			if least := allocs.Least(do); least != 0 {
				t.Errorf("%d ops, ctx with a deadline %v: %.2f allocations per Do at best in 10 batches",
					n, deadline, least)
			}
		}
	}
}
