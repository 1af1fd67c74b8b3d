package ofi

import (
	"testing"
	"time"
)

// waitStandingBy waits until p stands by.
func waitStandingBy(t *testing.T, p *poller) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !p.standingBy.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not stand by for a spinner")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// While a goroutine spins on one of a domain's polled queues, the domain's poller stands by
// and the spinner serves the domain's other queues (serve): a poller spinning beside it would
// take a CPU from the peer it waits for. Here the spinner is held by hand: a receive whose
// message has arrived stays pending while the poller stands by (however busy the domain
// looks), serve finishes it, and once the spinner stops the poller polls again.
func TestPollerStandsByForSpinners(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPairCQ(t, "shm", CapMsg, CQAttr{})
	if a.cq.WaitFD() {
		t.Skip("shm queue with a wait fd")
	}
	abuf, bbuf := a.reg(t, 64, AccessLocal), b.reg(t, 64, AccessLocal)
	p := &a.dom.poll
	p.spinStart()
	waitStandingBy(t, p)
	rounds := p.rounds.Load()
	r := Op{Kind: OpRecv, Buf: abuf.Bytes(), MR: abuf, Peer: AddrUnspec}
	tk, err := a.ep.Post(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- b.ep.Send(ctx, bbuf.Bytes()[:8], bbuf, b.peer) }()
	for range 2000 { // posts and 20 ms: a busy domain, to a poller that does not stand by
		p.touch()
		time.Sleep(10 * time.Microsecond)
	}
	if n := p.rounds.Load() - rounds; n > 0 {
		t.Fatalf("the poller made %d rounds beside a spinner", n)
	}
	if st := a.cq.slots[tk.id].state.Load(); st != slotPending {
		t.Fatalf("the receive finished (state %d) with nobody polling its queue", st)
	}
	for deadline := time.Now().Add(10 * time.Second); a.cq.slots[tk.id].state.Load() == slotPending; {
		if time.Now().After(deadline) {
			t.Fatal("serve did not finish the receive")
		}
		p.serve(nil) // as the spinner does
		time.Sleep(10 * time.Microsecond)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
		t.Fatalf("receive: %d bytes, %v", r.Len, err)
	}
	p.spinDone()
	for deadline := time.Now().Add(10 * time.Second); p.rounds.Load() == rounds; {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not poll again after the spinner stopped")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// A waiter that parks after spinning on a polled queue may leave nobody polling it: the
// poller, standing by for spinners, takes over at once rather than after its stand-by.
func TestParkedWaiterEndsPollerStandBy(t *testing.T) {
	a, _ := rdmPairCQ(t, "shm", CapMsg, CQAttr{})
	if a.cq.WaitFD() {
		t.Skip("shm queue with a wait fd")
	}
	p := &a.dom.poll
	p.mu.Lock()
	p.standByFor = time.Hour // no safety net: only the kick ends it
	p.mu.Unlock()
	p.spinStart() // a spinner as await makes one
	waitStandingBy(t, p)
	rounds := p.rounds.Load()
	p.spinDone() // as await does when its spin ends without the completion
	p.parked()
	for deadline := time.Now().Add(10 * time.Second); p.rounds.Load() == rounds; {
		if time.Now().After(deadline) {
			t.Fatal("the poller did not poll after the waiter parked")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
