package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/internal/hangdump"
)

// TestRunSmoke runs every case once, briefly, on each provider and checks the results are
// sane: both sides moved data and produced positive figures.
func TestRunSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hangdump.Before(t, ctx, 10*time.Second) // a pingpong that hangs shows where (seen once on shm)
	rs, err := Run(ctx, Config{Target: 5 * time.Millisecond, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2*len(DefaultCases()) {
		t.Fatalf("%d results, want %d", len(rs), 2*len(DefaultCases()))
	}
	for _, r := range rs {
		if !(r.Go > 0 && r.C > 0 && r.Ratio > 0) || r.Iters <= 0 {
			t.Errorf("%s %s: %+v", r.Provider, r.Case, r)
		}
	}
	WriteTable(os.Stdout, rs)
}

// BenchmarkGoVsC reports, per provider and case, the Go/C ratio as a benchmark metric.
func BenchmarkGoVsC(b *testing.B) {
	for _, prov := range []string{"tcp;ofi_rxm", "shm"} {
		for _, c := range DefaultCases() {
			b.Run(prov+"/"+c.Name(), func(b *testing.B) {
				var last Result
				for range b.N {
					rs, err := Run(context.Background(), Config{Providers: []string{prov}, Cases: []Case{c},
						Target: 100 * time.Millisecond, Rounds: 1})
					if err != nil {
						b.Fatal(err)
					}
					last = rs[0]
				}
				b.ReportMetric(last.Ratio, "go/c")
				b.ReportMetric(last.Go, "go-"+last.Unit)
				b.ReportMetric(last.C, "c-"+last.Unit)
			})
		}
	}
}
