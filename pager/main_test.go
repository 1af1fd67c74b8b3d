package pager

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Helper modes: the test binary re-executes itself as a memory server or as a paging client,
// so a test can kill one side.
const helperEnv = "RDMAKIT_PAGER_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		os.Exit(helperServe())
	case "client":
		os.Exit(helperClient())
	case "noprivilege":
		os.Exit(m.Run()) // TestNoPrivilege's own body runs as the unprivileged user
	}
	// Goroutines blocked in page faults hold their P: leave room for the test's workers.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 12))
	os.Exit(m.Run())
}

// helperServe runs a server on $ADDR with $SIZE bytes and prints "ADDR <addr>".
func helperServe() int {
	size, _ := strconv.ParseInt(os.Getenv("SIZE"), 10, 64)
	s, err := NewServer(context.Background(), os.Getenv("ADDR"), size, ServerOptions{Lease: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("ADDR", s.Addr())
	s.Serve(context.Background())
	return 0
}

// helperClient maps a region 4× its budget on the server at $ADDR, fills it, prints "FILLED",
// waits for a line on stdin, then sums the region and prints "SUM <n>" (it must never get
// there when the server is gone).
func helperClient() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := New(ctx, os.Getenv("ADDR"), Options{Budget: 32 * PageSize, Timeout: 2 * time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	r, err := p.Map(128 * PageSize)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	b := r.Bytes()
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i)+1)
	}
	fmt.Println("FILLED")
	bufio.NewReader(os.Stdin).ReadString('\n')
	var sum uint64
	for i := 0; i < len(b); i += 8 {
		sum += binary.LittleEndian.Uint64(b[i:])
	}
	fmt.Println("SUM", sum)
	return 0
}

// helper is a running re-executed test binary.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *strings.Builder
	done   chan struct{}
}

// startHelperB runs a helper server for a benchmark and returns its address.
func startHelperB(b *testing.B, listen string, size int64) string {
	h := startHelperTB(b, "serve", "ADDR="+listen, fmt.Sprint("SIZE=", size))
	return h.expect(b, "ADDR")
}

func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	return startHelperTB(t, mode, env...)
}

func startHelperTB(t testing.TB, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 16), stderr: &strings.Builder{},
		done: make(chan struct{})}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	go func() { cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
		// a killed shm server cannot remove its endpoint file
		for _, e := range env {
			if name, ok := strings.CutPrefix(e, "ADDR=ofi+shm://"); ok {
				files, _ := filepath.Glob(filepath.Join("/dev/shm", name+":*"))
				for _, f := range files {
					os.Remove(f)
				}
			}
		}
	})
	return h
}

// expect waits for a line starting with prefix and returns the rest.
func (h *helper) expect(t testing.TB, prefix string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				<-h.done
				t.Fatalf("helper ended before %q: %v\n%s", prefix, h.cmd.ProcessState, h.stderr)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest)
			}
			if strings.HasPrefix(l, "ERR") {
				t.Fatalf("helper: %s", l)
			}
		case <-timeout:
			t.Fatalf("helper said nothing like %q", prefix)
		}
	}
}

var shmSeq atomic.Int64

// transports are the loopback fabrics the tests run on.
var transports = []struct {
	name   string
	listen func() string
}{
	{"tcp", func() string { return "ofi+tcp://127.0.0.1:0" }},
	{"shm", func() string { return fmt.Sprintf("ofi+shm://rk-pager-%d-%d", os.Getpid(), shmSeq.Add(1)) }},
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// remoteServer runs a server in a helper process and returns its address. (libfabric's shm
// provider misbehaves when both ends live in one process and one closes: see startServer.)
func remoteServer(t *testing.T, addr string, size int64) string {
	t.Helper()
	return startHelper(t, "serve", "ADDR="+addr, fmt.Sprint("SIZE=", size)).expect(t, "ADDR")
}

// startServer runs an in-process server for the test. Use it with tcp only: with shm, a client
// closing in the same process removes the server's endpoint name and can crash the server's
// progress (fi_cq_read) on the client's unmapped memory.
func startServer(t testing.TB, addr string, size int64, opt ServerOptions) *Server {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quiet()
	}
	s, err := NewServer(context.Background(), addr, size, opt)
	if err != nil {
		t.Fatalf("server on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() { s.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s
}

func newPager(t testing.TB, addr string, opt Options) *Pager {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := New(ctx, addr, opt)
	if err != nil {
		t.Fatalf("pager: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// eventually polls cond until it holds or a generous deadline passes (not a speed check).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
