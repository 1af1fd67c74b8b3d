package verbs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/internal/labtest"
	"github.com/rdmakit/rdmakit/verbs"
)

func TestDevicesHost(t *testing.T) {
	devs, err := verbs.Devices()
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if devs == nil {
		t.Fatal("Devices returned a nil list")
	}
	if _, statErr := os.Stat("/sys/class/infiniband"); statErr != nil && len(devs) != 0 {
		t.Fatalf("no /sys/class/infiniband but Devices = %v", devs)
	}
	if dev := os.Getenv(labtest.EnvDevice); dev != "" && labtest.InLab() {
		if !slices.ContainsFunc(devs, func(d verbs.DeviceInfo) bool { return d.Name == dev }) {
			t.Fatalf("Devices = %v, want %s in it", devs, dev)
		}
	}
	if _, err := verbs.Open("no-such-device0"); !errors.Is(err, verbs.ErrNoDevice) {
		t.Fatalf("Open(no-such-device0) = %v, want ErrNoDevice", err)
	}
	if m := verbs.ForkStatus(); m != verbs.ForkUnneeded && m != verbs.ForkEnabled {
		t.Fatalf("fork status after Devices = %v, want unneeded or enabled", m)
	}
}

func TestDeviceQuery(t *testing.T) {
	c, ip := lab(t)
	a := c.Attr()
	if a.PhysPortCnt < 1 || a.MaxQP <= 0 || a.MaxCQE <= 0 || a.MaxMRSize == 0 || a.NodeGUID == "" {
		t.Fatalf("implausible device attributes %+v", a)
	}
	if a.MaxQPRdAtom <= 0 || a.MaxQPInitRdAtom <= 0 {
		t.Fatalf("rd_atom depths %d/%d", a.MaxQPRdAtom, a.MaxQPInitRdAtom)
	}
	port, err := c.QueryPort(1)
	if err != nil {
		t.Fatal(err)
	}
	if port.State != verbs.PortActive || port.ActiveMTU.Bytes() < 256 || port.GIDTblLen <= 0 {
		t.Fatalf("port 1: %+v", port)
	}
	if _, err := c.QueryPort(a.PhysPortCnt + 1); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("QueryPort past the end: %v", err)
	}
	gids, err := c.GIDs()
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.FindGID(1, verbs.GIDTypeRoCEv2, net.ParseIP(ip))
	if err != nil {
		t.Fatalf("no RoCEv2 GID for %s in %+v: %v", ip, gids, err)
	}
	if g.Netdev == "" || !g.IP().Equal(net.ParseIP(ip)) {
		t.Fatalf("GID %+v", g)
	}
	nds, err := verbs.Netdevs(c.Name())
	if err != nil || !slices.Contains(nds, g.Netdev) {
		t.Fatalf("Netdevs(%s) = %v, %v; want %s", c.Name(), nds, err, g.Netdev)
	}
	if d, err := verbs.DeviceForNetdev(g.Netdev); err != nil || d != c.Name() {
		t.Fatalf("DeviceForNetdev(%s) = %q, %v", g.Netdev, d, err)
	}
	if strings.HasPrefix(c.Name(), "rxe") && (a.ODP() != (a.ODPGeneralCaps&1 != 0 && a.ODPRCCaps&15 == 15)) {
		t.Fatalf("ODP() inconsistent with caps %+v", a)
	}
}

func TestLinkAddDel(t *testing.T) {
	labtest.Device(t)
	if !labtest.InLab() {
		t.Skip("adds a software RDMA device: lab VM only")
	}
	const name = "rxe9"
	if err := verbs.AddLink(name, verbs.LinkRXE, "veth1"); err != nil {
		t.Fatal(err)
	}
	deleted := false
	defer func() {
		if !deleted {
			verbs.DelLink(name)
		}
	}()
	if err := verbs.WaitPortActive(tctx(t, 10*time.Second), name); err != nil {
		t.Fatal(err)
	}
	links, err := verbs.Links()
	if err != nil || !slices.ContainsFunc(links, func(l verbs.Link) bool { return l.Name == name && l.NumPorts == 1 }) {
		t.Fatalf("Links = %+v, %v; want %s", links, err, name)
	}
	if nds, err := verbs.Netdevs(name); err != nil || !slices.Equal(nds, []string{"veth1"}) {
		t.Fatalf("Netdevs(%s) = %v, %v", name, nds, err)
	}
	c, err := verbs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.QueryPort(1); err != nil || p.LinkLayer != "Ethernet" {
		t.Fatalf("port of %s: %+v %v", name, p, err)
	}
	c.Close()
	if err := verbs.AddLink(name, verbs.LinkRXE, "veth1"); err == nil {
		t.Fatal("adding the same link twice succeeded")
	}
	if err := verbs.DelLink(name); err != nil {
		t.Fatal(err)
	}
	deleted = true
	devs, _ := verbs.Devices()
	if slices.ContainsFunc(devs, func(d verbs.DeviceInfo) bool { return d.Name == name }) {
		t.Fatalf("%s still listed after DelLink: %v", name, devs)
	}
	if err := verbs.DelLink(name); err == nil {
		t.Fatal("deleting a missing link succeeded")
	}
	if err := verbs.AddLink("x", "bogus", "veth1"); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("AddLink bogus type: %v", err)
	}
}

