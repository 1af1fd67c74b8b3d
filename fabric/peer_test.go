package fabric_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(fabric.EnvPeer); addr != "" {
		os.Exit(runPeer(addr))
	}
	os.Exit(m.Run())
}

func runPeer(addr string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, l, err := fabric.Listen(ctx, addr)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer f.Close()
	fmt.Println("addr", l.Addr())
	c, err := l.Accept(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	m, err := f.Alloc(8<<20, fabric.RemoteAll)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	b, _ := m.Remote().MarshalBinary()
	if err := c.Send(ctx, b); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if n, _ := strconv.Atoi(os.Getenv(fabric.EnvPeerSend)); n > 0 {
		for i := range n {
			if err := c.Send(ctx, fmt.Appendf(nil, "m%d", i)); err != nil {
				fmt.Println("error:", err)
				return 1
			}
		}
		os.Exit(0) // dies: no Close, no goodbye
	}
	<-ctx.Done() // killed long before
	return 0
}

// dialPeer starts the test binary as a peer process listening on listen (fabric.StartPeer),
// dials it with opts and reads the descriptor of the memory the peer registered, its first
// message. The connection closes when the test ends.
func dialPeer(t *testing.T, listen string, opts ...fabric.Option) (*exec.Cmd, *fabric.Conn, fabric.Remote) {
	t.Helper()
	cmd, addr := fabric.StartPeer(t, listen)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := fabric.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return cmd, c, recvRemote(t, ctx, c)
}

// recvRemote receives a memory descriptor on c (a peer process's first message).
func recvRemote(t *testing.T, ctx context.Context, c *fabric.Conn) fabric.Remote {
	t.Helper()
	buf := make([]byte, 64)
	n, err := c.Recv(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	var r fabric.Remote
	if err := r.UnmarshalBinary(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPeerKilled kills a peer process in the middle of a stream of transfers: the stream must
// end with an error within its deadline, never hang.
func TestPeerKilled(t *testing.T) {
	for name, tr := range ofiTransports(t) {
		t.Run(name, func(t *testing.T) {
			cmd, c, r := dialPeer(t, tr.Listen())
			local, err := c.Fabric().Alloc(8<<20, 0)
			if err != nil {
				t.Fatal(err)
			}
			// stream 1 MiB reads and writes until something fails
			const deadline = 8 * time.Second
			sctx, scancel := context.WithTimeout(context.Background(), deadline)
			defer scancel()
			done := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				for i := 0; ; i++ {
					op := fabric.OpWrite
					if i%2 == 1 {
						op = fabric.OpRead
					}
					err := c.Do(sctx, []fabric.Op{{Kind: op, Mem: local, Off: (i % 8) << 20, Len: 1 << 20, Remote: r,
						RemoteOff: uint64((i % 8) << 20)}})
					if i == 4 {
						close(started)
					}
					if err != nil {
						done <- err
						return
					}
				}
			}()
			select {
			case <-started:
			case err := <-done:
				t.Fatalf("stream failed before the kill: %v", err)
			}
			start := time.Now()
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			select {
			case err := <-done:
				t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
				if err == nil {
					t.Fatal("stream ended without an error")
				}
				if !errors.Is(err, fabric.ErrConnReset) && !errors.Is(err, fabric.ErrTimeout) && !errors.Is(err, fabric.ErrClosed) {
					t.Errorf("error %v is neither ErrConnReset nor ErrTimeout", err)
				}
				// A connection the transport reported lost says no goodbye: closing it does
				// not wait for an answer from the dead peer (up to 500 ms).
				if errors.Is(err, fabric.ErrConnReset) {
					start := time.Now()
					c.Close()
					if d := time.Since(start); d >= 500*time.Millisecond {
						t.Errorf("closing the lost connection took %v", d)
					}
				}
			case <-time.After(deadline + 5*time.Second):
				t.Fatal("stream still running long after the deadline: hang")
			}
		})
	}
}

// TestDialTimeout dials an address whose listener never answers (a plain TCP socket that takes
// connections and stays silent): with no deadline in its context, Dial still ends, in
// ErrTimeout, when its dial timeout passes.
func TestDialTimeout(t *testing.T) {
	for _, scheme := range []string{"ofi+tcp", "ofi+sockets"} {
		t.Run(scheme, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				var held []net.Conn
				defer func() {
					for _, c := range held {
						c.Close()
					}
				}()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					held = append(held, c)
				}
			}()
			start := time.Now()
			c, err := fabric.Dial(context.Background(), scheme+"://"+l.Addr().String(), fabric.WithDialTimeout(300*time.Millisecond))
			if err == nil {
				c.Close()
				t.Fatal("dial to a listener that never answers succeeded")
			}
			if !errors.Is(err, fabric.ErrTimeout) {
				t.Fatalf("dial: %v, want ErrTimeout", err)
			}
			if el := time.Since(start); el > 30*time.Second {
				t.Errorf("dial took %v", el) // a generous bound: the point is that it ends
			}
		})
	}
}

