package shmem_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/shmem"
)

// transport is a libfabric transport the tests run on, with a way to make member addresses.
type transport struct {
	name string
	addr func(t testing.TB) string
}

var names atomic.Int64

// freePort is a loopback port nobody listens on, below the kernel's ephemeral range: the
// members' own connection endpoints bind ephemeral ports, which must not take a port that a
// member that has not started yet is configured to listen on.
func freePort(t testing.TB) int {
	for range 100 {
		p := 20000 + rand.IntN(10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

var transports = []transport{
	{"tcp", func(t testing.TB) string { return fmt.Sprintf("ofi+tcp://127.0.0.1:%d", freePort(t)) }},
	{"sockets", func(t testing.TB) string { return fmt.Sprintf("ofi+sockets://127.0.0.1:%d", freePort(t)) }},
	{"shm", func(t testing.TB) string {
		return fmt.Sprintf("ofi+shm://rk-shmem-%d-%d", os.Getpid(), names.Add(1))
	}},
}

func addrs(t testing.TB, tr transport, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = tr.addr(t)
	}
	return out
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// cluster joins n in-process members on tr; they are closed when the test ends.
func cluster(t testing.TB, tr transport, n, size int) []*shmem.Segment {
	t.Helper()
	members := addrs(t, tr, n)
	segs := make([]*shmem.Segment, n)
	errs := make([]error, n)
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			segs[i], errs[i] = shmem.Join(ctx, shmem.Config{Name: t.Name(), Members: members, Self: i,
				PortionSize: size, OpTimeout: 20 * time.Second})
		})
	}
	wg.Wait()
	for i, s := range segs {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("join member %d: %v", i, errs[i])
		}
	}
	return segs
}
