// Package bench measures rdmakit's data path beside C reference loops that make the same
// libfabric calls in the same binary, and reports Go/C ratios. Absolute figures on a shared
// machine are noisy; ratios from one run are what to compare.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Kind is what a case measures.
type Kind string

// Cases measured.
const (
	Write    Kind = "rma-write"
	Read     Kind = "rma-read"
	PingPong Kind = "pingpong"
	FetchAdd Kind = "fetch-add"
)

// Case is one measurement.
type Case struct {
	Kind   Kind
	Size   int // bytes per operation (RMA, pingpong)
	Window int // operations in flight
}

// Name is a short label like "rma-write 64KiB x16".
func (c Case) Name() string {
	s := string(c.Kind)
	if c.Kind != FetchAdd {
		s += " " + sizeName(c.Size)
	}
	if c.Kind != PingPong {
		s += fmt.Sprintf(" x%d", c.Window)
	}
	return s
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// DefaultCases are the cases of `rdmakit bench`: RMA write and read at 8 B, 4 KiB, 64 KiB and
// 1 MiB, 8-byte pingpong, and fetch-add with 1 and 16 in flight.
func DefaultCases() []Case {
	var cs []Case
	for _, k := range []Kind{Write, Read} {
		for _, s := range []int{8, 4 << 10, 64 << 10, 1 << 20} {
			cs = append(cs, Case{Kind: k, Size: s, Window: 16})
		}
	}
	return append(cs, Case{Kind: PingPong, Size: 8, Window: 1},
		Case{Kind: FetchAdd, Size: 8, Window: 1}, Case{Kind: FetchAdd, Size: 8, Window: 16})
}

// Result is one case measured on one provider. Rates are per second; Latency is half a
// round trip (pingpong). Ratio is Go/C for rates and Go/C for latency (lower is better).
type Result struct {
	Provider string  `json:"provider"`
	Case     string  `json:"case"`
	Unit     string  `json:"unit"`
	Go       float64 `json:"go"`
	C        float64 `json:"c"`
	Ratio    float64 `json:"ratio"`
	Iters    int     `json:"iters"`
}

// Config tunes Run.
type Config struct {
	// Providers default to tcp;ofi_rxm and shm. On sockets the Go side keeps at most 64 KiB
	// in flight (ofi's limit for that provider) and the C loop keeps its whole window, so
	// the windows of 64 KiB and 1 MiB writes and reads do not compare like for like there.
	Providers []string
	Cases     []Case        // default DefaultCases
	Target    time.Duration // time per measurement (default 250ms)
	Rounds    int           // alternating Go/C rounds, best kept (default 3)
	// Spin is how long Go's blocking calls busy-poll before parking, like the C loops do
	// (default 1ms).
	Spin time.Duration
}

const bufSize = 2 << 20

// Run measures every case on every provider.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if len(cfg.Providers) == 0 {
		cfg.Providers = []string{"tcp;ofi_rxm", "shm"}
	}
	if len(cfg.Cases) == 0 {
		cfg.Cases = DefaultCases()
	}
	if cfg.Target <= 0 {
		cfg.Target = 250 * time.Millisecond
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Spin == 0 {
		cfg.Spin = time.Millisecond
	}
	var out []Result
	for _, prov := range cfg.Providers {
		rs, err := runProvider(ctx, prov, cfg)
		if err != nil {
			return out, fmt.Errorf("%s: %w", prov, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

func runProvider(ctx context.Context, prov string, cfg Config) ([]Result, error) {
	gp, err := openGoPair(prov, bufSize, cfg.Spin)
	if err != nil {
		return nil, err
	}
	defer gp.close()
	cp, err := openCPair(prov, bufSize)
	if err != nil {
		return nil, err
	}
	defer cp.close()
	var out []Result
	for _, c := range cfg.Cases {
		goRun := func(iters int) (time.Duration, error) {
			switch c.Kind {
			case Write, Read:
				return gp.rma(ctx, c.Size, iters, c.Window, c.Kind == Read)
			case PingPong:
				return gp.pingpong(ctx, c.Size, iters)
			}
			return gp.fetchAdd(ctx, iters, c.Window)
		}
		cRun := func(iters int) (time.Duration, error) {
			switch c.Kind {
			case Write, Read:
				return cp.rma(c.Size, iters, c.Window, c.Kind == Read)
			case PingPong:
				return cp.pingpong(c.Size, iters)
			}
			return cp.fetchAdd(iters, c.Window)
		}
		// calibrate on the slower of the two: iterations that take about Target
		iters := 64
		for {
			d, err := cRun(iters)
			if err != nil {
				return out, fmt.Errorf("%s: %w", c.Name(), err)
			}
			dg, err := goRun(iters)
			if err != nil {
				return out, fmt.Errorf("%s (Go): %w", c.Name(), err)
			}
			d = max(d, dg)
			if d >= cfg.Target/8 || iters >= 1<<22 {
				iters = int(math.Max(32, float64(iters)*float64(cfg.Target)/float64(max(d, 1))))
				break
			}
			iters *= 4
		}
		if c.Window > 1 {
			iters = (iters + c.Window - 1) / c.Window * c.Window
		}
		bestGo, bestC := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
		for range cfg.Rounds {
			d, err := goRun(iters)
			if err != nil {
				return out, fmt.Errorf("%s (Go): %w", c.Name(), err)
			}
			bestGo = min(bestGo, d)
			if d, err = cRun(iters); err != nil {
				return out, fmt.Errorf("%s (C): %w", c.Name(), err)
			}
			bestC = min(bestC, d)
		}
		out = append(out, result(prov, c, iters, bestGo, bestC))
	}
	return out, nil
}

func result(prov string, c Case, iters int, g, cd time.Duration) Result {
	r := Result{Provider: prov, Case: c.Name(), Iters: iters}
	switch c.Kind {
	case PingPong:
		r.Unit = "µs"
		r.Go = g.Seconds() * 1e6 / float64(iters) / 2
		r.C = cd.Seconds() * 1e6 / float64(iters) / 2
	case FetchAdd:
		r.Unit = "kops/s"
		r.Go = float64(iters) / g.Seconds() / 1e3
		r.C = float64(iters) / cd.Seconds() / 1e3
	default:
		r.Unit = "MB/s"
		r.Go = float64(iters*c.Size) / g.Seconds() / 1e6
		r.C = float64(iters*c.Size) / cd.Seconds() / 1e6
	}
	r.Ratio = r.Go / r.C
	return r
}

// WriteTable prints results as an aligned table.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "provider\tcase\tGo\tC\tunit\tGo/C\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%s\t%.3f\t\n", r.Provider, r.Case, r.Go, r.C, r.Unit, r.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, strings.TrimSpace(`
rates: Go/C >= 1 is as fast as C; latency (µs, half round trip): Go/C <= 1 is as fast as C`))
	return err
}

// WriteJSON prints results as JSON.
func WriteJSON(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}
