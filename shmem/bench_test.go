package shmem_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/shmem"
	"github.com/rdmakit/rdmakit/shmem/shmembench"
)

// BenchmarkAtomics measures fetch-add, CSWAP and masked swap one in flight and pipelined, with
// no contention and with every member on one word, beside the C reference loop (same
// libfabric calls, same target, same process). b.N operations per run; metrics:
// go-ops/s, c-ops/s, go/c (target ≥ 0.95; c is the loop with fabric's libfabric setup),
// go/lean (against the lean setup: no wait fd, FI_THREAD_DOMAIN), cgo/c (the C loop driven
// from a goroutine, one cgo call per batch: what Go itself costs) and, for depth > 1,
// pipe/1-go and pipe/1-c (pipelined over one in flight, target ≥ 3 on tcp;ofi_rxm).
func BenchmarkAtomics(b *testing.B) {
	const depth, nodes = 32, 3
	for _, tr := range []string{"ofi+tcp", "ofi+shm", "ofi+sockets"} {
		b.Run(tr, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			c, err := shmembench.NewCluster(ctx, tr, nodes, 4096, fabric.WithSpin(200*time.Microsecond))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for _, contention := range []bool{false, true} {
				for _, op := range []shmem.OpKind{shmem.OpAdd, shmem.OpCSwap, shmem.OpMaskedSwap} {
					name := fmt.Sprintf("%s/contention=%v", op, contention)
					b.Run(name, func(b *testing.B) {
						one := shmembench.Case{Op: op, Depth: 1, Contention: contention}
						pip := shmembench.Case{Op: op, Depth: depth, Contention: contention}
						var r [2]shmembench.Result
						for i, cs := range []shmembench.Case{one, pip} {
							r[i].Case = cs
							if r[i].Go, err = c.RunGo(ctx, cs, b.N); err != nil {
								b.Fatal(err)
							}
							if r[i].C, err = c.RunC(cs, b.N); err != nil {
								b.Fatal(err)
							}
							if r[i].CLean, err = c.RunCLean(cs, b.N); err != nil {
								b.Fatal(err)
							}
							if r[i].CGo, err = c.RunCFromGo(cs, b.N); err != nil {
								b.Fatal(err)
							}
						}
						b.ReportMetric(r[0].Go, "go1-ops/s")
						b.ReportMetric(r[0].C, "c1-ops/s")
						b.ReportMetric(r[0].Ratio(), "go/c-1")
						b.ReportMetric(r[0].LeanRatio(), "go/lean-1")
						b.ReportMetric(r[0].CGoRatio(), "cgo/c-1")
						b.ReportMetric(r[1].Go, "go32-ops/s")
						b.ReportMetric(r[1].C, "c32-ops/s")
						b.ReportMetric(r[1].Ratio(), "go/c-32")
						b.ReportMetric(r[1].LeanRatio(), "go/lean-32")
						b.ReportMetric(r[1].CGoRatio(), "cgo/c-32")
						b.ReportMetric(r[1].Go/r[0].Go, "pipe/1-go")
						b.ReportMetric(r[1].C/r[0].C, "pipe/1-c")
					})
				}
			}
		})
	}
}
