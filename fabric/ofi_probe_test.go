package fabric_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// TestDialNothingRDM: a dial over tcp;ofi_rxm or sockets RDM to a port where nothing listens is
// refused, not left to its context (rxm retried until the deadline) or reported as a lost
// connection (sockets).
func TestDialNothingRDM(t *testing.T) {
	for _, scheme := range []string{"ofi+tcp", "ofi+sockets"} {
		t.Run(scheme, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			addr := fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t))
			c, err := fabric.Dial(ctx, addr)
			if err == nil {
				c.Close()
				t.Fatalf("dial %s succeeded", addr)
			}
			if !errors.Is(err, fabric.ErrConnRefused) || ctx.Err() != nil {
				t.Fatalf("dial %s: %v, want fabric.ErrConnRefused before the context ends", addr, err)
			}
		})
	}
}

// TestListenerSurvivesProbes: bare TCP connections to an RDM listener, opened and closed as a
// dial's probe does, cost it nothing: a dial after them is welcomed and messages flow.
func TestListenerSurvivesProbes(t *testing.T) {
	for _, scheme := range []string{"ofi+tcp", "ofi+sockets"} {
		t.Run(scheme, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f, l, err := fabric.Listen(ctx, scheme+"://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			a, err := fabric.ParseAddr(l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			for range 50 {
				probe, err := net.Dial("tcp", net.JoinHostPort(a.Host, a.Port))
				if err != nil {
					t.Fatal(err)
				}
				probe.Close()
			}
			accepted := make(chan *fabric.Conn, 1)
			go func() {
				c, err := l.Accept(ctx)
				if err != nil {
					t.Error(err)
				}
				accepted <- c
			}()
			c, err := fabric.Dial(ctx, l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := <-accepted
			if s == nil {
				return
			}
			defer s.Close()
			if err := c.Send(ctx, []byte("after the probes")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			if n, err := s.Recv(ctx, buf); err != nil || string(buf[:n]) != "after the probes" {
				t.Fatalf("recv: %q, %v", buf[:n], err)
			}
		})
	}
}
