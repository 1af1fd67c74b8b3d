package ofi

import (
	"testing"
	"time"
)

// A goroutine polling a queue (a spinning waiter, a post retrying) does not park on the
// domain's quiet lock while a progress goroutine's fi_trywait holds it or waits for it: it
// reads nothing that round and polls again. Parked, it waited for a thread to wake it; a
// pipelined loop of fetch-adds on tcp;ofi_rxm parked there about once in 400 operations, on
// the trywaits of another queue of the domain.
func TestPollSkipsQuietDomain(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf, bbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	exchange := func() { sendRecv(t, ctx, b, a, bbuf, abuf) }
	exchange()
	// drain with try, q.mu held as poll holds it: returns at once.
	a.cq.mu.Lock()
	a.dom.quiet.Lock() // as a trywait does
	drained := make(chan int, 1)
	go func() { drained <- a.cq.drain(true) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		a.dom.quiet.Unlock()
		<-drained
		a.cq.mu.Unlock()
		t.Fatal("drain with try waited for the quiet lock")
	}
	a.dom.quiet.Unlock()
	a.cq.mu.Unlock()
	// poll, which drains that way. Its progress goroutine, parked on the idle queue's wait fd,
	// does not hold q.mu now (its next look is 10 ms away).
	time.Sleep(2 * time.Millisecond)
	a.dom.quiet.Lock()
	polled := make(chan int, 1)
	go func() { polled <- a.cq.poll() }()
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		a.dom.quiet.Unlock()
		<-polled
		t.Fatal("poll waited for the quiet lock")
	}
	a.dom.quiet.Unlock()
	exchange() // the queue works on
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
