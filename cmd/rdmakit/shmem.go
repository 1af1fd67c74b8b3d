package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/shmem"
	"github.com/rdmakit/rdmakit/shmem/shmembench"
)

func init() {
	register("shmem", "cluster-wide shared memory on fabric atomics: serve a member, bench", runShmem)
}

const shmemUsage = `usage:
  rdmakit shmem serve -members ADDR,ADDR,... -self I [-name N] [-size BYTES] [-adds N -claims N] [-linger D]
  rdmakit shmem bench [-transport ofi+tcp|ofi+sockets|ofi+shm] [-nodes N] [-depth D] [-ops N] [-spin D] [-local]`

// The words the serve workload (and the demo) use, all in member 0's portion.
const (
	shmemCounterOff = 0    // counter every worker adds to
	shmemDoneOff    = 16   // workers that finished
	shmemFinishOff  = 24   // set by member 0: workers may exit
	shmemBitmapOff  = 1024 // ID allocator
	shmemBitmapIDs  = 256
	shmemWorkers    = 4 // goroutines per member
)

func runShmem(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, shmemUsage)
		return 2
	}
	switch args[0] {
	case "serve":
		return shmemServe(args[1:])
	case "bench":
		return shmemBench(args[1:])
	}
	fmt.Fprintln(os.Stderr, shmemUsage)
	return 2
}

// shmemReport is what a serve workload prints when it is done.
type shmemReport struct {
	Self  int      `json:"self"`
	Adds  int      `json:"adds"`
	IDs   []uint64 `json:"ids"`
	Error string   `json:"error,omitempty"`
}

func shmemServe(args []string) int {
	fs := flag.NewFlagSet("shmem serve", flag.ContinueOnError)
	members := fs.String("members", "", "comma-separated fabric addresses of all members, in index order")
	self := fs.Int("self", 0, "this member's index in -members")
	name := fs.String("name", "rdmakit", "segment name (the same on every member)")
	size := fs.Int("size", 4096, "bytes per member portion")
	joinTimeout := fs.Duration("join-timeout", time.Minute, "how long to wait for every member")
	adds := fs.Int("adds", 0, "workload: fetch-adds per worker on member 0's counter (then exit)")
	claims := fs.Int("claims", 0, "workload: IDs per worker to claim from member 0's bitmap (then exit)")
	linger := fs.Duration("linger", 0, "how long to keep polling after serving a peer, before sleeping (0: the fabric's default; negative: never)")
	if fs.Parse(args) != nil || *members == "" {
		fmt.Fprintln(os.Stderr, shmemUsage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	jctx, cancel := context.WithTimeout(ctx, *joinTimeout)
	var opts []fabric.Option
	if *linger != 0 {
		opts = append(opts, fabric.WithLinger(*linger))
	}
	s, err := shmem.Join(jctx, shmem.Config{Name: *name, Members: strings.Split(*members, ","), Self: *self,
		PortionSize: *size, FabricOptions: opts})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit shmem serve:", err)
		return 1
	}
	defer s.Close()
	if *adds == 0 && *claims == 0 {
		fmt.Fprintf(os.Stderr, "member %d of %d serving %d bytes at %s (native: %v)\n", s.Self(), s.Members(),
			s.PortionSize(), s.Addr(), s.Caps().Atomics)
		<-ctx.Done()
		return 0
	}
	rep := shmemWork(ctx, s, *adds, *claims)
	json.NewEncoder(os.Stdout).Encode(rep)
	if rep.Error != "" {
		return 1
	}
	return 0
}

// shmemWork is the demo workload: workers add to a counter and claim IDs, then the member
// reports, counts itself done and waits for member 0's go-ahead to leave (its portion must stay
// up while the others work).
func shmemWork(ctx context.Context, s *shmem.Segment, adds, claims int) shmemReport {
	rep := shmemReport{Self: s.Self()}
	fail := func(err error) shmemReport { rep.Error = err.Error(); return rep }
	ctr, err := s.Counter(0, shmemCounterOff)
	if err != nil {
		return fail(err)
	}
	bm, err := s.Bitmap(0, shmemBitmapOff, shmemBitmapIDs)
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, shmemWorkers)
	for range shmemWorkers {
		wg.Go(func() {
			for range adds {
				if _, err := ctr.Add(ctx, 1); err != nil {
					errs <- err
					return
				}
			}
			for range claims {
				id, err := bm.Claim(ctx)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				rep.IDs = append(rep.IDs, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fail(err)
	}
	rep.Adds = adds * shmemWorkers
	if _, err := s.FetchAdd(ctx, 0, shmemDoneOff, 1); err != nil {
		return fail(err)
	}
	for {
		v, err := s.Load(ctx, 0, shmemFinishOff)
		if err != nil {
			return fail(err)
		}
		if v != 0 {
			return rep
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

func shmemBench(args []string) int {
	fs := flag.NewFlagSet("shmem bench", flag.ContinueOnError)
	tr := fs.String("transport", "ofi+tcp", "ofi+tcp (tcp;ofi_rxm), ofi+sockets or ofi+shm, on loopback")
	nodes := fs.Int("nodes", 3, "members")
	depth := fs.Int("depth", 32, "operations in flight when pipelined")
	ops := fs.Int("ops", 10000, "operations per measurement and member")
	spin := fs.Duration("spin", 200*time.Microsecond, "completion busy-poll time (fabric.WithSpin)")
	rounds := fs.Int("rounds", 7, "rounds of each case, Go and both C loops back to back (medians reported)")
	local := fs.Bool("local", false, "run the targeted member in this process too (default: a process of its own)")
	if fs.Parse(args) != nil {
		return 2
	}
	if _, err := fabric.ParseAddr(*tr + "://127.0.0.1:1"); err != nil && *tr != "ofi+shm" {
		fmt.Fprintln(os.Stderr, "rdmakit shmem bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := shmembench.Config{Transport: *tr, Nodes: *nodes, Depth: *depth, Ops: *ops, Spin: *spin, Rounds: *rounds}
	where := "member 0 (the target) in a process of its own"
	if *local {
		where = "all members in this process"
	} else {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit shmem bench:", err)
			return 1
		}
		cfg.Serve = func(members []string, self int, name string, portion int) *exec.Cmd {
			return exec.Command(exe, "shmem", "serve", "-members", strings.Join(members, ","),
				"-self", strconv.Itoa(self), "-name", name, "-size", strconv.Itoa(portion))
		}
	}
	fmt.Printf("shmem atomics on %s, %d members (%s), pipelined depth %d, %d ops per run, median of %d rounds\n\n",
		*tr, *nodes, where, *depth, *ops, *rounds)
	if _, err := shmembench.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit shmem bench:", err)
		return 1
	}
	return 0
}
