package ofi

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSignalOnlyToParked checks that a completion is signalled on its slot's channel only when
// its waiter parked: one found by the waiter's own polling used to leave a signal behind, which
// the slot's next use took out again, two channel operations per operation for nothing (about
// 0.1 µs between one operation's completion and the next one's post, one in flight). A parked
// waiter is still woken, also one that gave up waiting once and waits again.
func TestSignalOnlyToParked(t *testing.T) {
	ctx := testCtx(t)
	unsignalled := func(t *testing.T, q *CQ) {
		t.Helper()
		for i := range q.slots {
			if n := len(q.slots[i].ch); n != 0 {
				t.Fatalf("slot %d holds %d signals", i, n)
			}
		}
	}
	t.Run("spinning", func(t *testing.T) {
		// a polls for up to a second: its sends complete while it polls.
		a, b := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg, CQAttr{Spin: time.Second})
		abuf := a.reg(t, 4096, AccessLocal)
		bbuf := b.reg(t, 4096, AccessLocal)
		for range 20 {
			sendRecv(t, ctx, a, b, abuf, bbuf)
			unsignalled(t, a.cq)
		}
	})
	t.Run("parked", func(t *testing.T) {
		// a parks at once: its receives complete while it sleeps.
		a, b := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg, CQAttr{Spin: -1})
		abuf := a.reg(t, 4096, AccessLocal)
		bbuf := b.reg(t, 4096, AccessLocal)
		for i := range 5 {
			r := Op{Kind: OpRecv, Buf: abuf.Bytes()[:64], MR: abuf, Peer: AddrUnspec}
			tk, err := a.ep.Post(ctx, &r)
			if err != nil {
				t.Fatal(err)
			}
			// Give up once before the message comes: the receive stays posted.
			short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			err = a.ep.Wait(short, &r, tk)
			cancel()
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("receive %d before the send: %v", i, err)
			}
			go func() {
				time.Sleep(20 * time.Millisecond)
				b.ep.Send(ctx, bbuf.Bytes()[:8], bbuf, b.peer)
			}()
			if err := a.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
				t.Fatalf("receive %d: %d bytes, %v", i, r.Len, err)
			}
		}
	})
}