func TestRegisterAccess(t *testing.T) {
	c, _ := lab(t)
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	m, err := verbs.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, acc := range []verbs.Access{0, verbs.AccessLocalWrite, verbs.AccessRemoteRead,
		verbs.AccessLocalWrite | verbs.AccessRemoteWrite, verbs.AccessLocalWrite | verbs.AccessRemoteAtomic,
		verbs.AccessAll, verbs.AccessAll | verbs.AccessOnDemand} {
		mr, err := pd.Register(m, acc)
		if err != nil {
			t.Fatalf("Register access %#x: %v", acc, err)
		}
		if mr.Addr() != uint64(m.Addr()) || mr.Len() != 1<<20 || mr.LKey() == 0 || len(mr.Bytes()) != 1<<20 {
			t.Fatalf("MR %#x: addr %#x len %d lkey %#x", acc, mr.Addr(), mr.Len(), mr.LKey())
		}
		if mr.ODP() != (acc&verbs.AccessOnDemand != 0 && c.Attr().ODP()) {
			t.Fatalf("MR ODP %v with device ODP %v", mr.ODP(), c.Attr().ODP())
		}
		if err := mr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := mr.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	// Remote write without local write is refused by the verbs spec.
	if _, err := pd.Register(m, verbs.AccessRemoteWrite); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("remote write without local write: %v", err)
	}
	if _, err := pd.RegisterRange(m, 1<<20-10, 20, verbs.AccessLocalWrite); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("range past the end: %v", err)
	}
	mr, err := pd.RegisterRange(m, 4096, 8192, verbs.AccessLocalWrite)
	if err != nil || mr.Addr() != uint64(m.Addr())+4096 || len(mr.Bytes()) != 8192 {
		t.Fatalf("RegisterRange: %v", err)
	}
}

func TestSendRecv(t *testing.T) {
	p := newPair(t, pairOpts{})
	if p.client.InitiatorDepth() < 1 || p.server.ResponderResources() < 1 ||
		p.client.InitiatorDepth() > p.c.Attr().MaxQPInitRdAtom || p.server.ResponderResources() > p.c.Attr().MaxQPRdAtom {
		t.Fatalf("depths: client init %d, server resp %d", p.client.InitiatorDepth(), p.server.ResponderResources())
	}
	if ra := p.client.RemoteAddr().(*net.TCPAddr); ra.Port != p.server.LocalAddr().(*net.TCPAddr).Port {
		t.Fatalf("client remote %v, server local %v", ra, p.server.LocalAddr())
	}
	const n, sz = 16, 1024
	var recvs []verbs.RecvWR
	for i := range n {
		var r verbs.RecvWR
		r.ID = uint64(100 + i)
		recvs = append(recvs, *r.Local(p.sbuf.mr.SGE(i*sz, sz)))
	}
	if k, err := p.server.QP().PostRecv(recvs); err != nil || k != n {
		t.Fatalf("PostRecv: %d %v", k, err)
	}
	cb := p.cbuf.mr.Bytes()
	var sends []verbs.SendWR
	for i := range n {
		for j := range sz {
			cb[i*sz+j] = byte(i*7 + j)
		}
		var w verbs.SendWR
		w.ID, w.Opcode = uint64(i), verbs.OpSend
		if i == n-1 {
			w.Flags = verbs.Signaled
		}
		w.Local(p.cbuf.mr.SGE(i*sz, sz-i)) // lengths differ: checked below
		sends = append(sends, w)
	}
	if k, err := p.client.QP().PostSend(sends); err != nil || k != n {
		t.Fatalf("PostSend: %d %v", k, err)
	}
	if wc := waitOne(t, p.client.QP().SendCQ(), 10*time.Second); wc.Err() != nil || wc.ID != n-1 || wc.Opcode != verbs.WCSend {
		t.Fatalf("send completion %+v", wc)
	}
	got := 0
	wcs := make([]verbs.WC, 3) // smaller than a batch: the rest is kept for the next call
	for got < n {
		k, err := p.server.QP().RecvCQ().Wait(tctx(t, 10*time.Second), wcs)
		if err != nil {
			t.Fatal(err)
		}
		for _, wc := range wcs[:k] {
			i := int(wc.ID) - 100
			if wc.Err() != nil || wc.Opcode != verbs.WCRecv || i != got || int(wc.ByteLen) != sz-i {
				t.Fatalf("recv completion %d: %+v", got, wc)
			}
			if !bytes.Equal(p.sbuf.mr.Bytes()[i*sz:i*sz+sz-i], cb[i*sz:i*sz+sz-i]) {
				t.Fatalf("message %d differs", i)
			}
			got++
		}
	}
}

