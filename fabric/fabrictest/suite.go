// Package fabrictest is the conformance suite every fabric backend passes: the same tests
// run over libfabric tcp, sockets, shm and verbs, and over rdma-core verbs in the lab VM.
package fabrictest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/internal/hangdump"
)

// Pair is a connected client and server on one transport, each with its own fabric.
type Pair struct {
	Server, Client         *fabric.Fabric
	ServerConn, ClientConn *fabric.Conn
}

// Connect listens on listenAddr and dials it; everything is closed when the test ends.
func Connect(t testing.TB, listenAddr string, opts ...fabric.Option) *Pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, l, err := fabric.Listen(ctx, listenAddr, opts...)
	if err != nil {
		t.Fatalf("listen %s: %v", listenAddr, err)
	}
	t.Cleanup(func() { srv.Close() })
	type res struct {
		c   *fabric.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept(ctx)
		ch <- res{c, err}
	}()
	cli, err := fabric.Dial(ctx, l.Addr(), opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { cli.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	return &Pair{Server: srv, Client: cli.Fabric(), ServerConn: r.c, ClientConn: cli}
}

// Transport names the addresses the suite uses.
type Transport struct {
	// Listen returns an address to listen on (port 0 picks one; a fresh name for shm).
	Listen func() string
	// Nothing returns an address where nobody listens.
	Nothing func() string
	// Unchecked says the transport's RMA does not go through the peer (shm's CMA path), so no
	// one checks keys or access rights there: the provider checks are not run.
	Unchecked bool
}

// Run runs the whole suite against a transport.
func Run(t *testing.T, tr Transport) {
	listenAddr := tr.Listen
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *Pair)
	}{
		{"Messages", testMessages},
		{"Burst", testBurst},
		{"AtomicBurst", testAtomicBurst},
		{"ReadWrite", testReadWrite},
		{"Batch", testBatch},
		{"Atomics", testAtomics},
		{"ConcurrentFetchAdd", testConcurrentFetchAdd},
		{"CompareSwapChain", testCASChain},
		{"BadInput", testBadInput},
		{"Close", testClose},
		{"PeerClosed", testPeerClosed},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, Connect(t, listenAddr())) })
	}
	if !tr.Unchecked {
		t.Run("ProviderChecks", func(t *testing.T) { testProviderChecks(t, listenAddr) })
	}
	t.Run("DialNothing", func(t *testing.T) { testDialNothing(t, tr.Nothing()) })
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	hangdump.Before(t, ctx, 3*time.Second) // a batch that hangs shows where (seen once in a while on sockets)
	return ctx
}

