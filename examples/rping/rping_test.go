package rping_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/examples/rping"
	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/internal/labtest"
	"github.com/rdmakit/rdmakit/verbs"
)

func FuzzAdv(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, rping.AdvSize))
	f.Add([]byte{0, 0, 0x7f, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 64})
	f.Add(make([]byte, rping.AdvSize+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a rping.Adv
		err := a.UnmarshalBinary(b)
		if len(b) != rping.AdvSize {
			if !errors.Is(err, rping.ErrFormat) {
				t.Fatalf("%d bytes: %v, want ErrFormat", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := a.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip of %x: %x, %v", b, out, err)
		}
		var back rping.Adv
		if err := back.UnmarshalBinary(out); err != nil || back != a {
			t.Fatalf("decode of %x: %+v, %v; want %+v", out, back, err, a)
		}
	})
}

func TestAdvWire(t *testing.T) {
	b, _ := rping.Adv{Addr: 0x0102030405060708, RKey: 0x0a0b0c0d, Size: 64}.MarshalBinary()
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0xa, 0xb, 0xc, 0xd, 0, 0, 0, 64}
	if !bytes.Equal(b, want) {
		t.Fatalf("wire form %x, want %x (network byte order)", b, want)
	}
}

func TestFill(t *testing.T) {
	buf := make([]byte, 30)
	next := rping.Fill(buf, 7, 120)
	// "rdma-ping-7: " then x y z A B ... and a final NUL, as the C client writes it.
	want := "rdma-ping-7: xyzABCDEFGHIJKLM\x00"
	if string(buf) != want || next != 121 {
		t.Fatalf("Fill = %q, next %d; want %q, 121", buf, next, want)
	}
	if next := rping.Fill(buf, 0, 122); next != 65 {
		t.Fatalf("start after z = %d, want 65", next)
	}
}

// expected is what a C rping client sends for count pings of size bytes (and -v prints).
func expected(count, size int) []string {
	buf := make([]byte, size)
	start := 65
	var out []string
	for i := range count {
		start = rping.Fill(buf, i, start)
		out = append(out, string(bytes.TrimRight(buf, "\x00")))
	}
	return out
}

func lines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines, want %d:\n%s", what, len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// lab returns the lab address and a free rdma_cm port on it.
func lab(t *testing.T) (ip, port string) {
	t.Helper()
	_, ip = labtest.Device(t)
	l, err := verbs.Listen(net.JoinHostPort(ip, "0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return ip, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func cRping(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("rping")
	if err != nil {
		if labtest.Required() {
			t.Fatalf("rdma-core's rping is not installed (rdmacm-utils): %v", err)
		}
		t.Skip("rdma-core's rping is not installed (rdmacm-utils)")
	}
	return p
}

// waitListen waits until an rdma_cm id listens on port (rping servers do not listen on TCP).
func waitListen(t *testing.T, ctx context.Context, port string) {
	t.Helper()
	for ctx.Err() == nil {
		out, _ := exec.CommandContext(ctx, "rdma", "res", "show", "cm_id").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "LISTEN") && strings.Contains(l, ":"+port+" ") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no rdma_cm listener on port %s", port)
}

type sizeCase struct{ count, size int }

var cases = []sizeCase{{10, 64}, {3, rping.MinSize}, {2, rping.MaxSize}}

// TestGoClientCServer pings C `rping -s` from the Go client.
func TestGoClientCServer(t *testing.T) {
	bin := cRping(t)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("C%d-S%d", tc.count, tc.size), func(t *testing.T) {
			ip, port := lab(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			srv := exec.CommandContext(ctx, bin, "-s", "-a", ip, "-p", port, "-v", "-V", "-S", strconv.Itoa(tc.size))
			var sout, serr bytes.Buffer
			srv.Stdout, srv.Stderr = &sout, &serr
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer srv.Process.Kill()
			waitListen(t, ctx, port)
			c, err := fabric.Dial(ctx, "verbs://"+net.JoinHostPort(ip, port))
			if err != nil {
				t.Fatal(err)
			}
			var verbose bytes.Buffer
			err = rping.Client(ctx, c, rping.Options{Count: tc.count, Size: tc.size, Validate: true, Verbose: &verbose})
			c.Close()
			if err != nil {
				t.Fatalf("Go client: %v", err)
			}
			if err := srv.Wait(); err != nil {
				t.Fatalf("C server: %v\n%s%s", err, sout.String(), serr.String())
			}
			want := expected(tc.count, tc.size)
			equalLines(t, "C server output", lines(sout.String(), "server ping data: "), want)
			equalLines(t, "Go client output", lines(verbose.String(), "ping data: "), want)
		})
	}
}

// TestCClientGoServer serves C `rping -c` from the Go server.
func TestCClientGoServer(t *testing.T) {
	bin := cRping(t)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("C%d-S%d", tc.count, tc.size), func(t *testing.T) {
			ip, port := lab(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			f, l, err := fabric.Listen(ctx, "verbs://"+net.JoinHostPort(ip, port))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cli := exec.CommandContext(ctx, bin, "-c", "-a", ip, "-p", port, "-v", "-V",
				"-C", strconv.Itoa(tc.count), "-S", strconv.Itoa(tc.size))
			var cout, cerr bytes.Buffer
			cli.Stdout, cli.Stderr = &cout, &cerr
			if err := cli.Start(); err != nil {
				t.Fatal(err)
			}
			defer cli.Process.Kill()
			c, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var verbose bytes.Buffer
			if err := rping.Serve(ctx, c, rping.Options{Verbose: &verbose}); err != nil {
				t.Fatalf("Go server: %v", err)
			}
			if err := cli.Wait(); err != nil {
				t.Fatalf("C client: %v\n%s%s", err, cout.String(), cerr.String())
			}
			want := expected(tc.count, tc.size)
			equalLines(t, "C client output", lines(cout.String(), "ping data: "), want)
			equalLines(t, "Go server output", lines(verbose.String(), "server ping data: "), want)
		})
	}
}

// TestGoBoth runs the Go client against the Go server, and the server against bad input.
func TestGoBoth(t *testing.T) {
	ip, port := lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, l, err := fabric.Listen(ctx, "verbs://"+net.JoinHostPort(ip, port))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	serve := func() <-chan error {
		errc := make(chan error, 1)
		go func() {
			c, err := l.Accept(ctx)
			if err == nil {
				err = rping.Serve(ctx, c, rping.Options{})
				c.Close()
			}
			errc <- err
		}()
		return errc
	}
	errc := serve()
	c, err := fabric.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := rping.Client(ctx, c, rping.Options{Count: 5, Size: 100, Validate: true}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	// Bad advertisements end the server with ErrFormat, without touching memory.
	for _, bad := range [][]byte{
		[]byte("short"),
		func() []byte {
			b, _ := rping.Adv{Addr: 4096, RKey: 1, Size: rping.MaxSize + 1}.MarshalBinary()
			return b
		}(),
		func() []byte { b, _ := rping.Adv{Addr: 4096, RKey: 1, Size: 0}.MarshalBinary(); return b }(),
	} {
		errc := serve()
		c, err := fabric.Dial(ctx, l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctx, bad); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, rping.ErrFormat) {
			t.Errorf("server given %x: %v, want ErrFormat", bad, err)
		}
		c.Close()
	}
}
