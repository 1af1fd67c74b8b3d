package ofi

import (
	"context"
	"testing"
	"time"
)

// An idle queue's progress goroutine wakes less and less often: its safety tick doubles from
// tickMin to tickMax while nothing happens (at a fixed 10 ms, every queue of an idle process
// woke 100 times a second).
func TestIdleQueueTickBacksOff(t *testing.T) {
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	if !a.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	// A message from b that a waits for: a's queue has been used, and is empty again.
	rbuf, sbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	recv := Op{Kind: OpRecv, Buf: rbuf.Bytes()[:64], MR: rbuf, Peer: AddrUnspec}
	rt, err := a.ep.Post(ctx, &recv)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ep.Do(ctx, []Op{{Kind: OpSend, Buf: sbuf.Bytes()[:8], MR: sbuf, Peer: b.peer}}); err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Wait(ctx, &recv, rt); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the standby after the waits
	const quiet = time.Second
	before := a.cq.fdWaits.Load()
	time.Sleep(quiet)
	woke := a.cq.fdWaits.Load() - before
	// Backing off to 160 ms: about 10 wake-ups a second, against 100 at a fixed 10 ms.
	const limit = 30
	if woke > limit {
		t.Fatalf("an idle queue's progress goroutine woke %d times in %v (want at most %d)", woke, quiet, limit)
	}
	if woke == 0 {
		t.Fatalf("no safety tick in %v", quiet)
	}
}

// A waiter that parks on a quiet queue brings its progress goroutine back from a long safety
// tick at once (await kicks it), rather than when the long wait runs out.
func TestParkedWaiterShortensTick(t *testing.T) {
	a, _ := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	if !a.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	time.Sleep(time.Second) // quiet: the tick has backed off to tickMax
	// Right after a wait ends, the next one (tickMax long) begins.
	for w := a.cq.fdWaits.Load(); a.cq.fdWaits.Load() == w; {
		time.Sleep(100 * time.Microsecond)
	}
	before := a.cq.fdWaits.Load()
	rbuf := a.reg(t, 64, AccessLocal)
	recv := Op{Kind: OpRecv, Buf: rbuf.Bytes()[:64], MR: rbuf, Peer: AddrUnspec}
	rt, err := a.ep.Post(ctx, &recv)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	waited := make(chan struct{})
	defer func() {
		cancel()
		<-waited
	}()
	go func() { // nothing comes: it spins, then parks until wctx ends
		defer close(waited)
		a.ep.Wait(wctx, &recv, rt)
	}()
	start := time.Now()
	for a.cq.fdWaits.Load() == before {
		if time.Since(start) > tickMax/2 {
			t.Fatalf("the progress goroutine's %v wait went on %v after a waiter parked", tickMax, time.Since(start))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// While a goroutine keeps polling a queue with operations back to back, its standing-by
// progress goroutine looks again after 2 ms, then less often, up to every standbyRecheckMax
// (at a fixed 2 ms, 500 looks a second).
func TestStandbyRecheckBacksOff(t *testing.T) {
	a, b := rdmPair(t, "tcp;ofi_rxm", CapRMA)
	if !a.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	loc, rem := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal|AccessRemote)
	r := rem.Region()
	op := []Op{{Kind: OpWrite, Buf: loc.Bytes()[:8], MR: loc, Peer: a.peer, RemoteAddr: r.Addr, Key: r.Key}}
	const busy = 400 * time.Millisecond
	var before uint64
	for start := time.Now(); time.Since(start) < busy; {
		if err := a.ep.Do(ctx, op); err != nil {
			t.Fatal(err)
		}
		if before == 0 && time.Since(start) > 20*time.Millisecond {
			before = a.cq.standbys.Load() // past the first short rechecks
		}
	}
	looks := a.cq.standbys.Load() - before
	// Backed off to 8 ms: about 50 looks in 400 ms, against 190 at a fixed 2 ms.
	const limit = 100
	if looks > limit {
		t.Fatalf("the standing-by progress goroutine looked %d times in %v of operations (want at most %d)", looks, busy, limit)
	}
	if looks == 0 {
		t.Fatalf("the progress goroutine never stood by in %v of operations", busy)
	}
}

// A goroutine watching a standing receive (Endpoint.Watch) leaves the queue as idle as with
// nobody waiting: its progress goroutine backs off its safety tick (a parked Wait keeps it at
// 10 ms), and the receive still completes when its message comes.
func TestWatchKeepsQueueIdle(t *testing.T) {
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapTagged)
	if !a.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	rbuf, sbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	recv := Op{Kind: OpTRecv, Buf: rbuf.Bytes()[:8], MR: rbuf, Peer: AddrUnspec, Tag: 7}
	rt, err := a.ep.Post(ctx, &recv)
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- a.ep.Watch(context.Background(), &recv, rt) }()
	time.Sleep(100 * time.Millisecond)
	const quiet = time.Second
	before := a.cq.fdWaits.Load()
	time.Sleep(quiet)
	woke := a.cq.fdWaits.Load() - before
	const limit = 30 // as TestIdleQueueTickBacksOff; a parked Wait gives about 100
	if woke > limit {
		t.Errorf("with a watched receive the queue's progress goroutine woke %d times in %v (want at most %d)", woke, quiet, limit)
	}
	select {
	case err := <-watched:
		t.Fatalf("the watch ended before its message: %v", err)
	default:
	}
	if err := b.ep.Do(ctx, []Op{{Kind: OpTSend, Buf: sbuf.Bytes()[:8], MR: sbuf, Peer: b.peer, Tag: 7}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-watched:
		if err != nil || recv.RecvTag != 7 {
			t.Fatalf("watched receive: %v, tag %d", err, recv.RecvTag)
		}
	case <-ctx.Done():
		t.Fatal("the watched receive did not complete")
	}
}