// TestPeerKilledNoDeadline kills a peer process while a goroutine makes one-op atomics (where
// the transport has them) and another waits in Recv, both with contexts that never end: each
// must end in an error soon after the kill, never hang (shm: nothing in libfabric notices the
// peer's death).
func TestPeerKilledNoDeadline(t *testing.T) {
	for name, tr := range ofiTransports(t) {
		t.Run(name, func(t *testing.T) { peerKilledNoDeadline(t, tr) })
	}
}

func peerKilledNoDeadline(t *testing.T, tr fabrictest.Transport) {
	cmd, c, r := dialPeer(t, tr.Listen(), fabric.WithKeepalive(100*time.Millisecond, 2*time.Second))
	atomics := c.Caps().Atomics.Has(fabric.FetchAdd)
	type result struct {
		what string
		err  error
	}
	done := make(chan result, 2)
	started := make(chan struct{})
	forever := context.Background()
	if atomics {
		go func() {
			for i := 0; ; i++ {
				_, err := c.FetchAdd(forever, r, 0, 1)
				if i == 100 {
					close(started)
				}
				if err != nil {
					done <- result{"fetch-add", err}
					return
				}
			}
		}()
	} else {
		close(started)
	}
	go func() {
		buf := make([]byte, 64)
		_, err := c.Recv(forever, buf)
		done <- result{"recv", err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("%s failed before the kill: %v", r.what, r.err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	start := time.Now()
	want := 1
	if atomics {
		want = 2
	}
	pending := map[string]bool{"recv": true}
	if atomics {
		pending["fetch-add"] = true
	}
	for range want {
		select {
		case r := <-done:
			delete(pending, r.what)
			t.Logf("%s after %v: %v", r.what, time.Since(start).Round(time.Millisecond), r.err)
			if r.err == nil {
				t.Fatalf("%s ended without an error", r.what)
			}
			if !errors.Is(r.err, fabric.ErrConnReset) || errors.Is(r.err, fabric.ErrClosed) {
				t.Errorf("%s: %v, want ErrConnReset (and not ErrClosed: the conn is open)", r.what, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v still waiting 10 s after the kill: hang", pending)
		}
	}
}

// TestKeepaliveLosesStoppedPeer stops a peer process (SIGSTOP: alive, silent) on the network RDM
// transports: a Recv without deadline ends in ErrConnReset once a keepalive read has gone
// unanswered for the timeout.
func TestKeepaliveLosesStoppedPeer(t *testing.T) {
	for _, name := range []string{"tcp-rxm", "sockets"} {
		tr, ok := ofiTransports(t)[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			cmd, addr := fabric.StartPeer(t, tr.Listen())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const timeout = 500 * time.Millisecond
			c, err := fabric.Dial(ctx, addr, fabric.WithKeepalive(50*time.Millisecond, timeout))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 64)
			if _, err := c.Recv(ctx, buf); err != nil { // the peer's descriptor
				t.Fatal(err)
			}
			time.Sleep(10 * timeout) // reading a live peer loses nothing
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = fabric.RecvEnds(t, c, 10*time.Second, "the peer stopped")
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, fabric.ErrConnReset) {
				t.Fatalf("recv: %v, want ErrConnReset", err)
			}
			if d := time.Since(start); d < timeout {
				t.Errorf("lost after %v, before the keepalive timeout", d)
			}
		})
	}
}

// TestLostPeerMessagesReadable: a peer that sends messages and dies at once (no goodbye) is lost,
// and its messages are still received, in order, before Recv fails with ErrConnReset.
func TestLostPeerMessagesReadable(t *testing.T) {
	for _, name := range []string{"tcp-rxm", "sockets", "shm"} {
		tr, ok := ofiTransports(t)[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			const msgs = 3
			cmd, addr := fabric.StartPeer(t, tr.Listen(), fabric.EnvPeerSend+"="+strconv.Itoa(msgs))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := fabric.Dial(ctx, addr, fabric.WithKeepalive(20*time.Millisecond, 200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cmd.Wait() // it sent everything and died
			r := recvRemote(t, ctx, c)
			buf := make([]byte, 64)
			// Lost by now (shm: at once; the others: within an interval and a timeout).
			time.Sleep(time.Second)
			if _, err := c.FetchAdd(ctx, r, 0, 1); !errors.Is(err, fabric.ErrConnReset) {
				t.Fatalf("a call on the lost connection: %v, want ErrConnReset", err)
			}
			for i := range msgs {
				n, err := c.Recv(ctx, buf)
				if err != nil || string(buf[:n]) != fmt.Sprintf("m%d", i) {
					t.Fatalf("message %d: %q, %v", i, buf[:n], err)
				}
			}
			if _, err := c.Recv(ctx, buf); !errors.Is(err, fabric.ErrConnReset) {
				t.Fatalf("recv after the messages: %v, want ErrConnReset", err)
			}
		})
	}
}
