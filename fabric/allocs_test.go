package fabric_test

import (
	"context"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
	"github.com/rdmakit/rdmakit/internal/allocs"
)

// testDoAllocs checks that Conn.Do of one fetch-add and of a batch of 32 allocates nothing on
// the Go heap once warm (the caller reuses its ops), nor do FetchAdd, Read and Write (the
// fewest of several batches: allocs.Least).
func testDoAllocs(t *testing.T, p *fabrictest.Pair) {
	if raceEnabled {
		// `make test-cgocheck` (host) and the lab's run without the race detector count.
		t.Skip("allocation counts under the race detector are random")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := p.Server.Alloc(4096, fabric.RemoteAll)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := srv.Remote()
	for _, n := range []int{1, 32} {
		ops := make([]fabric.Op, n)
		do := func() {
			for i := range ops {
				ops[i] = fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 64, Operand: 1}
			}
			if err := p.ClientConn.Do(ctx, ops); err != nil {
				t.Fatal(err)
			}
		}
		do()
		if least := allocs.Least(do); least != 0 {
			t.Errorf("%d ops: %.2f allocations per Do at best in 10 batches", n, least)
		}
	}
	// The one-op calls: their op used to escape in a slice of its own.
	mem, err := p.Client.Alloc(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for name, call := range map[string]func() error{
		"FetchAdd": func() error { _, err := p.ClientConn.FetchAdd(ctx, r, 64, 1); return err },
		"Read":     func() error { return p.ClientConn.Read(ctx, mem, 0, r, 0, 64) },
		"Write":    func() error { return p.ClientConn.Write(ctx, mem, 0, r, 128, 64) },
	} {
		do := func() {
			if err := call(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		do()
		if least := allocs.Least(do); least != 0 {
			t.Errorf("%s: %.2f allocations per call at best in 10 batches", name, least)
		}
	}
}

// TestOFIDoAllocs: Conn.Do and the one-op calls on tcp;ofi_rxm allocate nothing.
func TestOFIDoAllocs(t *testing.T) {
	testDoAllocs(t, fabrictest.Connect(t, "ofi+tcp://127.0.0.1:0"))
}

// TestOFISendRecvAllocs: a Send and the Recv of it allocate nothing once warm, on RDM
// connections too (a Recv there watches for the peer's goodbye: it made a cancelable context
// per call, 4 allocations).
func TestOFISendRecvAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector are random")
	}
	for _, addr := range []string{"ofi+tcp://127.0.0.1:0", "ofi+tcp://127.0.0.1:0?ep=msg"} {
		t.Run(addr, func(t *testing.T) {
			p := fabrictest.Connect(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			msg, buf := make([]byte, 64), make([]byte, 64)
			do := func() {
				if err := p.ClientConn.Send(ctx, msg); err != nil {
					t.Fatal(err)
				}
				if _, err := p.ServerConn.Recv(ctx, buf); err != nil {
					t.Fatal(err)
				}
			}
			do()
			if least := allocs.Least(do); least != 0 {
				t.Errorf("%.2f allocations per Send and Recv at best in 10 batches", least)
			}
		})
	}
}