func TestSendWithImmAndInline(t *testing.T) {
	p := newPair(t, pairOpts{cap: verbs.QPCap{MaxInline: 64}})
	var r verbs.RecvWR
	r.ID = 7
	r.Local(p.sbuf.mr.SGE(0, 64))
	if _, err := p.server.QP().PostRecv([]verbs.RecvWR{r}); err != nil {
		t.Fatal(err)
	}
	copy(p.cbuf.mr.Bytes(), "inline payload")
	var w verbs.SendWR
	w.ID, w.Opcode, w.Imm, w.Flags = 1, verbs.OpSendWithImm, 0xdeadbeef, verbs.Inline
	w.Local(verbs.SGE{Addr: p.cbuf.mr.Addr(), Length: 14}) // inline: no lkey needed
	if err := post(t, p.client, w); err != nil {
		t.Fatal(err)
	}
	wc := waitOne(t, p.server.QP().RecvCQ(), 10*time.Second)
	if wc.Err() != nil || !wc.HasImm() || wc.Imm != 0xdeadbeef || wc.ByteLen != 14 || wc.ID != 7 {
		t.Fatalf("recv %+v", wc)
	}
	if string(p.sbuf.mr.Bytes()[:14]) != "inline payload" {
		t.Fatalf("got %q", p.sbuf.mr.Bytes()[:14])
	}
	// Inline data must come from live verbs.Memory and fit MaxInline.
	w.SG[0] = verbs.SGE{Addr: 0x1000, Length: 8}
	if _, err := p.client.QP().PostSend([]verbs.SendWR{w}); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("inline from a wild address: %v", err)
	}
	w.SG[0] = verbs.SGE{Addr: p.cbuf.mr.Addr(), Length: 4096}
	if _, err := p.client.QP().PostSend([]verbs.SendWR{w}); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("inline beyond MaxInline: %v", err)
	}
}

func TestRDMAWriteRead(t *testing.T) {
	p := newPair(t, pairOpts{size: 1 << 20})
	sb, cb := p.sbuf.mr.Bytes(), p.cbuf.mr.Bytes()
	for i := range cb {
		cb[i] = byte(i * 13)
	}
	remote := func(w *verbs.SendWR, off int) {
		w.RemoteAddr, w.RKey = p.sbuf.mr.Addr()+uint64(off), p.sbuf.mr.RKey()
	}
	var w verbs.SendWR
	w.ID, w.Opcode = 1, verbs.OpWrite
	w.Local(p.cbuf.mr.SGE(0, 512<<10))
	remote(&w, 4096)
	if err := post(t, p.client, w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sb[4096:4096+512<<10], cb[:512<<10]) {
		t.Fatal("RDMA write: data differs")
	}
	// Write with immediate consumes a receive and reports the immediate.
	var r verbs.RecvWR
	r.ID = 9
	if _, err := p.server.QP().PostRecv([]verbs.RecvWR{r}); err != nil {
		t.Fatal(err)
	}
	w = verbs.SendWR{ID: 2, Opcode: verbs.OpWriteWithImm, Imm: 42}
	w.Local(p.cbuf.mr.SGE(100, 100))
	remote(&w, 0)
	if err := post(t, p.client, w); err != nil {
		t.Fatal(err)
	}
	wc := waitOne(t, p.server.QP().RecvCQ(), 10*time.Second)
	if wc.Err() != nil || wc.Opcode != verbs.WCRecvWriteImm || wc.Imm != 42 || wc.ID != 9 || wc.ByteLen != 100 {
		t.Fatalf("write-with-imm completion %+v", wc)
	}
	if !bytes.Equal(sb[:100], cb[100:200]) {
		t.Fatal("write-with-imm: data differs")
	}
	// Read back into another part of the client buffer.
	for i := range 1 << 16 {
		sb[600<<10+i] = byte(i ^ 0x5a)
	}
	w = verbs.SendWR{ID: 3, Opcode: verbs.OpRead}
	w.Local(p.cbuf.mr.SGE(900<<10, 1<<16))
	remote(&w, 600<<10)
	if err := post(t, p.client, w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cb[900<<10:900<<10+1<<16], sb[600<<10:600<<10+1<<16]) {
		t.Fatal("RDMA read: data differs")
	}
}

