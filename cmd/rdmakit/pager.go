package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/pager"
)

func init() {
	register("pager", "remote memory paging: run a memory server, or benchmark paging", runPager)
}

const pagerUsage = `usage:
  rdmakit pager serve --listen ADDR --size BYTES [--quota BYTES] [--lease DUR]
  rdmakit pager bench [--transports shm,tcp] [--faults N] [--scan PAGES] [--budget BYTES]

BYTES take a K, M or G suffix (powers of 1024).`

func runPager(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, pagerUsage)
		return 2
	}
	switch args[0] {
	case "serve":
		return pagerServe(args[1:])
	case "bench":
		return pagerBench(args[1:])
	}
	fmt.Fprintln(os.Stderr, pagerUsage)
	return 2
}

// parseBytes reads "64M", "1G", "4096".
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func pagerServe(args []string) int {
	fs := flag.NewFlagSet("pager serve", flag.ContinueOnError)
	listen := fs.String("listen", fabric.DefaultAddr, "fabric address to listen on (port 0 picks one)")
	size := fs.String("size", "1G", "pool size")
	quota := fs.String("quota", "", "most bytes per client (default: the pool)")
	lease := fs.Duration("lease", 10*time.Second, "release a silent client's slabs after this long")
	if fs.Parse(args) != nil {
		return 2
	}
	n, err := parseBytes(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit pager serve: --size:", err)
		return 2
	}
	opt := pager.ServerOptions{Lease: *lease}
	if *quota != "" {
		if opt.Quota, err = parseBytes(*quota); err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit pager serve: --quota:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := pager.NewServer(ctx, *listen, n, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit pager serve:", err)
		return 1
	}
	defer s.Close()
	fmt.Printf("listening on %s (pool %d bytes)\n", s.Addr(), n)
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit pager serve:", err)
		return 1
	}
	return 0
}

// spawnServer runs `rdmakit pager serve` in a child process and returns its address and a
// function that stops it.
func spawnServer(ctx context.Context, listen string, size int64) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "pager", "serve", "--listen", listen, "--size", strconv.FormatInt(size, 10))
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- strings.Fields(rest)[0]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			stop()
			return "", nil, errors.New("memory server exited before listening")
		}
		return a, stop, nil
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("memory server did not start")
	}
}

// loopbackListen is a listen address for transport name ("tcp", "shm") on loopback.
func loopbackListen(name string) (string, error) {
	switch name {
	case "tcp", "tcp-rxm":
		return "ofi+tcp://127.0.0.1:0", nil
	case "sockets":
		return "ofi+sockets://127.0.0.1:0", nil
	case "shm":
		return fmt.Sprintf("ofi+shm://rk-pager-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9), nil
	}
	return "", fmt.Errorf("unknown transport %q (tcp, sockets, shm)", name)
}

func pagerBench(args []string) int {
	fs := flag.NewFlagSet("pager bench", flag.ContinueOnError)
	transports := fs.String("transports", "shm,tcp", "comma-separated loopback transports")
	faults := fs.Int("faults", 2000, "random faults to time per transport")
	scan := fs.Int("scan", 4096, "pages in the sequential scan")
	budget := fs.String("budget", "256K", "resident budget of the pager")
	if fs.Parse(args) != nil {
		return 2
	}
	bud, err := parseBytes(*budget)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit pager bench: --budget:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []pager.BenchResult
	for _, name := range strings.Split(*transports, ",") {
		listen, err := loopbackListen(strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit pager bench:", err)
			return 2
		}
		size := int64(max(*scan, 2**faults, 16*int(bud)/pager.PageSize)+1024) * pager.PageSize
		addr, stopServer, err := spawnServer(ctx, listen, size)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit pager bench:", name, err)
			return 1
		}
		r, err := pager.Bench(ctx, pager.BenchConfig{Server: addr, Faults: *faults, ScanPages: *scan,
			Options: pager.Options{Budget: int(bud)}})
		stopServer()
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit pager bench:", name, err)
			return 1
		}
		rows = append(rows, r)
	}
	pager.WriteBenchTable(os.Stdout, rows)
	fmt.Println("\nrate× = pager faults/s ÷ local userfaultfd faults/s; p50/rma = pager p50 page-in ÷ raw 4 KiB RMA read p50;")
	fmt.Println("pf× = sequential scan time without read-ahead ÷ with it. Latencies as seen by the touching thread.")
	return 0
}