func alloc(t testing.TB, f *fabric.Fabric, n int, acc fabric.Access) *fabric.Memory {
	t.Helper()
	m, err := f.Alloc(n, acc)
	if err != nil {
		t.Fatalf("alloc %d: %v", n, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func testMessages(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	msgs := [][]byte{[]byte("hello"), bytes.Repeat([]byte{7}, 4096), {0}}
	for _, m := range msgs {
		if err := p.ClientConn.Send(ctx, m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	buf := make([]byte, 8192)
	for i, want := range msgs {
		n, err := p.ServerConn.Recv(ctx, buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("recv %d: %d bytes, %v; want %d bytes", i, n, err, len(want))
		}
	}
	// and back, concurrently with the receive
	go p.ServerConn.Send(ctx, []byte("pong"))
	if n, err := p.ClientConn.Recv(ctx, buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("recv pong: %q, %v", buf[:n], err)
	}
	// a message longer than the buffer: error, prefix kept
	if err := p.ClientConn.Send(ctx, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 4)
	if n, err := p.ServerConn.Recv(ctx, small); !errors.Is(err, fabric.ErrTooLarge) || string(small[:n]) != "0123" {
		t.Fatalf("short buffer: %q, %v; want ErrTooLarge", small[:n], err)
	}
	// too large to send
	big := make([]byte, p.ClientConn.Caps().MaxMessage+1)
	if err := p.ClientConn.Send(ctx, big); !errors.Is(err, fabric.ErrTooLarge) {
		t.Fatalf("oversized send: %v", err)
	}
	// a receive with a deadline and nothing to receive times out and leaves the conn usable
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.ServerConn.Recv(short, buf); !errors.Is(err, fabric.ErrTimeout) {
		t.Fatalf("idle recv: %v, want ErrTimeout", err)
	}
	if err := p.ClientConn.Send(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if n, err := p.ServerConn.Recv(ctx, buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("recv after timeout: %q, %v", buf[:n], err)
	}
}

// testBurst: a sender runs ahead of a receiver that does not read yet (as far as the
// transport lets it; some messages are over rxm's eager size, 4 KiB, and travel segmented),
// and every message arrives, whole and in order, once the receiver reads.
func testBurst(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	const n = 600
	size := func(i int) int { return []int{8, 100, 3000, 6000}[i%4] }
	msg := func(i int, b []byte) []byte {
		b = b[:size(i)]
		for j := range b {
			b[j] = byte(i + j)
		}
		binary.LittleEndian.PutUint32(b, uint32(i))
		return b
	}
	sent := make(chan error, 1)
	go func() {
		b := make([]byte, 6000)
		for i := range n {
			if err := p.ClientConn.Send(ctx, msg(i, b)); err != nil {
				sent <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	time.Sleep(200 * time.Millisecond) // the sender runs ahead of a receiver that does not read
	buf, want := make([]byte, 8192), make([]byte, 6000)
	for i := range n {
		m, err := p.ServerConn.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if w := msg(i, want); !bytes.Equal(buf[:m], w) {
			t.Fatalf("message %d: %d bytes (first word %d), want %d bytes", i, m,
				binary.LittleEndian.Uint32(buf[:4]), len(w))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// testAtomicBurst: one batch of fetch-adds on one word, more than the target provider has
// receive buffers posted for (rxm emulates atomics with messages, and rdmakit posts 128 per
// endpoint over tcp), so requests wait for buffers at the target: each old value comes back
// exactly once and the word ends at the total.
func testAtomicBurst(t *testing.T, p *Pair) {
	c := p.ClientConn
	needAtomics(t, c, fabric.FetchAdd)
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	r := exchange(t, p, srv)
	const n = 1024
	ops := make([]fabric.Op, n)
	for i := range ops {
		ops[i] = fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 128, Operand: 1}
	}
	if err := c.Do(ctx, ops); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	for i, op := range ops {
		if op.Result >= n || seen[op.Result] {
			t.Fatalf("op %d fetched %d: out of range or twice", i, op.Result)
		}
		seen[op.Result] = true
	}
	if got := binary.LittleEndian.Uint64(srv.Bytes()[128:]); got != n {
		t.Fatalf("word %d after %d fetch-adds", got, n)
	}
}

// exchange sends the server memory's descriptor to the client, the way real users do.
func exchange(t testing.TB, p *Pair, m *fabric.Memory) fabric.Remote {
	t.Helper()
	ctx := ctxT(t)
	b, _ := m.Remote().MarshalBinary()
	if err := p.ServerConn.Send(ctx, b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := p.ClientConn.Recv(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	var r fabric.Remote
	if err := r.UnmarshalBinary(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return r
}

func fill(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
}

func testReadWrite(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	const size = 2 << 20
	srv := alloc(t, p.Server, size, fabric.RemoteRead|fabric.RemoteWrite)
	cli := alloc(t, p.Client, size, 0)
	r := exchange(t, p, srv)
	for _, n := range []int{1, 8, 4096, 65536, 1 << 20} {
		off, roff := 3, uint64(size-n-5)
		fill(cli.Bytes()[off:off+n], uint64(n))
		if err := p.ClientConn.Write(ctx, cli, off, r, roff, n); err != nil {
			t.Fatalf("write %d: %v", n, err)
		}
		if !bytes.Equal(srv.Bytes()[roff:roff+uint64(n)], cli.Bytes()[off:off+n]) {
			t.Fatalf("write %d: remote memory differs", n)
		}
		fill(srv.Bytes()[:n], uint64(n)+1)
		if err := p.ClientConn.Read(ctx, cli, size-n, r, 0, n); err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		if !bytes.Equal(cli.Bytes()[size-n:], srv.Bytes()[:n]) {
			t.Fatalf("read %d: local memory differs", n)
		}
	}
}

func testBatch(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	const n, chunk = 512, 4096
	srv := alloc(t, p.Server, n*chunk, fabric.RemoteRead|fabric.RemoteWrite)
	cli := alloc(t, p.Client, n*chunk, 0)
	r := exchange(t, p, srv)
	fill(cli.Bytes(), 42)
	ops := make([]fabric.Op, n)
	for i := range ops {
		ops[i] = fabric.Op{Kind: fabric.OpWrite, Mem: cli, Off: i * chunk, Len: chunk, Remote: r,
			RemoteOff: uint64((n - 1 - i) * chunk)}
	}
	if err := p.ClientConn.Do(ctx, ops); err != nil {
		t.Fatalf("batch write: %v", err)
	}
	for i := range n {
		if !bytes.Equal(cli.Bytes()[i*chunk:(i+1)*chunk], srv.Bytes()[(n-1-i)*chunk:(n-i)*chunk]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	clear(cli.Bytes())
	for i := range ops {
		ops[i].Kind = fabric.OpRead
	}
	if err := p.ClientConn.Do(ctx, ops); err != nil {
		t.Fatalf("batch read: %v", err)
	}
	for i := range n {
		if !bytes.Equal(cli.Bytes()[i*chunk:(i+1)*chunk], srv.Bytes()[(n-1-i)*chunk:(n-i)*chunk]) {
			t.Fatalf("read chunk %d differs", i)
		}
	}
}

func needAtomics(t *testing.T, c *fabric.Conn, ops ...fabric.AtomicOp) {
	t.Helper()
	for _, a := range ops {
		if !c.Caps().Atomics.Has(a) {
			// The transport says it lacks it: the op must fail cleanly, which BadInput checks.
			t.Skipf("%s has no native %s (caps %v)", c.Caps().Provider, a, c.Caps().Atomics)
		}
	}
}

func testAtomics(t *testing.T, p *Pair) {
	c := p.ClientConn
	needAtomics(t, c, fabric.FetchAdd, fabric.CompareSwap)
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	r := exchange(t, p, srv)
	word := func() uint64 { return binary.LittleEndian.Uint64(srv.Bytes()[64:]) }
	set := func(v uint64) { binary.LittleEndian.PutUint64(srv.Bytes()[64:], v) }
	type step struct {
		op               fabric.AtomicOp
		start            uint64
		operand, compare uint64
		want             uint64
	}
	for _, s := range []step{
		{fabric.FetchAdd, 40, 2, 0, 42},
		{fabric.FetchAdd, ^uint64(0), 1, 0, 0},
		{fabric.CompareSwap, 5, 9, 5, 9},
		{fabric.CompareSwap, 5, 9, 6, 5},
		{fabric.MaskedSwap, 0xff00ff00, 0x12345678, 0x0000ffff, 0xff005678},
		{fabric.FetchOr, 0xf0, 0x0f, 0, 0xff},
		{fabric.FetchAnd, 0xf0, 0x3c, 0, 0x30},
		{fabric.FetchXor, 0xff, 0x0f, 0, 0xf0},
		{fabric.AtomicRead, 77, 0, 0, 77},
		{fabric.Swap, 1, 2, 0, 2},
	} {
		if !c.Caps().Atomics.Has(s.op) {
			if _, err := c.Atomic(ctx, s.op, r, 64, s.operand, s.compare); !errors.Is(err, fabric.ErrNotSupported) {
				t.Errorf("%s unsupported by caps but returned %v", s.op, err)
			}
			continue
		}
		set(s.start)
		old, err := c.Atomic(ctx, s.op, r, 64, s.operand, s.compare)
		if err != nil {
			t.Fatalf("%s: %v", s.op, err)
		}
		if old != s.start || word() != s.want {
			t.Errorf("%s(%#x, %#x) on %#x: old %#x, word %#x; want old %#x, word %#x",
				s.op, s.operand, s.compare, s.start, old, word(), s.start, s.want)
		}
	}
}

func testConcurrentFetchAdd(t *testing.T, p *Pair) {
	c := p.ClientConn
	needAtomics(t, c, fabric.FetchAdd)
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	r := exchange(t, p, srv)
	const workers, each, batch = 8, 200, 16
	var wg sync.WaitGroup
	seen := make([]map[uint64]bool, workers)
	errs := make(chan error, workers)
	for w := range workers {
		seen[w] = map[uint64]bool{}
		wg.Go(func() {
			ops := make([]fabric.Op, batch)
			for done := 0; done < each; done += batch {
				for i := range ops {
					ops[i] = fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 8, Operand: 1}
				}
				if err := c.Do(ctx, ops); err != nil {
					errs <- err
					return
				}
				for _, op := range ops {
					seen[w][op.Result] = true
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := uint64(workers * ((each + batch - 1) / batch) * batch)
	if got := binary.LittleEndian.Uint64(srv.Bytes()[8:]); got != total {
		t.Fatalf("counter = %d, want %d", got, total)
	}
	all := map[uint64]bool{}
	for _, s := range seen {
		for v := range s {
			if all[v] {
				t.Fatalf("value %d fetched twice", v)
			}
			all[v] = true
		}
	}
	if uint64(len(all)) != total {
		t.Fatalf("%d distinct fetched values, want %d", len(all), total)
	}
}

func testCASChain(t *testing.T, p *Pair) {
	c := p.ClientConn
	needAtomics(t, c, fabric.CompareSwap)
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	r := exchange(t, p, srv)
	// Two goroutines advance a value by CAS loops: the end value counts every success.
	const each = 100
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			cur := uint64(0)
			for n := 0; n < each; {
				old, err := c.CompareSwap(ctx, r, 0, cur, cur+1)
				if err != nil {
					t.Error(err)
					return
				}
				if old == cur {
					n++
					cur++
				} else {
					cur = old
				}
			}
		})
	}
	wg.Wait()
	if got := binary.LittleEndian.Uint64(srv.Bytes()); got != 2*each {
		t.Fatalf("CAS chain ended at %d, want %d", got, 2*each)
	}
}

func testBadInput(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	c := p.ClientConn
	srv := alloc(t, p.Server, 8192, fabric.RemoteAll)
	cli := alloc(t, p.Client, 8192, 0)
	r := exchange(t, p, srv)
	fill(srv.Bytes(), 1)
	before := bytes.Clone(srv.Bytes())
	other, err := fabric.Open(p.Client.Addr().String())
	if err == nil {
		defer other.Close()
	}
	foreign := alloc(t, p.Server, 64, 0)
	for _, tc := range []struct {
		name string
		op   fabric.Op
		want error
	}{
		{"remote past end", fabric.Op{Kind: fabric.OpWrite, Mem: cli, Len: 16, Remote: r, RemoteOff: 8190}, fabric.ErrOutOfRange},
		{"remote offset overflow", fabric.Op{Kind: fabric.OpRead, Mem: cli, Len: 16, Remote: r, RemoteOff: ^uint64(0) - 4}, fabric.ErrOutOfRange},
		{"local past end", fabric.Op{Kind: fabric.OpRead, Mem: cli, Off: 8000, Len: 500, Remote: r}, fabric.ErrOutOfRange},
		{"negative offset", fabric.Op{Kind: fabric.OpRead, Mem: cli, Off: -1, Len: 5, Remote: r}, fabric.ErrOutOfRange},
		{"zero length", fabric.Op{Kind: fabric.OpWrite, Mem: cli, Len: 0, Remote: r}, fabric.ErrInvalid},
		{"no memory", fabric.Op{Kind: fabric.OpWrite, Len: 8, Remote: r}, fabric.ErrInvalid},
		{"memory of another fabric", fabric.Op{Kind: fabric.OpWrite, Mem: foreign, Len: 8, Remote: r}, fabric.ErrInvalid},
		{"misaligned atomic", fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 4, Operand: 1}, fabric.ErrInvalid},
		{"atomic past end", fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 8192, Operand: 1}, fabric.ErrOutOfRange},
		{"unknown atomic", fabric.Op{Kind: fabric.OpAtomic, Atomic: 99, Remote: r}, fabric.ErrInvalid},
		{"unknown kind", fabric.Op{Kind: 42}, fabric.ErrInvalid},
	} {
		if tc.op.Kind == fabric.OpAtomic && tc.op.Atomic == fabric.FetchAdd && !c.Caps().Atomics.Has(fabric.FetchAdd) {
			tc.want = fabric.ErrNotSupported
		}
		err := c.Do(ctx, []fabric.Op{tc.op})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A batch with one bad op posts nothing.
	fill(cli.Bytes(), 99)
	err = c.Do(ctx, []fabric.Op{
		{Kind: fabric.OpWrite, Mem: cli, Len: 64, Remote: r},
		{Kind: fabric.OpWrite, Mem: cli, Len: 64, Remote: r, RemoteOff: 1 << 20},
	})
	if !errors.Is(err, fabric.ErrOutOfRange) {
		t.Errorf("bad batch: %v", err)
	}
	if !bytes.Equal(srv.Bytes(), before) {
		t.Errorf("rejected operations changed remote memory")
	}
	for _, a := range fabric.AtomicOps() {
		if !c.Caps().Atomics.Has(a) {
			if _, err := c.Atomic(ctx, a, r, 0, 1, 1); !errors.Is(err, fabric.ErrNotSupported) {
				t.Errorf("%s (not in caps): %v, want ErrNotSupported", a, err)
			}
		}
	}
	if _, err := p.Client.Alloc(0, 0); !errors.Is(err, fabric.ErrInvalid) {
		t.Errorf("alloc 0: %v", err)
	}
	if _, err := p.Client.Alloc(8, 0x80); !errors.Is(err, fabric.ErrInvalid) {
		t.Errorf("alloc with bad access: %v", err)
	}
	if _, err := fabric.Open("nope://x"); !errors.Is(err, fabric.ErrBadAddress) {
		t.Errorf("bad scheme: %v", err)
	}
}

// testProviderChecks sends operations the local checks cannot catch (a forged descriptor)
// and expects the transport's own protection to refuse them: with ErrAccess, or, where the
// transport tears its connection down on a protection fault (tcp MSG, tcp;ofi_rxm, verbs RC),
// with ErrConnReset. Either way remote memory is unchanged. Each check runs on a connection of
// its own.
func testProviderChecks(t *testing.T, listenAddr func() string) {
	for _, tc := range []struct {
		name  string
		forge func(fabric.Remote) fabric.Remote
		write bool
	}{
		{"write to read-only region", func(r fabric.Remote) fabric.Remote { return r }, true},
		{"read with wrong key", func(r fabric.Remote) fabric.Remote { r.Key ^= 0x5a5a; return r }, false},
		{"read past the registered end", func(r fabric.Remote) fabric.Remote { r.Len = 1 << 30; return r }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Connect(t, listenAddr())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c := p.ClientConn
			ro := alloc(t, p.Server, 8192, fabric.RemoteRead)
			cli := alloc(t, p.Client, 8192, 0)
			r := exchange(t, p, ro)
			fill(ro.Bytes(), 5)
			before := bytes.Clone(ro.Bytes())
			fill(cli.Bytes(), 6)
			var err error
			roff := uint64(0)
			if tc.name == "read past the registered end" {
				roff = 1 << 20
			}
			if tc.write {
				// a whole region, beyond any inject size: providers complete small writes
				// early (verbs;ofi_rxm injects them) and would report a refusal only later
				err = c.Write(ctx, cli, 0, tc.forge(r), roff, 8192)
			} else {
				err = c.Read(ctx, cli, 0, tc.forge(r), roff, 64)
			}
			// RC (verbs): the fault is reported as what it was and, since it moves the queue
			// pair to the error state, as a lost connection too.
			torn := errors.Is(err, fabric.ErrConnReset)
			switch {
			case errors.Is(err, fabric.ErrAccess) && torn:
				t.Logf("refused, and the queue pair went to error: %v", err)
			case errors.Is(err, fabric.ErrAccess):
			case torn:
				t.Logf("transport tore the connection down: %v", err)
			case errors.Is(err, fabric.ErrTimeout) && c.Caps().Provider == "shm":
				// libfabric 1.17 shm never completes an operation its peer refused: the
				// deadline ends it, and the connection is closed.
				t.Logf("shm: refused operation ended by the deadline: %v", err)
			default:
				t.Fatalf("err = %v, want ErrAccess", err)
			}
			if !bytes.Equal(ro.Bytes(), before) {
				t.Errorf("refused operation changed remote memory")
			}
			if torn && errors.Is(err, fabric.ErrAccess) {
				// a connection that says it is lost stays lost: the next operation fails
				// promptly instead of hanging or succeeding
				if err := c.Read(ctxT(t), cli, 0, r, 0, 64); !errors.Is(err, fabric.ErrConnReset) {
					t.Errorf("read after the connection was lost: %v, want ErrConnReset", err)
				}
			} else if errors.Is(err, fabric.ErrAccess) {
				// the connection survives a refused operation
				if err := c.Read(ctxT(t), cli, 0, r, 0, 64); err != nil || !bytes.Equal(cli.Bytes()[:64], before[:64]) {
					t.Errorf("read after refused op: %v", err)
				}
			}
		})
	}
}

func testClose(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	cli := alloc(t, p.Client, 4096, 0)
	r := exchange(t, p, srv)
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("second Memory.Close: %v", err)
	}
	if err := p.ClientConn.Write(ctx, cli, 0, r, 0, 8); !errors.Is(err, fabric.ErrClosed) {
		t.Errorf("write from closed memory: %v", err)
	}
	if err := p.ClientConn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.ClientConn.Close(); err != nil {
		t.Fatalf("second Conn.Close: %v", err)
	}
	if err := p.ClientConn.Send(ctx, []byte("x")); !errors.Is(err, fabric.ErrClosed) {
		t.Errorf("send on closed conn: %v", err)
	}
	if _, err := p.ClientConn.FetchAdd(ctx, r, 0, 1); !errors.Is(err, fabric.ErrClosed) {
		t.Errorf("atomic on closed conn: %v", err)
	}
	if err := p.Server.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Server.Alloc(4096, 0); !errors.Is(err, fabric.ErrClosed) {
		t.Errorf("alloc on closed fabric: %v", err)
	}
}

// testPeerClosed closes the server's end of a connection: the client still receives what was
// sent before the close (not always on libfabric MSG endpoints), and then every call fails
// with ErrConnReset (or ErrClosed) on a context without a deadline, never hangs.
func testPeerClosed(t *testing.T, p *Pair) {
	ctx := ctxT(t)
	srv := alloc(t, p.Server, 4096, fabric.RemoteAll)
	cli := alloc(t, p.Client, 4096, 0)
	r := exchange(t, p, srv)
	if err := p.ClientConn.Write(ctx, cli, 0, r, 0, 8); err != nil {
		t.Fatal(err)
	}
	if err := p.ServerConn.Send(ctx, []byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := p.ServerConn.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := p.ClientConn.Recv(context.Background(), buf)
	switch {
	case err == nil && string(buf[:n]) == "last":
	case err != nil && p.ClientConn.Caps().Endpoint == "msg" && errors.Is(err, fabric.ErrConnReset):
		// libfabric's MSG endpoints report the shutdown without ordering it after the data
		// that came before it (sockets: about one run in three): the message may be lost.
		t.Logf("the message sent before the close: %v", err)
	default:
		t.Fatalf("the message sent before the close: %q, %v", buf[:n], err)
	}
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"write", func(ctx context.Context) error { return p.ClientConn.Write(ctx, cli, 0, r, 0, 8) }},
		{"read", func(ctx context.Context) error { return p.ClientConn.Read(ctx, cli, 0, r, 0, 8) }},
		{"send", func(ctx context.Context) error { return p.ClientConn.Send(ctx, []byte("x")) }},
		{"recv", func(ctx context.Context) error { _, err := p.ClientConn.Recv(ctx, buf); return err }},
	}
	if p.ClientConn.Caps().Atomics.Has(fabric.FetchAdd) {
		calls = append(calls, struct {
			name string
			call func(context.Context) error
		}{"fetch-add", func(ctx context.Context) error { _, err := p.ClientConn.FetchAdd(ctx, r, 0, 1); return err }})
	}
	for _, c := range calls {
		done := make(chan error, 1)
		go func() { done <- c.call(context.Background()) }()
		select {
		case err := <-done:
			if !errors.Is(err, fabric.ErrConnReset) && !errors.Is(err, fabric.ErrClosed) {
				t.Errorf("%s after the peer closed: %v, want ErrConnReset or ErrClosed", c.name, err)
			}
		case <-time.After(10 * time.Second):
			p.ClientConn.Close() // ends the call, which holds cli
			t.Fatalf("%s after the peer closed still runs after 10 s (no deadline): hang", c.name)
		}
	}
}

func testDialNothing(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	c, err := fabric.Dial(ctx, addr)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s with no listener succeeded", addr)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("dial to nothing took %v", el)
	}
	t.Logf("dial to nothing: %v", err)
}
