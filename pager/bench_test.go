package pager

import (
	"testing"
)

// BenchmarkFaults measures random 4 KiB faults through the pager on each transport, beside a
// local userfaultfd baseline and raw 4 KiB RDMA reads in the same run, and a sequential scan
// with and without read-ahead. b.N is the number of timed faults.
func BenchmarkFaults(b *testing.B) {
	for _, tr := range []struct {
		name   string
		listen func() string
	}{
		{"shm", transports[1].listen},
		{"tcp-rxm", transports[0].listen},
	} {
		b.Run(tr.name, func(b *testing.B) {
			addr := startHelperB(b, tr.listen(), 64<<20)
			r, err := Bench(b.Context(), BenchConfig{Server: addr, Faults: max(b.N, 200), ScanPages: 2048,
				Options: Options{Logger: quiet()}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.FaultRate, "faults/s")
			b.ReportMetric(float64(r.P50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(r.P99.Nanoseconds()), "p99-ns")
			b.ReportMetric(r.LocalRate, "local-faults/s")
			b.ReportMetric(float64(r.RMAP50.Nanoseconds()), "rma-p50-ns")
			b.ReportMetric(r.RateRatio(), "rate/local")
			b.ReportMetric(r.LatencyRatio(), "p50/rma")
			b.ReportMetric(r.PrefetchSpeedup(), "prefetch-x")
			b.Logf("%+v", r)
		})
	}
}