func TestAtomics(t *testing.T) {
	p := newPair(t, pairOpts{})
	if p.c.Attr().AtomicCap == 0 {
		t.Fatalf("%s reports no atomics", p.c.Name())
	}
	sb := p.sbuf.mr.Bytes()
	const workers, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex // one poster/poller at a time on the shared CQ
	errs := make(chan error, workers)
	seen := make(map[uint64]bool)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				slot := 8 * (1 + g)
				w := verbs.SendWR{ID: uint64(g*1000 + i), Opcode: verbs.OpFetchAdd, CompareAdd: 3, Flags: verbs.Signaled}
				w.Local(p.cbuf.mr.SGE(slot, 8))
				w.RemoteAddr, w.RKey = p.sbuf.mr.Addr(), p.sbuf.mr.RKey()
				mu.Lock()
				_, err := p.client.QP().PostSend([]verbs.SendWR{w})
				var wc [1]verbs.WC
				if err == nil {
					_, err = p.client.QP().SendCQ().Wait(tctx(t, 10*time.Second), wc[:])
				}
				if err == nil {
					err = wc[0].Err()
				}
				old := binary.LittleEndian.Uint64(p.cbuf.mr.Bytes()[slot:])
				if err == nil && seen[old] {
					err = errors.New("fetch-add returned a value twice")
				}
				seen[old] = true
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(sb); got != 3*workers*each {
		t.Fatalf("sum %d, want %d", got, 3*workers*each)
	}
	// Compare-and-swap chain: each CAS succeeds only if the previous one did.
	binary.LittleEndian.PutUint64(sb[64:], 0)
	for i := uint64(0); i < 10; i++ {
		w := verbs.SendWR{ID: 500 + i, Opcode: verbs.OpCompareSwap, CompareAdd: i, Swap: i + 1}
		w.Local(p.cbuf.mr.SGE(256, 8))
		w.RemoteAddr, w.RKey = p.sbuf.mr.Addr()+64, p.sbuf.mr.RKey()
		if err := post(t, p.client, w); err != nil {
			t.Fatal(err)
		}
		if old := binary.LittleEndian.Uint64(p.cbuf.mr.Bytes()[256:]); old != i {
			t.Fatalf("CAS %d returned %d", i, old)
		}
	}
	// A CAS with a stale compare value leaves memory unchanged and returns the current value.
	w := verbs.SendWR{ID: 600, Opcode: verbs.OpCompareSwap, CompareAdd: 3, Swap: 99}
	w.Local(p.cbuf.mr.SGE(256, 8))
	w.RemoteAddr, w.RKey = p.sbuf.mr.Addr()+64, p.sbuf.mr.RKey()
	if err := post(t, p.client, w); err != nil {
		t.Fatal(err)
	}
	if old, cur := binary.LittleEndian.Uint64(p.cbuf.mr.Bytes()[256:]), binary.LittleEndian.Uint64(sb[64:]); old != 10 || cur != 10 {
		t.Fatalf("stale CAS: returned %d, memory %d; want 10, 10", old, cur)
	}
	// Unaligned atomics are refused before they reach the device.
	w.RemoteAddr++
	if _, err := p.client.QP().PostSend([]verbs.SendWR{w}); !errors.Is(err, verbs.ErrInvalid) || !strings.Contains(err.Error(), "aligned") {
		t.Fatalf("unaligned atomic: %v", err)
	}
}

