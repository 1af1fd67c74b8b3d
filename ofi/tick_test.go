package ofi

import (
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
