package verbs_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/internal/labtest"
	"github.com/rdmakit/rdmakit/verbs"
)

// lab opens the lab device and returns it with an IPv4 address on its netdev.
func lab(t testing.TB) (*verbs.Context, string) {
	t.Helper()
	dev, ip := labtest.Device(t)
	c, err := verbs.Open(dev)
	if err != nil {
		t.Fatalf("Open(%s): %v", dev, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Context.Close: %v", err)
		}
	})
	return c, ip
}

func tctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// region is an off-heap buffer registered on a PD.
type region struct {
	mem *verbs.Memory
	mr  *verbs.MR
}

func newRegion(t testing.TB, pd *verbs.PD, size int, access verbs.Access) region {
	t.Helper()
	m, err := verbs.Alloc(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	mr, err := pd.Register(m, access)
	if err != nil {
		t.Fatalf("Register(%d, %#x): %v", size, access, err)
	}
	return region{mem: m, mr: mr}
}

// pair is a connected RC pair on one device (rxe loops back).
type pair struct {
	c                   *verbs.Context
	pd                  *verbs.PD
	client, server      *verbs.Conn
	cbuf, sbuf          region
	clientPriv, srvPriv []byte
}

// newPairSRQ connects a pair whose server QP receives through srq.
func newPairSRQ(t testing.TB, c *verbs.Context, pd *verbs.PD, srq *verbs.SRQ) *pair {
	t.Helper()
	_, ip := labIP(t)
	ln, err := verbs.Listen(net.JoinHostPort(ip, "0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := tctx(t, 20*time.Second)
	p := &pair{c: c, pd: pd}
	errc := make(chan error, 1)
	go func() {
		req, err := ln.Accept(ctx)
		if err == nil {
			p.server, err = req.Accept(ctx, verbs.ConnConfig{PD: pd, SRQ: srq})
		}
		errc <- err
	}()
	if p.client, err = verbs.Dial(ctx, ln.Addr().String(), verbs.ConnConfig{PD: pd}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return p
}

func labIP(t testing.TB) (string, string) { return labtest.Device(t) }

type pairOpts struct {
	size   int
	access verbs.Access // server buffer access
	cap    verbs.QPCap
	cqSize int
}

func newPair(t testing.TB, o pairOpts) *pair {
	t.Helper()
	c, ip := lab(t)
	if o.size == 0 {
		o.size = 1 << 16
	}
	if o.access == 0 {
		o.access = verbs.AccessAll
	}
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{c: c, pd: pd, clientPriv: []byte("hello from client"), srvPriv: []byte("welcome from server")}
	p.cbuf = newRegion(t, pd, o.size, verbs.AccessAll)
	p.sbuf = newRegion(t, pd, o.size, o.access)
	ln, err := verbs.Listen(net.JoinHostPort(ip, "0"), 4)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	ctx := tctx(t, 20*time.Second)
	var scq, ccq *verbs.CQ
	if o.cqSize > 0 {
		if ccq, err = c.CreateCQ(o.cqSize, nil); err != nil {
			t.Fatal(err)
		}
		if scq, err = c.CreateCQ(o.cqSize, nil); err != nil {
			t.Fatal(err)
		}
	}
	type res struct {
		conn *verbs.Conn
		err  error
		priv []byte
	}
	done := make(chan res, 1)
	go func() {
		req, err := ln.Accept(ctx)
		if err != nil {
			done <- res{err: err}
			return
		}
		priv := req.PrivateData()
		conn, err := req.Accept(ctx, verbs.ConnConfig{PD: pd, SendCQ: scq, Cap: o.cap, PrivateData: p.srvPriv})
		done <- res{conn, err, priv}
	}()
	p.client, err = verbs.Dial(ctx, ln.Addr().String(), verbs.ConnConfig{PD: pd, SendCQ: ccq, Cap: o.cap, PrivateData: p.clientPriv})
	if err != nil {
		t.Fatalf("Dial %s: %v", ln.Addr(), err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	p.server = r.conn
	// The IB CM pads private data to its fixed size (56 bytes for a request).
	if !bytes.HasPrefix(r.priv, p.clientPriv) {
		t.Fatalf("server got private data %q, want %q", r.priv, p.clientPriv)
	}
	if !bytes.HasPrefix(p.client.PrivateData(), p.srvPriv) {
		t.Fatalf("client got private data %q, want %q", p.client.PrivateData(), p.srvPriv)
	}
	return p
}

// waitOne waits for one completion on cq and returns it.
func waitOne(t testing.TB, cq *verbs.CQ, d time.Duration) verbs.WC {
	t.Helper()
	var wc [1]verbs.WC
	n, err := cq.Wait(tctx(t, d), wc[:])
	if err != nil || n != 1 {
		t.Fatalf("Wait: n=%d err=%v", n, err)
	}
	return wc[0]
}

// post posts one send work request and waits for its completion; it returns the
// completion's error.
func post(t testing.TB, conn *verbs.Conn, wr verbs.SendWR) error {
	t.Helper()
	wr.Flags |= verbs.Signaled
	if _, err := conn.QP().PostSend([]verbs.SendWR{wr}); err != nil {
		t.Fatalf("PostSend: %v", err)
	}
	wc := waitOne(t, conn.QP().SendCQ(), 10*time.Second)
	if wc.ID != wr.ID {
		t.Fatalf("completion for wr %d, want %d", wc.ID, wr.ID)
	}
	return wc.Err()
}

func mustIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v does not match %v", err, target)
	}
}
