// Package shmembench measures shmem's atomics beside a C reference loop that makes the same
// libfabric calls in the same process against the same target memory: fetch-add, CSWAP and
// masked swap, one in flight and pipelined, with no contention (one member on a word of its
// own) and with every member on one word. The loop runs twice per round: with the libfabric
// setup package fabric makes (the reference: same calls, same queue attributes) and with the
// leanest setup a busy-polling C program may use (no wait fd, FI_THREAD_DOMAIN), which shows
// what the setup itself costs. `rdmakit shmem bench` and the package's Go benchmarks use it.
package shmembench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/shmem"
	"github.com/rdmakit/rdmakit/shmem/internal/cref"
)

// Config is a benchmark run.
type Config struct {
	// Transport is "ofi+tcp", "ofi+sockets" or "ofi+shm" (loopback / this host).
	Transport string
	// Nodes is the number of in-process members (at least 2).
	Nodes int
	// Depth is the pipelined depth (ops posted before reaping).
	Depth int
	// Ops per measurement and per member.
	Ops int
	// Spin is the fabric's busy-poll time (fabric.WithSpin); 0 leaves the default.
	Spin time.Duration
	// Rounds is how many times each case runs Go and C back to back, the two in turn first
	// (default 7). A round's Go/C is one comparison; the median of the rounds is reported. On a
	// small shared machine one run of either swings by 2x with the state of the target (polling
	// or asleep when a request comes), so the best of each, taken from different moments,
	// compares two lucky runs rather than Go with C.
	Rounds int
	// Serve, if set, runs member 0 — the member every case targets — in a process of its own,
	// as members are deployed: it returns the command that serves member self of the segment
	// name over members with portion bytes (`rdmakit shmem serve`). Without it every member
	// runs in this process.
	Serve ServeFunc
}

// ServeFunc returns a command serving member self of segment name (see Config.Serve).
type ServeFunc func(members []string, self int, name string, portion int) *exec.Cmd

// Cluster is a set of members of one segment on one transport: all in this process, or
// member 0 in a process of its own (Segs[0] is nil then).
type Cluster struct {
	Segs []*shmem.Segment
	// Warmup is how long every run, of Go or of a C loop, makes operations before its clock
	// starts (default DefaultWarmup; negative: none).
	Warmup time.Duration
	// Warmed counts the operations warm-ups made, all runs together.
	Warmed  atomic.Uint64
	members []string
	served  *exec.Cmd
	stderr  bytes.Buffer
}

// DefaultWarmup is the default Cluster.Warmup. The runs of a comparison take turns, and after
// the other's turn the first operations of a run are slow: the target's progress for this
// run's connection has gone to sleep, and so has the Go runtime of a process that ran the C
// loop meanwhile. Measured one in flight on tcp;ofi_rxm, 250-op slices of a Go run after a C
// run: the first at 0.59-0.67 of the C loop's rate, the rest 0.78-1.02; the C loop always
// started after its endpoint's set-up and one operation. Both now start the clock after this.
const DefaultWarmup = 25 * time.Millisecond

// warmup is c.Warmup with its default.
func (c *Cluster) warmup() time.Duration {
	switch {
	case c.Warmup == 0:
		return DefaultWarmup
	case c.Warmup < 0:
		return 0
	}
	return c.Warmup
}

// NewCluster joins n members on transport ("ofi+tcp", "ofi+sockets", "ofi+shm") over loopback,
// all in this process.
func NewCluster(ctx context.Context, transport string, n, portion int, opts ...fabric.Option) (*Cluster, error) {
	return NewServedCluster(ctx, transport, n, portion, nil, opts...)
}

