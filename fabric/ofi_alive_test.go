package fabric

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// connPairWith listens on addr and dials it, with options for the listening and the dialing
// end; both ends close when the test ends.
func connPairWith(t *testing.T, addr string, srvOpts, cliOpts []Option) (srv, cli *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, l, err := Listen(ctx, addr, srvOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	accepted := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept(ctx)
		accepted <- c
	}()
	if cli, err = Dial(ctx, l.Addr(), cliOpts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if srv = <-accepted; srv == nil {
		t.Fatal("accept failed")
	}
	return srv, cli
}

// A live, idle connection stays up under a keepalive many times faster than the default: both
// sides read the other's keepalive word, and the connection still carries messages.
func TestKeepaliveKeepsLiveConn(t *testing.T) {
	for _, addr := range []string{"ofi+tcp://127.0.0.1:0", "ofi+sockets://127.0.0.1:0"} {
		t.Run(strings.SplitN(addr, ":", 2)[0], func(t *testing.T) {
			opts := []Option{WithKeepalive(2*time.Millisecond, time.Second)}
			s, c := connPairWith(t, addr, opts, opts)
			srv, cli := s.impl.(*ofiConn), c.impl.(*ofiConn)
			if srv.peerDone == nil || cli.peerDone == nil {
				t.Fatal("no keepalive on a network RDM connection")
			}
			deadline := time.Now().Add(10 * time.Second)
			for srv.reads.Load() < 20 || cli.reads.Load() < 20 {
				if time.Now().After(deadline) {
					t.Fatalf("keepalive reads after 10 s: server %d, client %d", srv.reads.Load(), cli.reads.Load())
				}
				time.Sleep(10 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, p := range [][2]*Conn{{c, s}, {s, c}} {
				if err := p[0].Send(ctx, []byte("still here")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 64)
				if n, err := p[1].Recv(ctx, buf); err != nil || string(buf[:n]) != "still here" {
					t.Fatalf("recv: %q, %v", buf[:n], err)
				}
			}
			if srv.lost.Load() != nil || cli.lost.Load() != nil {
				t.Fatal("a live peer was lost")
			}
		})
	}
}

// A side with WithKeepalive(0, 0) reads nothing (its peer still reads its word); shm peers of
// this process are never watched.
func TestKeepaliveOff(t *testing.T) {
	s, c := connPairWith(t, "ofi+tcp://127.0.0.1:0", []Option{WithKeepalive(0, 0)},
		[]Option{WithKeepalive(2*time.Millisecond, time.Second)})
	srv, cli := s.impl.(*ofiConn), c.impl.(*ofiConn)
	if srv.peerDone != nil {
		t.Error("a keepalive without an interval")
	}
	deadline := time.Now().Add(10 * time.Second)
	for cli.reads.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("keepalive reads after 10 s: %d", cli.reads.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if srv.lost.Load() != nil || cli.lost.Load() != nil {
		t.Error("a live peer was lost")
	}
	s, c = connPairWith(t, "ofi+shm://rk-alive-"+anonymousShmName(), nil, nil)
	if s.impl.(*ofiConn).peerDone != nil || c.impl.(*ofiConn).peerDone != nil {
		t.Error("a shm peer of this process is watched")
	}
}

// The keepalive reads cost no provider memory: tcp;ofi_rxm set up about 4.5 MB of buffers per
// endpoint at its first tagged message, which pinging with tagged messages made every
// connection pay (measured here as the process's resident set).
func TestKeepaliveMemory(t *testing.T) {
	rss := func() int {
		b, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Skip(err)
		}
		var size, res int
		fmt.Sscan(string(b), &size, &res)
		return res * os.Getpagesize()
	}
	opts := []Option{WithKeepalive(2*time.Millisecond, time.Second)}
	s, c := connPairWith(t, "ofi+tcp://127.0.0.1:0", opts, opts)
	srv, cli := s.impl.(*ofiConn), c.impl.(*ofiConn)
	before := rss()
	for srv.reads.Load() < 50 || cli.reads.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	if grew := rss() - before; grew > 2<<20 {
		t.Errorf("the resident set grew %d KiB while the keepalive ran", grew>>10)
	}
}

// Without pidfds, a shm peer process's death is found by kill(pid, 0) every interval.
func TestShmPeerWithoutPidfd(t *testing.T) {
	pidfdOpen = func(int) (int, error) { return -1, syscall.ENOSYS }
	t.Cleanup(func() { pidfdOpen = openPidfd })
	cmd, addr := StartPeer(t, "ofi+shm://rk-alive-"+anonymousShmName())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, WithKeepalive(20*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	oc := c.impl.(*ofiConn)
	if oc.peerDone == nil || oc.pidfd != nil {
		t.Fatalf("watch: %v, pidfd %v: want the kill(pid, 0) poll", oc.peerDone != nil, oc.pidfd)
	}
	buf := make([]byte, 64)
	if _, err := c.Recv(ctx, buf); err != nil { // the peer's descriptor
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := RecvEnds(t, c, 10*time.Second, "the peer died"); !errors.Is(err, ErrConnReset) || errors.Is(err, ErrClosed) {
		t.Fatalf("recv: %v, want ErrConnReset", err)
	}
}