func TestRemoteAccessErrors(t *testing.T) {
	cases := []struct {
		name   string
		access verbs.Access
		mod    func(p *pair, w *verbs.SendWR)
	}{
		{"out of bounds", verbs.AccessAll, func(p *pair, w *verbs.SendWR) { w.RemoteAddr += p.sbuf.mr.Len() - 16 }},
		{"wrong rkey", verbs.AccessAll, func(p *pair, w *verbs.SendWR) { w.RKey ^= 0x5a5a00 }},
		{"write to read-only", verbs.AccessLocalWrite | verbs.AccessRemoteRead, func(p *pair, w *verbs.SendWR) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, pairOpts{size: 4096, access: tc.access})
			w := verbs.SendWR{ID: 1, Opcode: verbs.OpWrite, RemoteAddr: p.sbuf.mr.Addr(), RKey: p.sbuf.mr.RKey()}
			w.Local(p.cbuf.mr.SGE(0, 64))
			tc.mod(p, &w)
			err := post(t, p.client, w)
			mustIs(t, err, verbs.ErrRemoteAccess)
			var wce *verbs.WCError
			if !errors.As(err, &wce) || wce.Status != verbs.WCRemoteAccessErr || !strings.Contains(err.Error(), "remote access error") {
				t.Fatalf("error %v: want a WCError with ibv_wc_status_str text", err)
			}
			// The QP is now in ERR: later work requests flush.
			w.ID = 2
			mustIs(t, post(t, p.client, w), verbs.ErrFlushed)
		})
	}
}

func TestFlushOnError(t *testing.T) {
	p := newPair(t, pairOpts{})
	qp := p.server.QP()
	var recvs []verbs.RecvWR
	for i := range 5 {
		var r verbs.RecvWR
		r.ID = uint64(i)
		recvs = append(recvs, *r.Local(p.sbuf.mr.SGE(i*64, 64)))
	}
	if _, err := qp.PostRecv(recvs); err != nil {
		t.Fatal(err)
	}
	if err := qp.ToError(); err != nil {
		t.Fatal(err)
	}
	if s, err := qp.State(); err != nil || s != verbs.QPStateErr {
		t.Fatalf("state %v %v", s, err)
	}
	var ids []uint64
	wcs := make([]verbs.WC, 8)
	for len(ids) < 5 {
		n, err := qp.RecvCQ().Wait(tctx(t, 10*time.Second), wcs)
		if err != nil {
			t.Fatal(err)
		}
		for _, wc := range wcs[:n] {
			mustIs(t, wc.Err(), verbs.ErrFlushed)
			ids = append(ids, wc.ID)
		}
	}
	if !slices.Equal(ids, []uint64{0, 1, 2, 3, 4}) {
		t.Fatalf("flushed ids %v", ids)
	}
}

