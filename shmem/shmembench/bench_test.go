package shmembench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/shmem"
	"github.com/rdmakit/rdmakit/shmem/internal/cref"
)

// The test binary re-executes itself as a served member (SHMEMBENCH_SERVE).
func TestMain(m *testing.M) {
	if os.Getenv("SHMEMBENCH_SERVE") != "" {
		os.Exit(serveMain())
	}
	os.Exit(m.Run())
}

func serveMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	self, _ := strconv.Atoi(os.Getenv("SHMEMBENCH_SELF"))
	portion, _ := strconv.Atoi(os.Getenv("SHMEMBENCH_PORTION"))
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := shmem.Join(jctx, shmem.Config{Name: os.Getenv("SHMEMBENCH_NAME"),
		Members: strings.Split(os.Getenv("SHMEMBENCH_MEMBERS"), ","), Self: self, PortionSize: portion})
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 1
	}
	defer s.Close()
	<-ctx.Done()
	return 0
}

func serveHelper(members []string, self int, name string, portion int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMEMBENCH_SERVE=1", "SHMEMBENCH_MEMBERS="+strings.Join(members, ","),
		"SHMEMBENCH_SELF="+strconv.Itoa(self), "SHMEMBENCH_NAME="+name, "SHMEMBENCH_PORTION="+strconv.Itoa(portion))
	return cmd
}

// TestServedCluster runs Go and C cases against a member 0 served by another process and checks
// the targeted words hold exactly the operations both made.
func TestServedCluster(t *testing.T) {
	ctx, c := testCluster(t, 2*time.Minute, 3, serveHelper)
	c.Warmup = -1 // every operation below is counted
	if c.Segs[0] != nil || c.Segs[1] == nil || c.Segs[2] == nil {
		t.Fatalf("members in this process: %v", c.Segs)
	}
	const ops = 200
	for _, cs := range []Case{{Op: shmem.OpAdd, Depth: 1}, {Op: shmem.OpAdd, Depth: 8, Contention: true}} {
		if r, err := c.RunGo(ctx, cs, ops); err != nil || r <= 0 {
			t.Fatalf("%s: go: %v, %v", cs, r, err)
		}
		if r, err := c.RunC(cs, ops); err != nil || r <= 0 {
			t.Fatalf("%s: C: %v, %v", cs, r, err)
		}
	}
	for _, w := range []struct {
		off  uint64
		want uint64
	}{
		{wordFor(Case{}, 1), ops},                     // member 1 alone
		{wordFor(Case{}, len(c.Segs)+1), ops},         // the C thread alone
		{wordFor(Case{Contention: true}, 0), 4 * ops}, // members 1 and 2, two C threads
	} {
		v, err := c.Segs[1].Load(ctx, 0, w.off)
		if err != nil || v != w.want {
			t.Errorf("word at %d of the served member: %d, %v; want %d", w.off, v, err, w.want)
		}
	}
	// A target that stops answering ends the C loop with an error, not a hang.
	if err := c.served.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	r, err := c.local().Descriptor(0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cref.Run(cref.Job{Addr: c.members[0], Remote: r, Off: 512, Kind: cref.FetchAdd, Depth: 4,
		Ops: 1000, Threads: 1, Stall: time.Second})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("C loop against a stopped member: %v, want a time-out", err)
	}
	c.served.Process.Signal(syscall.SIGCONT)
	c.Close()
	if c.served != nil {
		t.Error("the served member is still running after Close")
	}
}

// TestRunRounds checks that a case runs its rounds of Go and the three C loops back to back
// (every operation of each lands on the target, warm-ups included) and reports medians and
// each round's ratios.
func TestRunRounds(t *testing.T) {
	ctx, c := testCluster(t, 2*time.Minute, 2, nil)
	const ops, rounds = 100, 3
	cs := Case{Op: shmem.OpAdd, Depth: 4}
	r, err := c.runRounds(ctx, cs, ops, rounds)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Ratios) != rounds || !slices.IsSorted(r.Ratios) || r.Ratio() != r.Ratios[1] {
		t.Errorf("ratios %v, median %v", r.Ratios, r.Ratio())
	}
	if len(r.LeanRatios) != rounds || !slices.IsSorted(r.LeanRatios) || r.LeanRatio() != r.LeanRatios[1] {
		t.Errorf("lean ratios %v, median %v", r.LeanRatios, r.LeanRatio())
	}
	if len(r.CGoRatios) != rounds || !slices.IsSorted(r.CGoRatios) || r.CGoRatio() != r.CGoRatios[1] {
		t.Errorf("C-from-Go ratios %v, median %v", r.CGoRatios, r.CGoRatio())
	}
	if r.Go <= 0 || r.C <= 0 || r.CLean <= 0 || r.CGo <= 0 {
		t.Errorf("go %v, C %v, lean C %v, C from Go %v ops/s", r.Go, r.C, r.CLean, r.CGo)
	}
	// The three C loops work on the C word.
	sum := load(t, c, wordFor(cs, 1)) + load(t, c, wordFor(cs, len(c.Segs)+1))
	if want := 4*ops*rounds + c.Warmed.Load(); sum != want {
		t.Errorf("the words hold %d operations, want %d (%d of warm-ups)", sum, want, c.Warmed.Load())
	}
	if m := (Result{Go: 3, C: 4, CLean: 6, CGo: 2}); m.Ratio() != 0.75 || m.LeanRatio() != 0.5 || m.CGoRatio() != 0.5 {
		t.Errorf("ratios without rounds %v, %v, %v; want Go/C, Go/CLean, CGo/C", m.Ratio(), m.LeanRatio(), m.CGoRatio())
	}
	if m := median([]float64{1, 2, 4, 8}); m != 3 {
		t.Errorf("median of an even count %v, want 3", m)
	}
}

