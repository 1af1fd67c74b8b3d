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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := NewServedCluster(ctx, "ofi+tcp", 3, 4096, serveHelper)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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

// TestRunRounds checks that a case runs its rounds of Go and both C loops back to back (every
// operation of each lands on the target) and reports medians and each round's ratios.
func TestRunRounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := NewCluster(ctx, "ofi+tcp", 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	if r.Go <= 0 || r.C <= 0 || r.CLean <= 0 {
		t.Errorf("go %v, C %v, lean C %v ops/s", r.Go, r.C, r.CLean)
	}
	// Both C loops work on the C word.
	for who, w := range map[string]struct{ off, n uint64 }{"go": {wordFor(cs, 1), ops * rounds},
		"C": {wordFor(cs, len(c.Segs)+1), 2 * ops * rounds}} {
		if v, err := c.Segs[1].Load(ctx, 0, w.off); err != nil || v != w.n {
			t.Errorf("%s's word: %d, %v; want %d", who, v, err, w.n)
		}
	}
	if m := (Result{Go: 3, C: 4, CLean: 6}); m.Ratio() != 0.75 || m.LeanRatio() != 0.5 {
		t.Errorf("ratios without rounds %v, %v; want Go/C, Go/CLean", m.Ratio(), m.LeanRatio())
	}
	if m := median([]float64{1, 2, 4, 8}); m != 3 {
		t.Errorf("median of an even count %v, want 3", m)
	}
}

// TestCRefWarmUp checks that the C loop reaches the target before its clock starts: a
// compare-and-swap loop one in flight against a word already holding a value swaps on every
// operation, since the warm-up read the word (a loop that starts cold expects 0 and misses once).
// The same round trip sets up rxm's connection, which a timed loop would otherwise pay for.
// It runs with both setups, and checks that each got what it asks for: fabric's (a wait fd,
// tagged entries, a thread-safe domain) and the lean one (none of these).
func TestCRefWarmUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewCluster(ctx, "ofi+tcp", 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
