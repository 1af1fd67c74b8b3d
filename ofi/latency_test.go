package ofi

import (
	"testing"
	"time"
)

// TestLatencyPathPollsForATime checks that the cgo call posting a lone operation polls for its
// completion for latencyPathPoll, not for a number of polls: a lone receive that nothing
// matches keeps its Post in that call for the whole time (64 polls, what the call made before,
// took well under a millisecond), and with no time at all the call returns after one poll.
// The message sent afterwards still reaches the receive.
func TestLatencyPathPollsForATime(t *testing.T) {
	ctx := testCtx(t)
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg)
	abuf := a.reg(t, 4096, AccessLocal)
	bbuf := b.reg(t, 4096, AccessLocal)
	defer func(d time.Duration) { latencyPathPoll = d }(latencyPathPoll)
	for _, d := range []time.Duration{30 * time.Millisecond, 0} {
		latencyPathPoll = d
		r := Op{Kind: OpRecv, Buf: abuf.Bytes()[:64], MR: abuf, Peer: AddrUnspec}
		start := time.Now()
		tk, err := a.ep.Post(ctx, &r)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if took < d {
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
	}
}