// NewServedCluster is NewCluster with member 0 started by serve, if not nil.
func NewServedCluster(ctx context.Context, transport string, n, portion int, serve ServeFunc, opts ...fabric.Option) (*Cluster, error) {
	members := make([]string, n)
	for i := range members {
		a, err := MemberAddr(transport)
		if err != nil {
			return nil, err
		}
		members[i] = a
	}
	c := &Cluster{Segs: make([]*shmem.Segment, n), members: members}
	name := fmt.Sprintf("shmembench-%d-%d", os.Getpid(), rand.Uint32())
	first := 0
	if serve != nil {
		c.served = serve(members, 0, name, portion)
		c.served.Stderr = &c.stderr
		c.served.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive us
		if err := c.served.Start(); err != nil {
			return nil, fmt.Errorf("shmembench: start member 0: %w", err)
		}
		first = 1
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := first; i < n; i++ {
		wg.Go(func() {
			c.Segs[i], errs[i] = shmem.Join(ctx, shmem.Config{Name: name, Members: members, Self: i,
				PortionSize: portion, FabricOptions: opts})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		if c.stderr.Len() > 0 {
			err = fmt.Errorf("%w (member 0: %s)", err, bytes.TrimSpace(c.stderr.Bytes()))
		}
		return nil, err
	}
	return c, nil
}

// Close closes every member (and stops a served member 0).
func (c *Cluster) Close() {
	for _, s := range c.Segs {
		if s != nil {
			s.Close()
		}
	}
	if c.served != nil {
		c.served.Process.Signal(syscall.SIGTERM)
		c.served.Wait()
		c.served = nil
	}
}

// local is the first member in this process.
func (c *Cluster) local() *shmem.Segment {
	for _, s := range c.Segs {
		if s != nil {
			return s
		}
	}
	return nil
}

// participants are the members a case runs on: member 1 alone, or every member in this process
// (all on one word).
func (c *Cluster) participants(cs Case) []int {
	if !cs.Contention {
		return []int{1}
	}
	var out []int
	for i, s := range c.Segs {
		if s != nil {
			out = append(out, i)
		}
	}
	return out
}

// MemberAddr is a fresh loopback address for a member on transport: a free port below the
// kernel's ephemeral range (so no member's own endpoints take it first) or a fresh shm name.
func MemberAddr(transport string) (string, error) {
	if transport == "ofi+shm" {
		return fmt.Sprintf("ofi+shm://shmembench-%d-%d", os.Getpid(), rand.Uint32()), nil
	}
	for range 100 {
		p := 20000 + rand.IntN(10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return fmt.Sprintf("%s://127.0.0.1:%d", transport, p), nil
		}
	}
	return "", errors.New("shmembench: no free loopback port")
}

// Case is one measurement.
type Case struct {
	Op         shmem.OpKind // OpAdd, OpCSwap or OpMaskedSwap
	Depth      int
	Contention bool // every member on one word of node 0, else member 1 alone on a word of node 0
}

// String names the case as op/depth=D/contention=none|one-word.
func (c Case) String() string {
	w := "none"
	if c.Contention {
		w = "one-word"
	}
	return fmt.Sprintf("%s/depth=%d/contention=%s", c.Op, c.Depth, w)
}

// Result is ops/s of the Go path and of the C loop for a case: the medians over its rounds,
// and each round's Go/C.
type Result struct {
	Case
	// C is the loop with fabric's setup (cref.Same), CLean with the lean one (cref.Lean), CGo
	// the loop with fabric's setup driven from Go (cref.Job.FromGo: one cgo call per batch).
	Go, C, CLean, CGo float64
	// Ratios are the rounds' Go/C, in ascending order (none when Go and C were set directly);
	// LeanRatios the rounds' Go/CLean, CGoRatios their CGo/C.
	Ratios, LeanRatios, CGoRatios []float64
}

// Ratio is the median of the rounds' Go/C, or Go over C without rounds.
func (r Result) Ratio() float64 {
	if len(r.Ratios) == 0 {
		return r.Go / r.C
	}
	return median(r.Ratios)
}

// LeanRatio is the median of the rounds' Go/CLean, or Go over CLean without rounds.
func (r Result) LeanRatio() float64 {
	if len(r.LeanRatios) == 0 {
		return r.Go / r.CLean
	}
	return median(r.LeanRatios)
}

// median of sorted values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// CGoRatio is the median of the rounds' CGo/C: what driving the C loop from Go costs by itself.
func (r Result) CGoRatio() float64 {
	if len(r.CGoRatios) == 0 {
		return r.CGo / r.C
	}
	return median(r.CGoRatios)
}

// runRounds runs the case rounds times: Go, the C loop with fabric's setup, the lean one and the
// C loop driven from Go back to back, each first in turn.
func (c *Cluster) runRounds(ctx context.Context, cs Case, ops, rounds int) (Result, error) {
	r := Result{Case: cs}
	var gos, cops, leans, cgos []float64
	for i := range rounds {
		var got [4]float64 // go, C, lean C, C from Go
		runs := [4]func() (float64, error){
			func() (float64, error) { return c.RunGo(ctx, cs, ops) },
			func() (float64, error) { return c.RunC(cs, ops) },
			func() (float64, error) { return c.RunCLean(cs, ops) },
			func() (float64, error) { return c.RunCFromGo(cs, ops) },
		}
		for k := range runs {
			w := (i + k) % len(runs)
			var err error
			if got[w], err = runs[w](); err != nil {
				return r, fmt.Errorf("%s: %s: %w", cs, [...]string{"go", "C", "lean C", "C from Go"}[w], err)
			}
		}
		gos, cops, leans, cgos = append(gos, got[0]), append(cops, got[1]), append(leans, got[2]), append(cgos, got[3])
		r.Ratios = append(r.Ratios, got[0]/got[1])
		r.LeanRatios = append(r.LeanRatios, got[0]/got[2])
		r.CGoRatios = append(r.CGoRatios, got[3]/got[1])
	}
	for _, v := range [][]float64{gos, cops, leans, cgos, r.Ratios, r.LeanRatios, r.CGoRatios} {
		slices.Sort(v)
	}
	r.Go, r.C, r.CLean, r.CGo = median(gos), median(cops), median(leans), median(cgos)
	return r, nil
}

var crefKind = map[shmem.OpKind]cref.Kind{shmem.OpAdd: cref.FetchAdd, shmem.OpCSwap: cref.CompareSwap,
	shmem.OpMaskedSwap: cref.MaskedSwap}

// wordFor is the word a case uses: its own per case and member (no contention) or word 0.
func wordFor(cs Case, member int) uint64 {
	if cs.Contention {
		return 0
	}
	return 64 + 8*uint64(member)
}

// RunGo runs ops operations of the case per participating member and returns ops/s.
func (c *Cluster) RunGo(ctx context.Context, cs Case, ops int) (float64, error) {
	parts := c.participants(cs)
	errs := make([]error, len(parts))
	var warm, wg sync.WaitGroup
	begin := make(chan struct{})
	warmUntil := time.Now().Add(c.warmup())
	for k, m := range parts {
		warm.Add(1)
		wg.Go(func() {
			for errs[k] == nil && time.Now().Before(warmUntil) {
				if errs[k] = runGo(ctx, c.Segs[m], cs, wordFor(cs, m), cs.Depth); errs[k] == nil {
					c.Warmed.Add(uint64(cs.Depth))
				}
			}
			warm.Done()
			<-begin
			if errs[k] == nil {
				errs[k] = runGo(ctx, c.Segs[m], cs, wordFor(cs, m), ops)
			}
		})
	}
	warm.Wait()
	start := time.Now()
	close(begin)
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(ops*len(parts)) / el.Seconds(), nil
}

func runGo(ctx context.Context, s *shmem.Segment, cs Case, off uint64, n int) error {
	batch := make([]shmem.Op, cs.Depth)
	var seq uint64
	for done := 0; done < n; {
		k := min(cs.Depth, n-done)
		for i := range batch[:k] {
			op := shmem.Op{Kind: cs.Op, Node: 0, Off: off}
			switch cs.Op {
			case shmem.OpAdd:
				op.Value = 1
			case shmem.OpCSwap:
				cur, _ := s.Cached(0, off)
				op.Value = cur + 1
			case shmem.OpMaskedSwap:
				op.Value, op.Arg = seq&0xff, 0xff
			}
			seq++
			batch[i] = op
		}
		if err := s.Do(ctx, batch[:k]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// RunC runs the C loop for the case with fabric's setup (cref.Same): one thread (no
// contention) or one per member the Go path runs on (one word), each with its own endpoint, ops
// operations each, and returns ops/s.
func (c *Cluster) RunC(cs Case, ops int) (float64, error) { return c.runC(cs, ops, cref.Same, false) }

// RunCLean is RunC with the lean setup (cref.Lean).
func (c *Cluster) RunCLean(cs Case, ops int) (float64, error) {
	return c.runC(cs, ops, cref.Lean, false)
}

// RunCFromGo is RunC driven from goroutines, one cgo call per batch (cref.Job.FromGo): the
// floor of a Go binding.
func (c *Cluster) RunCFromGo(cs Case, ops int) (float64, error) {
	return c.runC(cs, ops, cref.Same, true)
}

func (c *Cluster) runC(cs Case, ops int, setup cref.Setup, fromGo bool) (float64, error) {
	r, err := c.local().Descriptor(0)
	if err != nil {
		return 0, err
	}
	threads, off := 1, wordFor(cs, len(c.Segs)+1) // a word of its own
	if cs.Contention {
		threads, off = len(c.participants(cs)), 0
	}
	var warmed uint64
	n, el, err := cref.Run(cref.Job{Addr: c.members[0], Remote: r, Off: off, Kind: crefKind[cs.Op],
		Depth: cs.Depth, Ops: uint64(ops), Threads: threads, Setup: setup, FromGo: fromGo,
		Warmup: c.warmup(), Warmed: &warmed})
	c.Warmed.Add(warmed)
	if err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

// Cases is every case at the given pipelined depth.
func Cases(depth int) []Case {
	var out []Case
	for _, contention := range []bool{false, true} {
		for _, op := range []shmem.OpKind{shmem.OpAdd, shmem.OpCSwap, shmem.OpMaskedSwap} {
			for _, d := range []int{1, depth} {
				out = append(out, Case{Op: op, Depth: d, Contention: contention})
			}
		}
	}
	return out
}

// Run measures every case on a fresh cluster and prints a table to w (if not nil).
func Run(ctx context.Context, cfg Config, w io.Writer) ([]Result, error) {
	if cfg.Nodes < 2 {
		cfg.Nodes = 2
	}
	if cfg.Depth < 2 {
		cfg.Depth = 32
	}
	if cfg.Ops <= 0 {
		cfg.Ops = 10000
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 7
	}
	var opts []fabric.Option
	if cfg.Spin > 0 {
		opts = append(opts, fabric.WithSpin(cfg.Spin))
	}
	c, err := NewServedCluster(ctx, cfg.Transport, cfg.Nodes, 4096, cfg.Serve, opts...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Result
	if w != nil {
		fmt.Fprintf(w, "C: the loop with fabric's libfabric setup; lean C: no wait fd, FI_THREAD_DOMAIN;\n")
		fmt.Fprintf(w, "C from Go: the C loop driven by a goroutine, one cgo call per batch (a Go binding's floor)\n")
		fmt.Fprintf(w, "%-40s %10s %10s %6s %11s %10s %7s %7s\n", "case", "go ops/s", "C ops/s", "go/C",
			"rounds", "lean C", "go/lean", "CGo/C")
	}
	for _, cs := range Cases(cfg.Depth) {
		r, err := c.runRounds(ctx, cs, cfg.Ops, cfg.Rounds)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if w != nil {
			fmt.Fprintf(w, "%-40s %10.0f %10.0f %6.2f %5.2f-%5.2f %10.0f %7.2f %7.2f\n", cs, r.Go, r.C, r.Ratio(),
				r.Ratios[0], r.Ratios[len(r.Ratios)-1], r.CLean, r.LeanRatio(), r.CGoRatio())
		}
	}
	if w != nil {
		fmt.Fprintln(w, "\npipelined / one in flight:")
		for i := 0; i+1 < len(out); i += 2 {
			one, pip := out[i], out[i+1]
			fmt.Fprintf(w, "%-40s go %6.2fx  C %6.2fx  lean C %6.2fx  C from Go %6.2fx\n", pip.Case,
				pip.Go/one.Go, pip.C/one.C, pip.CLean/one.CLean, pip.CGo/one.CGo)
		}
	}
	return out, nil
}
