package fabric

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// connPairWith is connPair with options for the listening and the dialing end.
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
// sides ping (and receive the other's pings) and the connection still carries messages.
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
			for srv.pings.Load() < 20 || cli.pings.Load() < 20 {
				if time.Now().After(deadline) {
					t.Fatalf("pings after 10 s: server %d, client %d", srv.pings.Load(), cli.pings.Load())
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

// A side with WithKeepalive(0, 0) sends no pings but answers its peer's; shm peers of this
// process are never watched.
func TestKeepaliveOff(t *testing.T) {
	s, c := connPairWith(t, "ofi+tcp://127.0.0.1:0", []Option{WithKeepalive(0, 0)},
		[]Option{WithKeepalive(2*time.Millisecond, time.Second)})
	srv, cli := s.impl.(*ofiConn), c.impl.(*ofiConn)
	deadline := time.Now().Add(10 * time.Second)
	for cli.pings.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("answered pings after 10 s: %d", cli.pings.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.pings.Load(); n != 0 {
		t.Errorf("a side without keepalive made %d pings", n)
	}
	if srv.lost.Load() != nil || cli.lost.Load() != nil {
		t.Error("a live peer was lost")
	}
	s, c = connPairWith(t, "ofi+shm://rk-alive-"+anonymousShmName(), nil, nil)
	if s.impl.(*ofiConn).peerDone != nil || c.impl.(*ofiConn).peerDone != nil {
		t.Error("a shm peer of this process is watched")
	}
}

// Without pidfds, a shm peer process's death is found by kill(pid, 0) every interval.
func TestShmPeerWithoutPidfd(t *testing.T) {
	pidfdOpen = func(int) (int, error) { return -1, syscall.ENOSYS }
	t.Cleanup(func() { pidfdOpen = openPidfd })
	cmd := exec.Command(os.Args[0], "-test.run=NONE")
	cmd.Env = append(os.Environ(), "RDMAKIT_FABRIC_TEST_PEER=ofi+shm://rk-alive-"+anonymousShmName())
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, strings.TrimPrefix(sc.Text(), "addr "), WithKeepalive(20*time.Millisecond, time.Second))
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
	done := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background(), buf)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnReset) || errors.Is(err, ErrClosed) {
			t.Fatalf("recv: %v, want ErrConnReset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("recv still waiting 10 s after the peer died")
	}
}

// FuzzKeepalive: any 8 bytes are a ping or an answer that encodes back to the same bytes;
// anything else is an error.
func FuzzKeepalive(f *testing.F) {
	f.Add(binary.LittleEndian.AppendUint64(nil, 7))
	f.Add(binary.LittleEndian.AppendUint64(nil, keepaliveWord(7, true)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, msg []byte) {
		seq, pong, err := readKeepalive(msg)
		if len(msg) != 8 {
			if err == nil {
				t.Fatalf("%d bytes accepted", len(msg))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq&pongBit != 0 {
			t.Fatalf("sequence %#x has the answer bit", seq)
		}
		if got := binary.LittleEndian.AppendUint64(nil, keepaliveWord(seq, pong)); !bytes.Equal(got, msg) {
			t.Fatalf("%x -> (%d, %v) -> %x", msg, seq, pong, got)
		}
	})
}
