package ofi

import (
	"testing"
	"time"
)

// A goroutine polling a queue (a spinning waiter, a post retrying) does not park on the
// domain's quiet lock while a progress goroutine's fi_trywait holds it or waits for it: it
// reads nothing that round and polls again. Parked, it waited for a thread to wake it; a
// pipelined loop of fetch-adds on tcp;ofi_rxm parked there about once in 400 operations, on
// the trywaits of the domain's other, idle queues.
func TestPollSkipsQuietDomain(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf, bbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	r := Op{Kind: OpRecv, Buf: abuf.Bytes(), MR: abuf, Peer: AddrUnspec}
	tk, err := a.ep.Post(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ep.Send(ctx, bbuf.Bytes()[:8], bbuf, b.peer); err != nil {
		t.Fatal(err)
	}
	a.dom.quiet.Lock() // as a trywait does
	polled := make(chan int, 1)
	go func() { polled <- a.cq.poll() }()
	select {
	case n := <-polled:
		if n != 0 {
			t.Errorf("poll read %d completions while the domain was quiet-locked", n)
		}
	case <-time.After(5 * time.Second):
		a.dom.quiet.Unlock()
		t.Fatalf("poll waited for the quiet lock (returned %d once it was free)", <-polled)
	}
	a.dom.quiet.Unlock()
	if err := a.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
		t.Fatalf("receive after the lock was free: %d bytes, %v", r.Len, err)
	}
}

// A post takes the quiet lock shared once a trywait that holds it is done, whether it yielded
// meanwhile (a short trywait) or parked (a long one).
func TestPostWaitsOutQuietLock(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf, bbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	for _, hold := range []time.Duration{0, 20 * time.Millisecond} {
		a.dom.quiet.Lock()
		sent := make(chan error, 1)
		go func() { sent <- a.ep.Send(ctx, abuf.Bytes()[:8], abuf, a.peer) }()
		time.Sleep(hold)
		select {
		case err := <-sent:
			t.Fatalf("a send went out while the domain was quiet-locked: %v", err)
		default:
		}
		a.dom.quiet.Unlock()
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if n, err := b.ep.Recv(ctx, bbuf.Bytes(), bbuf, AddrUnspec); err != nil || n != 8 {
			t.Fatalf("receive: %d bytes, %v", n, err)
		}
	}
}
