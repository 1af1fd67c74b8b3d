package ofi

import (
	"context"
	"os"
	"testing"
	"time"
)

// side is one end of a test connection: its own fabric, domain, endpoint and queues.
type side struct {
	info *Info
	fab  *Fabric
	dom  *Domain
	ep   *Endpoint
	cq   *CQ
	av   *AV
	eq   *EQ
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hintsFor(prov string, ep EPType, caps Caps) *Hints {
	return &Hints{Provider: prov, EPType: ep, Caps: caps, Threading: ThreadSafe}
}

// openSide opens fabric and domain for hints at node/service (source).
func openSide(t testing.TB, node, service string, h *Hints) *side {
	t.Helper()
	infos, err := GetInfo(node, service, true, h)
	if err != nil {
		t.Fatalf("getinfo %s: %v", h.Provider, err)
	}
	s := &side{info: infos[0]}
	if s.fab, err = OpenFabric(s.info); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.fab.Close() })
	if s.dom, err = s.fab.OpenDomain(s.info); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *side) endpoint(t testing.TB, info *Info) {
	t.Helper()
	var err error
	if s.ep, err = s.dom.NewEndpoint(info); err != nil {
		t.Fatal(err)
	}
	if s.cq, err = s.dom.OpenCQ(CQAttr{Size: 256, NoWaitFD: true}); err != nil {
		t.Fatal(err)
	}
	if err = s.ep.BindCQ(s.cq, BindTransmit|BindRecv); err != nil {
		t.Fatal(err)
	}
	if info.EPType() == EPRDM {
		if s.av, err = s.dom.OpenAV(AVTable, 8); err != nil {
			t.Fatal(err)
		}
		err = s.ep.BindAV(s.av)
	} else {
		if s.eq, err = s.fab.OpenEQ(8); err != nil {
			t.Fatal(err)
		}
		err = s.ep.BindEQ(s.eq)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err = s.ep.Enable(); err != nil {
		t.Fatal(err)
	}
}

// rdmPair makes two RDM endpoints that know each other; it returns them and each one's
// handle for the other.
func rdmPair(t testing.TB, prov string, caps Caps) (a, b *side, ab, ba Addr) {
	t.Helper()
	node := "127.0.0.1"
	if prov == "shm" {
		node = ""
	}
	h := hintsFor(prov, EPRDM, caps)
	a, b = openSide(t, node, "", h), openSide(t, node, "", h)
	a.endpoint(t, a.info)
	b.endpoint(t, b.info)
	na, err := a.ep.Name()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.ep.Name()
	if err != nil {
		t.Fatal(err)
	}
	if ab, err = a.av.Insert(nb); err != nil {
		t.Fatal(err)
	}
	if ba, err = b.av.Insert(na); err != nil {
		t.Fatal(err)
	}
	return a, b, ab, ba
}

func TestRDMSendRecv(t *testing.T) {
	a, b, ab, _ := rdmPair(t, os.Getenv("PROV"), CapMsg|CapRMA)
	ctx := testCtx(t)
	buf, _ := Alloc(4096)
	defer buf.Free()
	mr, err := b.dom.RegMR(buf.Bytes(), AccessLocal)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = b.ep.Recv(ctx, buf.Bytes(), mr, AddrUnspec)
		done <- err
	}()
	if err := a.ep.Send(ctx, []byte("hello"), nil, ab); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || string(buf.Bytes()[:n]) != "hello" {
		t.Fatalf("recv %q %v", buf.Bytes()[:n], err)
	}
}