// TestWarmup checks that every kind of run makes operations before its clock starts, for about
// Cluster.Warmup, and that they land on the target like the counted ones.
func TestWarmup(t *testing.T) {
	ctx, c := testCluster(t, 2*time.Minute, 2, nil)
	c.Warmup = 20 * time.Millisecond
	const ops = 50
	cs := Case{Op: shmem.OpAdd, Depth: 2}
	for _, run := range []struct {
		name string
		off  uint64
		fn   func() (float64, error)
	}{
		{"go", wordFor(cs, 1), func() (float64, error) { return c.RunGo(ctx, cs, ops) }},
		{"C", wordFor(cs, len(c.Segs)+1), func() (float64, error) { return c.RunC(cs, ops) }},
		{"lean C", wordFor(cs, len(c.Segs)+1), func() (float64, error) { return c.RunCLean(cs, ops) }},
		{"C from Go", wordFor(cs, len(c.Segs)+1), func() (float64, error) { return c.RunCFromGo(cs, ops) }},
	} {
		before, warmed := load(t, c, run.off), c.Warmed.Load()
		start := time.Now()
		if _, err := run.fn(); err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		el, warm := time.Since(start), c.Warmed.Load()-warmed
		if warm == 0 || el < c.Warmup {
			t.Errorf("%s: warm-up made %d operations, the run took %v", run.name, warm, el)
		}
		if got := load(t, c, run.off) - before; got != ops+warm {
			t.Errorf("%s: the word grew by %d, want %d (%d of the warm-up)", run.name, got, ops+warm, warm)
		}
	}
}

func load(t *testing.T, c *Cluster, off uint64) uint64 {
	t.Helper()
	v, err := c.Segs[1].Load(context.Background(), 0, off)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCRefWarmUp checks that the C loop reaches the target before its clock starts: a
// compare-and-swap loop one in flight against a word already holding a value swaps on every
// operation, since the warm-up read the word (a loop that starts cold expects 0 and misses once).
// The same round trip sets up rxm's connection, which a timed loop would otherwise pay for.
// It runs with both setups, and checks that each got what it asks for: fabric's (a wait fd,
// tagged entries, a thread-safe domain) and the lean one (none of these).
func TestCRefWarmUp(t *testing.T) {
	ctx, c := testCluster(t, time.Minute, 2, nil)
	const off, start, ops = 256, 1000, 50 // untyped: want below is an int
	if _, err := c.Segs[1].Store(ctx, 0, off, start); err != nil {
		t.Fatal(err)
	}
	r, err := c.local().Descriptor(0)
	if err != nil {
		t.Fatal(err)
	}
	want := start
	for _, setup := range []cref.Setup{cref.Same, cref.Lean} {
		var got cref.Got
		n, _, err := cref.Run(cref.Job{Addr: c.members[0], Remote: r, Off: off, Kind: cref.CompareSwap, Depth: 1,
			Ops: ops, Threads: 1, Setup: setup, Got: &got})
		if err != nil || n != ops {
			t.Fatalf("%s C loop: %d operations, %v", setup, n, err)
		}
		want += ops
		if v, err := c.Segs[1].Load(ctx, 0, off); err != nil || v != uint64(want) {
			t.Errorf("%s: word after %d compare-and-swaps: %d, %v; want %d", setup, ops, v, err, want)
		}
		same := setup == cref.Same
		if got != (cref.Got{WaitFD: same, Tagged: same, ThreadSafe: same}) {
			t.Errorf("%s setup got %+v", setup, got)
		}
	}
}

// testCluster joins n members on ofi+tcp for a test, member 0 started by serve if not nil, and
// returns a context that ends after limit. Both end with the test.
func testCluster(t *testing.T, limit time.Duration, n int, serve ServeFunc) (context.Context, *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	c, err := NewServedCluster(ctx, "ofi+tcp", n, 4096, serve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return ctx, c
}
