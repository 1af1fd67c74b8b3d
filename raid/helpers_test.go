package raid

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

var shmSeq atomic.Int64

// labIP is the lab RDMA device's address, set by the tests that run on verbs.
var labIP string

// listenAddr is a fresh address of transport tr: "tcp" or "shm" on loopback, "verbs" on the
// lab's RDMA device.
func listenAddr(tr string) string {
	switch tr {
	case "shm":
		return fmt.Sprintf("ofi+shm://rkraid-%d-%d", os.Getpid(), shmSeq.Add(1))
	case "verbs":
		return "verbs://" + net.JoinHostPort(labIP, "0")
	}
	return "ofi+" + tr + "://127.0.0.1:0"
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newTargets starts n in-process targets with stores of size bytes in dir.
func newTargets(t testing.TB, tr string, n int, size int64, dir string) []*Target {
	ctx := testCtx(t, 30*time.Second)
	var ts []*Target
	for i := range n {
		tg, err := NewTarget(ctx, TargetConfig{Listen: listenAddr(tr), Store: filepath.Join(dir, fmt.Sprintf("m%d-%d", i, shmSeq.Add(1))), Size: size})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.Close() })
		ts = append(ts, tg)
	}
	return ts
}

func addrs(ts []*Target) []string {
	var out []string
	for _, tg := range ts {
		out = append(out, tg.Addr())
	}
	return out
}

type volume struct {
	targets []*Target
	ctrl    *Controller
	cli     *Client
	state   string
}

func newVolume(t testing.TB, tr, level string, n, chunk int, size int64) *volume {
	return newVolumeIn(t, t.TempDir(), tr, level, n, chunk, size)
}

// memDir is a directory on tmpfs when there is one (benchmarks measure the data path, not the
// disk's fdatasync), else a test temp dir.
func memDir(t testing.TB) string {
	if d, err := os.MkdirTemp("/dev/shm", "rkraid-bench-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

func newVolumeIn(t testing.TB, dir, tr, level string, n, chunk int, size int64) *volume {
	ts := newTargets(t, tr, n, size, dir)
	ctx := testCtx(t, 30*time.Second)
	state := filepath.Join(dir, "state")
	c, err := NewController(ctx, ControllerConfig{Listen: listenAddr(tr), Level: level, Chunk: chunk,
		Members: addrs(ts), StateDir: state, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cli, err := Dial(ctx, c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &volume{targets: ts, ctrl: c, cli: cli, state: state}
}
