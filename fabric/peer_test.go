package fabric_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// envPeer makes the test binary a peer process: it listens on the address, accepts one
// connection, registers 8 MiB, sends its descriptor, prints its address and waits to be killed.
const envPeer = "RDMAKIT_FABRIC_TEST_PEER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envPeer); addr != "" {
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
	<-ctx.Done() // killed long before
	return 0
}

// TestPeerKilled kills a peer process in the middle of a stream of transfers: the stream must
// end with an error within its deadline, never hang.
func TestPeerKilled(t *testing.T) {
	for name, tr := range ofiTransports(t) {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=NONE")
			cmd.Env = append(os.Environ(), envPeer+"="+tr.Listen())
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			sc := bufio.NewScanner(out)
			if !sc.Scan() || !strings.HasPrefix(sc.Text(), "addr ") {
				t.Fatalf("peer said %q", sc.Text())
			}
			addr := strings.TrimPrefix(sc.Text(), "addr ")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := fabric.Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 64)
			n, err := c.Recv(ctx, buf)
			if err != nil {
				t.Fatal(err)
			}
			var r fabric.Remote
			if err := r.UnmarshalBinary(buf[:n]); err != nil {
				t.Fatal(err)
			}
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