func TestPeerDisconnect(t *testing.T) {
	p := newPair(t, pairOpts{})
	var r verbs.RecvWR
	r.ID = 77
	r.Local(p.cbuf.mr.SGE(0, 64))
	if _, err := p.client.QP().PostRecv([]verbs.RecvWR{r}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		var wc [1]verbs.WC
		_, err := p.client.QP().RecvCQ().Wait(tctx(t, 20*time.Second), wc[:])
		if err == nil {
			err = wc[0].Err()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter park
	if err := p.server.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		mustIs(t, err, verbs.ErrFlushed)
	case <-time.After(15 * time.Second):
		t.Fatal("waiter still blocked 15 s after the peer disconnected")
	}
	select {
	case <-p.client.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client Done not closed")
	}
	var w verbs.SendWR
	w.ID, w.Opcode = 5, verbs.OpSend
	w.Local(p.cbuf.mr.SGE(0, 8))
	mustIs(t, post(t, p.client, w), verbs.ErrFlushed)
}

func TestCQOverrun(t *testing.T) {
	p := newPair(t, pairOpts{cqSize: 1, cap: verbs.QPCap{MaxSendWR: 16, MaxRecvWR: 4}})
	cq := p.client.QP().SendCQ()
	var wrs []verbs.SendWR
	for i := range 3 * (cq.Len() + 1) {
		w := verbs.SendWR{ID: uint64(i), Opcode: verbs.OpWrite, Flags: verbs.Signaled,
			RemoteAddr: p.sbuf.mr.Addr(), RKey: p.sbuf.mr.RKey()}
		wrs = append(wrs, *w.Local(p.cbuf.mr.SGE(0, 8)))
	}
	if _, err := p.client.QP().PostSend(wrs); err != nil {
		t.Fatal(err)
	}
	ctx := tctx(t, 15*time.Second)
	wcs := make([]verbs.WC, 1)
	for polled := 0; ; {
		_, err := cq.Wait(ctx, wcs)
		if err != nil {
			mustIs(t, err, verbs.ErrCQOverrun)
			break
		}
		if polled++; polled > len(wrs) {
			t.Fatal("no overrun reported")
		}
		time.Sleep(100 * time.Millisecond) // keep the CQ full
	}
}

func TestWaitContext(t *testing.T) {
	c, _ := lab(t)
	cq, err := c.CreateCQ(16, nil)
	if err != nil {
		t.Fatal(err)
	}
	wcs := make([]verbs.WC, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = cq.Wait(ctx, wcs)
	mustIs(t, err, verbs.ErrTimeout)
	mustIs(t, err, context.DeadlineExceeded)
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel2)
	_, err = cq.Wait(ctx2, wcs)
	mustIs(t, err, verbs.ErrCanceled)
	mustIs(t, err, context.Canceled)
	// Close wakes a blocked waiter.
	errc := make(chan error, 1)
	go func() {
		_, err := cq.Wait(context.Background(), wcs)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := cq.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		mustIs(t, err, verbs.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait not woken by Close")
	}
	busy, err := c.CreateCQ(4, &verbs.CQOptions{BusyPoll: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = busy.Wait(tctx(t, 20*time.Millisecond), wcs)
	mustIs(t, err, verbs.ErrTimeout)
}

func TestReject(t *testing.T) {
	c, ip := lab(t)
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := verbs.Listen(net.JoinHostPort(ip, "0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := tctx(t, 10*time.Second)
	go func() {
		if req, err := ln.Accept(ctx); err == nil {
			req.Reject([]byte("go away"))
		}
	}()
	_, err = verbs.Dial(ctx, ln.Addr().String(), verbs.ConnConfig{PD: pd, PrivateData: []byte("hi")})
	var rej *verbs.RejectError
	if !errors.As(err, &rej) || !errors.Is(err, verbs.ErrRejected) || !bytes.HasPrefix(rej.PrivateData, []byte("go away")) {
		t.Fatalf("Dial to a rejecting listener: %v", err)
	}
	// Nobody listens on this port.
	_, err = verbs.Dial(ctx, net.JoinHostPort(ip, "1"), verbs.ConnConfig{PD: pd})
	if err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if _, err := verbs.Dial(ctx, ln.Addr().String(), verbs.ConnConfig{PD: pd, PrivateData: make([]byte, 57)}); !errors.Is(err, verbs.ErrInvalid) {
		t.Fatalf("oversized private data: %v", err)
	}
}

func TestUseAfterClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	qp, cq, mr := p.client.QP(), p.client.QP().SendCQ(), p.cbuf.mr
	if err := p.c.Close(); err != nil {
		t.Fatalf("Context.Close: %v", err)
	}
	if err := p.c.Close(); err != nil {
		t.Fatalf("second Context.Close: %v", err)
	}
	var w verbs.SendWR
	w.Opcode = verbs.OpSend
	if _, err := qp.PostSend([]verbs.SendWR{w}); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("PostSend after Close: %v", err)
	}
	if _, err := qp.PostRecv([]verbs.RecvWR{{}}); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("PostRecv after Close: %v", err)
	}
	if _, err := cq.Poll(make([]verbs.WC, 1)); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
	if _, err := cq.Wait(context.Background(), make([]verbs.WC, 1)); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	if _, err := p.pd.Register(p.cbuf.mem, verbs.AccessLocalWrite); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
	if _, err := p.c.AllocPD(); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("AllocPD after Close: %v", err)
	}
	if _, err := qp.State(); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("State after Close: %v", err)
	}
	if err := mr.Close(); err != nil || p.client.Close() != nil || p.server.Close() != nil {
		t.Fatal("Close after Context.Close must be a no-op")
	}
	if err := p.client.Disconnect(); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Disconnect after Close: %v", err)
	}
}

func TestCloseOrder(t *testing.T) {
	c, _ := lab(t)
	pd, _ := c.AllocPD()
	cq, err := c.CreateCQ(8, nil)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := pd.CreateQP(verbs.QPConfig{SendCQ: cq})
	if err != nil {
		t.Fatal(err)
	}
	if err := cq.Close(); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("closing a CQ in use: %v", err)
	}
	if err := pd.Close(); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("closing a PD in use: %v", err)
	}
	if err := qp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cq.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pd.Close(); err != nil {
		t.Fatal(err)
	}
}
