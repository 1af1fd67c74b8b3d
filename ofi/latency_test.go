package ofi

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLatencyPathPollsForATime checks that the cgo call posting a lone operation on the
// latency path polls for its completion for latencyPathPoll, not for a number of polls: a lone
// receive that nothing matches keeps its posting call for the whole time (64 polls, what the
// call made before, took well under a millisecond), and with no time at all the call returns
// after one poll. The message sent afterwards still reaches the receive. (A post finding the
// queue drained by someone else just then skips the path: such tries are repeated.)
func TestLatencyPathPollsForATime(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf := a.reg(t, 4096, AccessLocal)
	bbuf := b.reg(t, 4096, AccessLocal)
	defer func(d time.Duration) { latencyPathPoll = d }(latencyPathPoll)
	for _, d := range []time.Duration{30 * time.Millisecond, 0} {
		latencyPathPoll = d
		for try := 0; ; try++ {
			r := Op{Kind: OpRecv, Buf: abuf.Bytes()[:64], MR: abuf, Peer: AddrUnspec}
			before := a.ep.latencyPosts.Load()
			start := time.Now()
			tk, err := a.ep.postOne(ctx, &r, true)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			onPath := a.ep.latencyPosts.Load() != before
			if onPath && took < d {
				t.Errorf("poll for %v: the posting call returned after %v", d, took)
			}
			if took > d+5*time.Second {
				t.Errorf("poll for %v: the posting call took %v", d, took)
			}
			if err := b.ep.Send(ctx, bbuf.Bytes()[:8], bbuf, b.peer); err != nil {
				t.Fatal(err)
			}
			if err := a.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
				t.Fatalf("poll for %v: receive: %d bytes, %v", d, r.Len, err)
			}
			if onPath {
				break
			}
			if try == 20 {
				t.Fatalf("poll for %v: no post took the latency path in %d tries", d, try+1)
			}
		}
	}
}

// TestPostSkipsLatencyPath checks that Post, whose caller goes on, never polls in the posting
// call: a pre-posted receive used to spin there for latencyPathPoll (or until any completion),
// a pingpong's round trip spent waiting before the send the reply answers (on shm 14 us a
// round trip instead of 3). A one-op Do takes the path.
func TestPostSkipsLatencyPath(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf := a.reg(t, 4096, AccessLocal)
	bbuf := b.reg(t, 4096, AccessLocal)
	sends := b.ep.latencyPosts.Load()
	for i := range 20 {
		r := Op{Kind: OpRecv, Buf: abuf.Bytes()[:64], MR: abuf, Peer: AddrUnspec}
		before := a.ep.latencyPosts.Load()
		tk, err := a.ep.Post(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		if n := a.ep.latencyPosts.Load() - before; n != 0 {
			t.Errorf("post %d: %d posting calls on the latency path", i, n)
		}
		if err := b.ep.Send(ctx, bbuf.Bytes()[:8], bbuf, b.peer); err != nil {
			t.Fatal(err)
		}
		if err := a.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
			t.Fatalf("receive %d: %d bytes, %v", i, r.Len, err)
		}
	}
	// A send takes the path unless the queue is being drained just then.
	if b.ep.latencyPosts.Load() == sends {
		t.Error("no send took the latency path")
	}
}

// TestCancelledRecvThenClose checks that closing a fabric after receives on it were cancelled
// (ofi Recvs whose context ended) does not crash: rxm (libfabric 1.17) segfaulted in the
// progress goroutine's fi_cq_read when it read the queue between the endpoint's close and the
// queue's, in about 1 of 5 such closes with the CPU loaded. A queue whose endpoints have all
// closed is no longer read.
func TestCancelledRecvThenClose(t *testing.T) {
	for i := range 10 {
		a, _ := rdmPair(t, "tcp;ofi_rxm", CapMsg)
		abuf := a.reg(t, 4096, AccessLocal)
		if a.cq.unbound() || a.cq.eps.Load() != 1 {
			t.Fatalf("round %d: queue bound to %d endpoints, unbound %v", i, a.cq.eps.Load(), a.cq.unbound())
		}
		for range 3 {
			ctx, cancel := context.WithTimeout(testCtx(t), time.Millisecond)
			_, err := a.ep.Recv(ctx, abuf.Bytes()[:64], abuf, AddrUnspec)
			cancel()
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("round %d: unmatched receive: %v, want ErrTimeout", i, err)
			}
		}
		if err := a.ep.Close(); err != nil {
			t.Fatal(err)
		}
		if !a.cq.unbound() {
			t.Fatalf("round %d: queue still bound after its endpoint closed", i)
		}
		a.fab.Close()
	}
}
