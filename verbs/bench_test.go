package verbs_test

import (
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/verbs"
)

// benchRDMA measures signaled RDMA writes or reads of size bytes over a loopback RC pair,
// keeping up to depth operations in flight.
func benchRDMA(b *testing.B, op verbs.Opcode, size int) {
	p := newPair(b, pairOpts{size: size, cap: verbs.QPCap{MaxSendWR: 16}})
	const depth = 8
	w := verbs.SendWR{Opcode: op, Flags: verbs.Signaled, RemoteAddr: p.sbuf.mr.Addr(), RKey: p.sbuf.mr.RKey()}
	w.Local(p.cbuf.mr.SGE(0, size))
	qp, cq := p.client.QP(), p.client.QP().SendCQ()
	wcs := make([]verbs.WC, depth)
	ctx := tctx(b, 5*time.Minute)
	b.SetBytes(int64(size))
	b.ResetTimer()
	inflight, posted := 0, 0
	for done := 0; done < b.N; {
		for inflight < depth && posted < b.N {
			w.ID = uint64(posted)
			if _, err := qp.PostSend([]verbs.SendWR{w}); err != nil {
				b.Fatal(err)
			}
			inflight++
			posted++
		}
		n, err := cq.Wait(ctx, wcs)
		if err != nil {
			b.Fatal(err)
		}
		for _, wc := range wcs[:n] {
			if err := wc.Err(); err != nil {
				b.Fatal(err)
			}
		}
		inflight -= n
		done += n
	}
}

func BenchmarkWrite(b *testing.B) {
	b.Run("64KiB", func(b *testing.B) { benchRDMA(b, verbs.OpWrite, 64<<10) })
	b.Run("1MiB", func(b *testing.B) { benchRDMA(b, verbs.OpWrite, 1<<20) })
}

func BenchmarkRead(b *testing.B) {
	b.Run("64KiB", func(b *testing.B) { benchRDMA(b, verbs.OpRead, 64<<10) })
	b.Run("1MiB", func(b *testing.B) { benchRDMA(b, verbs.OpRead, 1<<20) })
}

// BenchmarkReadLat measures one 8-byte RDMA read at a time (round-trip latency).
func BenchmarkReadLat(b *testing.B) {
	p := newPair(b, pairOpts{size: 4096})
	w := verbs.SendWR{Opcode: verbs.OpRead, Flags: verbs.Signaled, RemoteAddr: p.sbuf.mr.Addr(), RKey: p.sbuf.mr.RKey()}
	w.Local(p.cbuf.mr.SGE(0, 8))
	wrs := []verbs.SendWR{w}
	wcs := make([]verbs.WC, 1)
	ctx := tctx(b, 5*time.Minute)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.client.QP().PostSend(wrs); err != nil {
			b.Fatal(err)
		}
		if _, err := p.client.QP().SendCQ().Wait(ctx, wcs); err != nil || wcs[0].Err() != nil {
			b.Fatal(err, wcs[0].Err())
		}
	}
}

// BenchmarkSendLat measures an 8-byte signaled send ping-pong over RC; one op is a full
// round trip (ping and pong).
func BenchmarkSendLat(b *testing.B) {
	p := newPair(b, pairOpts{size: 4096})
	var r, rc verbs.RecvWR
	r.Local(p.sbuf.mr.SGE(0, 8))
	rc.Local(p.cbuf.mr.SGE(64, 8))
	ping := verbs.SendWR{Opcode: verbs.OpSend, Flags: verbs.Signaled}
	ping.Local(p.cbuf.mr.SGE(0, 8))
	pong := verbs.SendWR{Opcode: verbs.OpSend, Flags: verbs.Signaled}
	pong.Local(p.sbuf.mr.SGE(64, 8))
	ctx := tctx(b, 5*time.Minute)
	srv, cli := p.server.QP(), p.client.QP()
	// waitRecv returns at the next receive completion, dropping send completions on the way.
	waitRecv := func(cq *verbs.CQ) {
		var wcs [4]verbs.WC
		for {
			n, err := cq.Wait(ctx, wcs[:])
			if err != nil {
				b.Fatal(err)
			}
			for _, wc := range wcs[:n] {
				if err := wc.Err(); err != nil {
					b.Fatal(err)
				}
				if wc.Opcode == verbs.WCRecv {
					return
				}
			}
		}
	}
	if _, err := srv.PostRecv([]verbs.RecvWR{r}); err != nil {
		b.Fatal(err)
	}
	if _, err := cli.PostRecv([]verbs.RecvWR{rc}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cli.PostSend([]verbs.SendWR{ping}); err != nil {
			b.Fatal(err)
		}
		waitRecv(srv.RecvCQ())
		if _, err := srv.PostRecv([]verbs.RecvWR{r}); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.PostSend([]verbs.SendWR{pong}); err != nil {
			b.Fatal(err)
		}
		waitRecv(cli.RecvCQ())
		if _, err := cli.PostRecv([]verbs.RecvWR{rc}); err != nil {
			b.Fatal(err)
		}
	}
}
