package ofi

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// TestRecvBesideProgress runs a ping-pong in which every receive is posted while the previous
// exchange's progress may still run beside it and the next message may be arriving: each
// message must reach its receive, in order. libfabric 1.17's shm loses the match when a
// receive is posted while its progress queues an arriving message as unexpected (see
// Domain.recvAlone); the exchange then waits forever. It runs for at most 20000 exchanges or
// about 1 s a provider.
func TestRecvBesideProgress(t *testing.T) {
	const most, budget = 20000, time.Second
	for name, p := range pairs(t, CapMsg) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			a, b := p[0], p[1]
			abuf := a.reg(t, 4096, AccessLocal)
			bbuf := b.reg(t, 4096, AccessLocal)
			echoed := make(chan error, 1)
			go func() { // b: receive, then send the message back
				for {
					n, err := b.ep.Recv(ctx, bbuf.Bytes()[:64], bbuf, AddrUnspec)
					if err == nil && n == 8 && binary.LittleEndian.Uint64(bbuf.Bytes()) == ^uint64(0) {
						echoed <- nil
						return
					}
					if err == nil {
						err = b.ep.Send(ctx, bbuf.Bytes()[:n], bbuf, b.peer)
					}
					if err != nil {
						echoed <- err
						cancel() // the exchange waiting for this message ends too
						return
					}
				}
			}()
			end := time.Now().Add(budget)
			msg, back := abuf.Bytes()[:8], abuf.Bytes()[2048:2048+64]
			i := 0
			for ; i < most && (i < 100 || time.Now().Before(end)); i++ {
				binary.LittleEndian.PutUint64(msg, uint64(i))
				r := Op{Kind: OpRecv, Buf: back, MR: abuf, Peer: AddrUnspec}
				tk, err := a.ep.Post(ctx, &r)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.ep.Send(ctx, msg, abuf, a.peer); err != nil {
					t.Fatal(err)
				}
				if err := a.ep.Wait(ctx, &r, tk); err != nil {
					select {
					case e := <-echoed:
						t.Fatalf("exchange %d: %v; echo: %v", i, err, e)
					default:
						t.Fatalf("exchange %d: %v", i, err)
					}
				}
				if v := binary.LittleEndian.Uint64(back); r.Len != 8 || v != uint64(i) {
					t.Fatalf("exchange %d: %d bytes back, message %d", i, r.Len, v)
				}
			}
			binary.LittleEndian.PutUint64(msg, ^uint64(0))
			if err := a.ep.Send(ctx, msg, abuf, a.peer); err != nil {
				t.Fatal(err)
			}
			if err := <-echoed; err != nil {
				t.Fatalf("echo: %v", err)
			}
			t.Logf("%d exchanges", i)
		})
	}
}
