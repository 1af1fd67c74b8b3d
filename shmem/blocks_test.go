package shmem_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/shmem"
)

// TestCASFallback runs the word operations with only compare-and-swap (as on verbs, minus
// fetch-add): every other operation becomes a CAS loop and must give the same results.
func TestCASFallback(t *testing.T) {
	segs := cluster(t, transports[0], 2, 1024)
	ctx := ctxT(t, 30*time.Second)
	var without fabric.AtomicSet
	for _, a := range fabric.AtomicOps() {
		if a != fabric.CompareSwap {
			without = without.With(a)
		}
	}
	for _, s := range segs {
		shmem.Without(s, without)
	}
	a, b := segs[0], segs[1]
	if a.Native(shmem.OpOr) || !a.Native(shmem.OpCompareSwap) {
		t.Fatalf("Native: or %v, compare-swap %v", a.Native(shmem.OpOr), a.Native(shmem.OpCompareSwap))
	}
	b.Store(ctx, 1, 0, 5) // a's copy is stale: the loops must recover
	for _, c := range []struct {
		name      string
		run       func() (uint64, error)
		old, want uint64
	}{
		{"fetch-add", func() (uint64, error) { return a.FetchAdd(ctx, 1, 0, 10) }, 5, 15},
		{"or", func() (uint64, error) { return a.Or(ctx, 1, 0, 0x100) }, 15, 0x10f},
		{"and", func() (uint64, error) { return a.And(ctx, 1, 0, 0x1f0) }, 0x10f, 0x100},
		{"xor", func() (uint64, error) { return a.Xor(ctx, 1, 0, 0x101) }, 0x100, 1},
		{"masked-swap", func() (uint64, error) { return a.MaskedSwap(ctx, 1, 0, 0xab00, 0xff00) }, 1, 0xab01},
		{"store", func() (uint64, error) { return a.Store(ctx, 1, 0, 7) }, 0xab01, 7},
		{"load", func() (uint64, error) { return a.Load(ctx, 1, 0) }, 7, 7},
	} {
		old, err := c.run()
		if err != nil || old != c.old {
			t.Fatalf("%s: old %#x, %v; want %#x", c.name, old, err, c.old)
		}
		if v, _ := b.Load(ctx, 1, 0); v != c.want {
			t.Fatalf("%s: word %#x, want %#x", c.name, v, c.want)
		}
	}
	// Concurrent CAS-loop adders from both members end exact.
	ctr0, _ := a.Counter(0, 64)
	ctr1, _ := b.Counter(0, 64)
	done := make(chan error, 4)
	for _, c := range []*shmem.Counter{ctr0, ctr1, ctr0, ctr1} {
		go func() {
			for range 50 {
				if _, err := c.Add(ctx, 1); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := ctr0.Load(ctx); v != 200 {
		t.Fatalf("CAS-loop counter = %d, want 200", v)
	}
}

func TestBitmapAndLock(t *testing.T) { testBitmapAndLock(t, transports[0]) }

// testBitmapAndLock claims and releases IDs from two members' views of one bitmap, and hands a
// lease lock from one member to the other.
func testBitmapAndLock(t *testing.T, tr transport) {
	segs := cluster(t, tr, 2, 1024)
	ctx := ctxT(t, 30*time.Second)
	a, b := segs[0], segs[1]
	bmA, _ := a.Bitmap(1, 512, 70)
	bmB, _ := b.Bitmap(1, 512, 70)
	got := map[uint64]bool{}
	for i := range 70 {
		bm := bmA
		if i%2 == 1 {
			bm = bmB
		}
		id, err := bm.Claim(ctx)
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if got[id] || id >= 70 {
			t.Fatalf("claim %d: ID %d again or out of range", i, id)
		}
		got[id] = true
	}
	if _, err := bmA.Claim(ctx); !errors.Is(err, shmem.ErrFull) {
		t.Fatalf("claim from a full bitmap: %v", err)
	}
	if err := bmB.Release(ctx, 33); err != nil {
		t.Fatal(err)
	}
	if err := bmA.Release(ctx, 33); !errors.Is(err, shmem.ErrNotHeld) {
		t.Fatalf("double release: %v", err)
	}
	// A's copy says full; its refresh finds the released ID.
	if id, err := bmA.Claim(ctx); err != nil || id != 33 {
		t.Fatalf("claim after release: %d, %v", id, err)
	}
	if n, err := bmB.Count(ctx); err != nil || n != 70 {
		t.Fatalf("count = %d, %v", n, err)
	}

	lkA, _ := a.Lock(0, 0, 300*time.Millisecond)
	lkB, _ := b.Lock(0, 0, 300*time.Millisecond)
	h, err := lkA.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h2, err := lkB.TryAcquire(ctx); err != nil || h2 != nil {
		t.Fatalf("TryAcquire of a held lock: %v, %v", h2, err)
	}
	if err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	// A stops renewing: B takes over once the lease lapses; A's lease is then lost.
	h2, err := lkB.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Renew(ctx); !errors.Is(err, shmem.ErrLockLost) {
		t.Fatalf("renew after takeover: %v", err)
	}
	if err := h.Release(ctx); !errors.Is(err, shmem.ErrLockLost) {
		t.Fatalf("release after takeover: %v", err)
	}
	if err := h2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h3, err := lkA.TryAcquire(ctx); err != nil || h3 == nil {
		t.Fatalf("TryAcquire of a free lock: %v, %v", h3, err)
	}
}
