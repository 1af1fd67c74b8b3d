package raid

import (
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
)

// rawReadBandwidth measures fabric RMA-read bandwidth on tr: total bytes in piece-sized reads,
// batched, from one process-local peer to another, on warm buffers; the best of three runs of
// iters passes.
func rawReadBandwidth(b testing.TB, tr string, total, piece, iters int) float64 {
	ctx := testCtx(b, time.Minute)
	pair := fabrictest.Connect(b, listenAddr(tr))
	cli := pair.ClientConn
	p := newPassive(pair.ServerConn) // the reads' passive side is progressed, as the raid host's is
	defer p.close()
	src, err := pair.Server.Alloc(total, fabric.RemoteRead)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := pair.Client.Alloc(total, 0)
	if err != nil {
		b.Fatal(err)
	}
	ops := make([]fabric.Op, total/piece)
	for i := range ops {
		ops[i] = fabric.Op{Kind: fabric.OpRead, Mem: dst, Off: i * piece, Len: piece, Remote: src.Remote(), RemoteOff: uint64(i * piece)}
	}
	pass := func() {
		for k := 0; k < len(ops); k += 64 {
			if err := cli.Do(ctx, ops[k:min(len(ops), k+64)]); err != nil {
				b.Fatal(err)
			}
		}
	}
	pass() // fault the pages in: the raid paths run on warm buffers too
	best := 0.0
	for range 3 {
		start := time.Now()
		for range iters {
			pass()
		}
		best = max(best, float64(total*iters)/time.Since(start).Seconds())
	}
	return best
}

// BenchmarkFullStripe measures 8+2 full-stripe writes and reads with 64 KiB chunks, degraded
// reads (one member missing), the through-controller write path, and raw RMA-read bandwidth, all
// in the same run, and reports the ratios.
func BenchmarkFullStripe(b *testing.B) {
	for _, tp := range []string{"shm", "tcp"} {
		b.Run(tp, func(b *testing.B) {
			const chunk = 64 << 10
			const op = 8 << 20 // 16 stripes of 8 × 64 KiB
			const stripes = 64
			// Targets and controller run as processes (stores on tmpfs), as in production.
			pv := newProcVolumeIn(b, memDir(b), tp, "8+2", 10, chunk, stripes*chunk+dataStart)
			ctx := testCtx(b, 10*time.Minute)
			cli, err := Dial(ctx, pv.ctrl.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			v := struct{ cli *Client }{cli}
			mem, err := v.cli.Alloc(op)
			if err != nil {
				b.Fatal(err)
			}
			for i := range mem.Bytes() {
				mem.Bytes()[i] = byte(i*31 + i>>11)
			}
			slots := v.cli.Size() / op
			var tw, tr, td, tt time.Duration
			run := func(d *time.Duration, f func(off int64) error, i int) {
				start := time.Now()
				if err := f(int64(i) % slots * op); err != nil {
					b.Fatal(err)
				}
				*d += time.Since(start)
			}
			// The reference is the better of RMA reads in chunk-sized and in 2 MiB pieces,
			// measured while the volume's processes are idle.
			raw := max(rawReadBandwidth(b, tp, op, chunk, 8), rawReadBandwidth(b, tp, op, 2<<20, 8))
			for i := range slots { // warm: the stores' pages exist, the buffers are faulted in
				if err := v.cli.Write(ctx, mem, 0, i*op, op); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(op)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(&tw, func(off int64) error { return v.cli.Write(ctx, mem, 0, off, op) }, i)
				run(&tr, func(off int64) error { return v.cli.Read(ctx, mem, 0, off, op) }, i)
				run(&td, func(off int64) error { return v.cli.ReadExcluding(ctx, mem, 0, off, op, 1<<3) }, i)
				run(&tt, func(off int64) error { return v.cli.WriteThroughController(ctx, mem, 0, off, op) }, i)
			}
			b.StopTimer()
			gbs := func(d time.Duration) float64 { return float64(op) * float64(b.N) / d.Seconds() }
			w, r, d, t := gbs(tw), gbs(tr), gbs(td), gbs(tt)
			b.ReportMetric(raw/1e9, "raw-rma-read-GB/s")
			b.ReportMetric(w/1e9, "write-GB/s")
			b.ReportMetric(r/1e9, "read-GB/s")
			b.ReportMetric(d/1e9, "degraded-read-GB/s")
			b.ReportMetric(t/1e9, "through-ctrl-write-GB/s")
			b.ReportMetric(w/raw, "write/raw")
			b.ReportMetric(r/raw, "read/raw")
			b.ReportMetric(d/raw, "degraded/raw")
			b.ReportMetric(w/t, "write/through-ctrl")
			st, err := v.cli.Status(ctx)
			if err != nil {
				b.Fatal(err)
			}
			direct := st.Counters.DataToTargets - uint64(b.N)*op // the through-controller writes' share
			b.ReportMetric(float64(direct), "direct-path-ctrl-data-egress-B")
		})
	}
}
