package ofi

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	peer Addr   // the other side (RDM), AddrUnspec for MSG
	cqa  CQAttr // the queue's attributes (Size 256 if zero)
	// bufs are the side's registered buffers (reg), unmapped once its fabric is closed: a
	// provider with threads of its own (sockets) may still write into one until then.
	bufs []*Buffer
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rdmProviders are the RDM providers the tests run on (those libfabric offers here).
var rdmProviders = []string{"tcp;ofi_rxm", "sockets", "shm"}

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
	s := &side{info: infos[0], peer: AddrUnspec}
	if s.fab, err = OpenFabric(s.info); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.fab.Close()
		for _, b := range s.bufs {
			b.Free()
		}
	})
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
	if s.cqa.Size == 0 {
		s.cqa.Size = 256
	}
	if s.cq, err = s.dom.OpenCQ(s.cqa); err != nil {
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

// rdmPair makes two RDM endpoints that know each other.
func rdmPair(t testing.TB, prov string, caps Caps) (a, b *side) {
	t.Helper()
	return rdmPairCQ(t, prov, caps, CQAttr{})
}

// rdmPairCQ is rdmPair with a's queue opened with attr.
func rdmPairCQ(t testing.TB, prov string, caps Caps, attr CQAttr) (a, b *side) {
	t.Helper()
	node := "127.0.0.1"
	if prov == "shm" {
		node = ""
	}
	h := hintsFor(prov, EPRDM, caps)
	a, b = openSide(t, node, "", h), openSide(t, node, "", h)
	a.cqa = attr
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
	if a.peer, err = a.av.Insert(nb); err != nil {
		t.Fatal(err)
	}
	if b.peer, err = b.av.Insert(na); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// msgPair connects two MSG endpoints through a passive endpoint with private data both ways.
func msgPair(t testing.TB, prov string, caps Caps) (cli, srv *side) {
	t.Helper()
	ctx := testCtx(t)
	h := hintsFor(prov, EPMsg, caps)
	srv = openSide(t, "127.0.0.1", "", h)
	pep, err := srv.fab.NewPassiveEndpoint(srv.info)
	if err != nil {
		t.Fatal(err)
	}
	peq, err := srv.fab.OpenEQ(8)
	if err != nil {
		t.Fatal(err)
	}
	if err = pep.BindEQ(peq); err != nil {
		t.Fatal(err)
	}
	if err = pep.Listen(); err != nil {
		t.Fatal(err)
	}
	name, err := pep.Name()
	if err != nil {
		t.Fatal(err)
	}
	port := int(name[2])<<8 | int(name[3])
	infos, err := GetInfo("127.0.0.1", itoa(port), false, h)
	if err != nil {
		t.Fatal(err)
	}
	cli = openSide(t, "127.0.0.1", "", h)
	cli.endpoint(t, infos[0])
	if err = cli.ep.Connect(nil, []byte("hello-from-client")); err != nil {
		t.Fatal(err)
	}
	// tcp moves a connect forward only while the connecting side reads its EQ
	cliEv := make(chan *Event, 1)
	go func() {
		for {
			ev, err := cli.eq.Read(ctx)
			if err != nil || ev.Kind == EventConnected || ev.Err != nil {
				cliEv <- ev
				return
			}
		}
	}()
	ev, err := peq.Read(ctx)
	if err != nil || ev.Kind != EventConnReq {
		t.Fatalf("connreq: %+v %v", ev, err)
	}
	if string(ev.Data[:len("hello-from-client")]) != "hello-from-client" {
		t.Fatalf("connreq private data %q", ev.Data)
	}
	srv.endpoint(t, ev.Info)
	if err = srv.ep.Accept([]byte("welcome")); err != nil {
		t.Fatal(err)
	}
	if ev, err := srv.eq.Read(ctx); err != nil || ev.Kind != EventConnected || !ev.For(srv.ep) {
		t.Fatalf("server connected: %+v %v", ev, err)
	}
	ev = <-cliEv
	if ev == nil || ev.Kind != EventConnected || !ev.For(cli.ep) {
		t.Fatalf("client connected: %+v", ev)
	}
	if len(ev.Data) < 7 || string(ev.Data[:7]) != "welcome" {
		t.Fatalf("accept private data %q", ev.Data)
	}
	return cli, srv
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// reg allocates and registers n bytes on s; both live until s's fabric closes.
func (s *side) reg(t testing.TB, n int, acc Access) *MR {
	t.Helper()
	buf, err := Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	s.bufs = append(s.bufs, buf)
	mr, err := s.dom.RegMR(buf.Bytes(), acc)
	if err != nil {
		t.Fatal(err)
	}
	return mr // closed with the fabric
}

// testPipe makes a non-blocking pipe, closed when the test ends: a stand-in for a wait fd.
func testPipe(t testing.TB) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(p[0])
		unix.Close(p[1])
	})
	return p[0], p[1]
}

// sendRecv passes an 8-byte message from one side to the other: to posts a receive into toBuf,
// from sends from fromBuf, and to waits for the receive.
func sendRecv(t testing.TB, ctx context.Context, from, to *side, fromBuf, toBuf *MR) {
	t.Helper()
	r := Op{Kind: OpRecv, Buf: toBuf.Bytes()[:64], MR: toBuf, Peer: AddrUnspec}
	tk, err := to.ep.Post(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	if err := from.ep.Send(ctx, fromBuf.Bytes()[:8], fromBuf, from.peer); err != nil {
		t.Fatal(err)
	}
	if err := to.ep.Wait(ctx, &r, tk); err != nil || r.Len != 8 {
		t.Fatalf("receive: %d bytes, %v", r.Len, err)
	}
}
