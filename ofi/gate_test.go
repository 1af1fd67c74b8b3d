package ofi

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A gate lets its fd's readiness wake the waiter only while open; opening it on a readable fd
// wakes the next wait at once; kick and skip end a wait early.
func TestGateWaiter(t *testing.T) {
	rd, wr := testPipe(t)
	g, err := newGateWaiter(rd)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	signal := func() {
		if _, err := unix.Write(wr, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	drain := func() {
		var b [16]byte
		for {
			if _, err := unix.Read(rd, b[:]); err != nil {
				return
			}
		}
	}
	long := func() time.Time { return time.Now().Add(10 * time.Second) }
	short := func() time.Time { return time.Now().Add(30 * time.Millisecond) }

	signal()
	if fired, err := g.wait(long(), nil); !fired || err != nil {
		t.Fatalf("open gate, readable fd: fired %v, %v", fired, err)
	}
	drain()
	if fired, err := g.wait(short(), nil); fired || err != nil {
		t.Fatalf("open gate, quiet fd: fired %v, %v", fired, err)
	}
	if err := g.shut(); err != nil {
		t.Fatal(err)
	}
	signal()
	if fired, err := g.wait(short(), nil); fired || err != nil {
		t.Fatalf("shut gate, readable fd: fired %v, %v", fired, err)
	}
	if err := g.openGate(); err != nil {
		t.Fatal(err)
	}
	if fired, err := g.wait(long(), nil); !fired || err != nil {
		t.Fatalf("gate opened on a readable fd: fired %v, %v", fired, err)
	}
	drain()

	go func() {
		time.Sleep(20 * time.Millisecond)
		g.kick()
	}()
	start := time.Now()
	if fired, err := g.wait(long(), nil); fired || err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("kicked wait: fired %v, %v after %v", fired, err, time.Since(start))
	}
	start = time.Now()
	if fired, err := g.wait(long(), func() bool { return true }); fired || err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("skipped wait: fired %v, %v after %v", fired, err, time.Since(start))
	}
}

// While goroutines poll a queue in await, its progress goroutine stands by with the wait fd's
// gate shut instead of waking for the completions they reap; once they stop, it serves the
// queue again (here: a peer's atomics on this side's memory).
func TestProgressStandsByForSpinners(t *testing.T) {
	a, b := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic, CQAttr{Spin: 10 * time.Second})
	if !a.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm gave no wait fd here: its queues are polled")
	}
	ctx := testCtx(t)
	rb := b.reg(t, 4096, AccessLocal|AccessRemote).Region()
	const n = 500
	standing := 0
	for i := range n {
		v, err := a.ep.FetchAtomic(ctx, OpSum, Uint64, a.peer, rb.Addr, rb.Key, 1)
		if err != nil || v != uint64(i) {
			t.Fatalf("fetch-add %d: %d %v", i, v, err)
		}
		if a.cq.standingBy.Load() {
			standing++
		}
	}
	if standing < n/2 {
		t.Errorf("a's progress goroutine stood by after %d of %d spun operations, want most", standing, n)
	}
	ra := a.reg(t, 4096, AccessLocal|AccessRemote).Region()
	for i := range 50 {
		v, err := b.ep.FetchAtomic(ctx, OpSum, Uint64, b.peer, ra.Addr, ra.Key, 1)
		if err != nil || v != uint64(i) {
			t.Fatalf("b's fetch-add %d on a: %d %v", i, v, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); a.cq.standingBy.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a's progress goroutine still stands by with nobody polling")
		}
	}
}
