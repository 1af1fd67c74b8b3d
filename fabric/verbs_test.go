package fabric_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
	"github.com/rdmakit/rdmakit/internal/labtest"
	"github.com/rdmakit/rdmakit/verbs"
)

// unusedCMPort is an rdma_cm port on ip that nobody listens on (just released). The rdma_cm
// has port spaces of its own: a free TCP port says nothing about them.
func unusedCMPort(t testing.TB, ip string) string {
	t.Helper()
	l, err := verbs.Listen(net.JoinHostPort(ip, "0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// labTransport is a fabric transport on the lab device's address.
func labTransport(t *testing.T, scheme, query string) fabrictest.Transport {
	_, ip := labtest.Device(t)
	return fabrictest.Transport{
		Listen:  func() string { return scheme + "://" + net.JoinHostPort(ip, "0") + query },
		Nothing: func() string { return scheme + "://" + net.JoinHostPort(ip, unusedCMPort(t, ip)) + query },
	}
}

func TestConformanceVerbs(t *testing.T) {
	fabrictest.Run(t, labTransport(t, "verbs", ""))
}

func TestConformanceOFIVerbs(t *testing.T) {
	tr := map[string]fabrictest.Transport{
		"rdm": labTransport(t, "ofi+verbs", ""),
		"msg": labTransport(t, "ofi+verbs", "?ep=msg"),
	}
	for name, tr := range tr {
		t.Run(name, func(t *testing.T) { fabrictest.Run(t, tr) })
	}
}

func TestVerbsCaps(t *testing.T) {
	dev, ip := labtest.Device(t)
	f, err := fabric.Open("verbs://" + net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Caps()
	want := fabric.AtomicSet(0).With(fabric.FetchAdd).With(fabric.CompareSwap)
	if c.Backend != "verbs" || c.Provider != dev || c.Endpoint != "rc" || c.Atomics != want ||
		c.MaxMessage != 64<<10 || c.MaxTransfer < 1<<20 {
		t.Fatalf("caps %+v", c)
	}
	// Registering caller memory would pin all of it: verbs refuses (see Fabric.Register).
	if _, err := f.Register(make([]byte, 4096), 0); !errors.Is(err, fabric.ErrNotSupported) {
		t.Errorf("register on verbs: %v, want ErrNotSupported", err)
	}
	if _, err := fabric.Open("verbs://127.0.0.1:0"); err == nil {
		t.Fatal("opened verbs on loopback, which has no RDMA device")
	}
	if _, err := fabric.Open("verbs://192.0.2.1:0"); !errors.Is(err, fabric.ErrBadAddress) {
		t.Fatalf("open on an address of no interface: %v, want ErrBadAddress", err)
	}
	if _, err := fabric.Open("verbs://"+net.JoinHostPort(ip, "0"), fabric.WithQueueDepth(1<<30)); !errors.Is(err, fabric.ErrInvalid) {
		t.Fatalf("huge queue depth: %v, want ErrInvalid", err)
	}
}

// TestVerbsPeerGone checks that a peer closing its connection wakes a waiting Recv and fails
// later operations with ErrConnReset, promptly.
func TestVerbsPeerGone(t *testing.T) {
	_, ip := labtest.Device(t)
	p := fabrictest.Connect(t, "verbs://"+net.JoinHostPort(ip, "0"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mem, err := p.Server.Alloc(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := p.Client.Alloc(4096, fabric.RemoteAll)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.ServerConn.Recv(ctx, make([]byte, 64))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the Recv wait
	start := time.Now()
	if err := p.ClientConn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, fabric.ErrConnReset) {
		t.Fatalf("Recv when the peer left: %v, want ErrConnReset", err)
	}
	t.Logf("Recv woke %v after the peer closed", time.Since(start))
	if err := p.ServerConn.Send(ctx, []byte("anyone?")); !errors.Is(err, fabric.ErrConnReset) {
		t.Fatalf("Send to a gone peer: %v, want ErrConnReset", err)
	}
	if err := p.ServerConn.Write(ctx, mem, 0, theirs.Remote(), 0, 64); !errors.Is(err, fabric.ErrConnReset) {
		t.Fatalf("Write to a gone peer: %v, want ErrConnReset", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to notice the peer left", d)
	}
}

// TestVerbsDeadlineInFlight checks that a context ending with operations in flight closes the
// connection (the only way to take the buffers back) and reports the timeout.
func TestVerbsDeadlineInFlight(t *testing.T) {
	_, ip := labtest.Device(t)
	p := fabrictest.Connect(t, "verbs://"+net.JoinHostPort(ip, "0"))
	const size = 1 << 20
	srv, err := p.Server.Alloc(size, fabric.RemoteWrite)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := p.Client.Alloc(size, 0)
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]fabric.Op, 512) // 512 MiB: far longer than the deadline on any link
	for i := range ops {
		ops[i] = fabric.Op{Kind: fabric.OpWrite, Mem: cli, Len: size, Remote: srv.Remote()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = p.ClientConn.Do(ctx, ops)
	if !errors.Is(err, fabric.ErrTimeout) {
		t.Fatalf("Do past its deadline: %v, want ErrTimeout", err)
	}
	timedOut := 0
	for _, op := range ops {
		if errors.Is(op.Err, fabric.ErrTimeout) {
			timedOut++
		} else if op.Err != nil {
			t.Fatalf("op error %v, want nil or ErrTimeout", op.Err)
		}
	}
	if timedOut == 0 {
		t.Fatal("no op reports the timeout")
	}
	next := context.Background()
	if err := p.ClientConn.Write(next, cli, 0, srv.Remote(), 0, 8); !errors.Is(err, fabric.ErrClosed) {
		t.Fatalf("write after the timeout: %v, want ErrClosed", err)
	}
	if err := p.ClientConn.Close(); err != nil {
		t.Fatalf("Close after the timeout: %v", err)
	}
	// The server side notices.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if _, err := p.ServerConn.Recv(rctx, make([]byte, 8)); !errors.Is(err, fabric.ErrConnReset) {
		t.Fatalf("server Recv after the client closed: %v, want ErrConnReset", err)
	}
}

// TestVerbsDoAllocs: Conn.Do and the one-op calls on verbs allocate nothing: a Do used to make
// four or five (the batch and its done channel, the work request and index slices, and the
// posted count the verbs package handed to C). The lab runs it without the race detector too
// (Makefile).
func TestVerbsDoAllocs(t *testing.T) {
	_, ip := labtest.Device(t)
	// Spin long enough that the calls never wait on the completion channel: a blocking wait
	// allocates (a context joining the caller's with the connection's), and the lab's rxe,
	// under an emulated CPU, takes longer than the default spin for 32 atomics.
	testDoAllocs(t, fabrictest.Connect(t, "verbs://"+net.JoinHostPort(ip, "0"), fabric.WithSpin(time.Second)))
}

// TestPeerKilledNoDeadlineVerbs is TestPeerKilledNoDeadline on the lab device: verbs (an RC
// queue pair through the rdma_cm) and libfabric's verbs;ofi_rxm and verbs MSG endpoints.
func TestPeerKilledNoDeadlineVerbs(t *testing.T) {
	for name, tr := range map[string]fabrictest.Transport{
		"verbs":         labTransport(t, "verbs", ""),
		"ofi-verbs-rdm": labTransport(t, "ofi+verbs", ""),
		"ofi-verbs-msg": labTransport(t, "ofi+verbs", "?ep=msg"),
	} {
		t.Run(name, func(t *testing.T) { peerKilledNoDeadline(t, tr) })
	}
}
