package ofi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// pairs returns a connected pair for every provider and endpoint type offered here.
func pairs(t *testing.T, caps Caps) map[string][2]*side {
	out := map[string][2]*side{}
	for _, p := range rdmProviders {
		if _, err := GetInfo("", "", false, hintsFor(p, EPRDM, caps)); err != nil {
			t.Logf("%s RDM lacks %v: %v", p, caps, err)
			continue
		}
		a, b := rdmPair(t, p, caps)
		out[p+"/rdm"] = [2]*side{a, b}
	}
	for _, p := range []string{"tcp", "sockets"} {
		if _, err := GetInfo("", "", false, hintsFor(p, EPMsg, caps)); err != nil {
			t.Logf("%s MSG lacks %v: %v", p, caps, err)
			continue
		}
		a, b := msgPair(t, p, caps)
		out[p+"/msg"] = [2]*side{a, b}
	}
	if len(out) == 0 {
		t.Fatalf("no provider offers %v", caps)
	}
	return out
}

// shmIgnoresMask reports whether info is libfabric 1.17's shm, which matches a tagged message
// that arrived before any receive for it (an unexpected message) against a later receive
// without the receive's ignore bits: it compares the tags under a stale mask instead.
func shmIgnoresMask(info *Info) bool {
	return info.Provider() == "shm" && Version() == "1.17"
}

func TestSendRecvTaggedInject(t *testing.T) {
	for name, p := range pairs(t, CapMsg|CapTagged) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := p[0], p[1]
			src := a.reg(t, 8192, AccessLocal)
			dst := b.reg(t, 8192, AccessLocal)
			copy(src.Bytes(), "message-one")
			// a receive posted first, then the send
			op := Op{Kind: OpRecv, Buf: dst.Bytes()[:4096], MR: dst, Peer: AddrUnspec}
			tk, err := b.ep.Post(ctx, &op)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.ep.Send(ctx, src.Bytes()[:11], src, a.peer); err != nil {
				t.Fatal(err)
			}
			if err := b.ep.Wait(ctx, &op, tk); err != nil || op.Len != 11 || string(dst.Bytes()[:11]) != "message-one" {
				t.Fatalf("recv: len %d %q %v", op.Len, dst.Bytes()[:11], err)
			}
			// tagged: the receive for tag 7 must not take the message tagged 9
			r9 := Op{Kind: OpTRecv, Buf: dst.Bytes()[4096:], MR: dst, Peer: AddrUnspec, Tag: 9}
			t9, err := b.ep.Post(ctx, &r9)
			if err != nil {
				t.Fatal(err)
			}
			copy(src.Bytes()[100:], "seven")
			r5 := Op{Kind: OpTRecv, Buf: dst.Bytes()[:64], MR: dst, Peer: AddrUnspec, Tag: 0x5, Ignore: 0x2} // matches 7
			var t5 Ticket
			if shmIgnoresMask(a.info) { // ignore bits apply only to a receive posted first
				if t5, err = b.ep.Post(ctx, &r5); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.ep.TSend(ctx, src.Bytes()[100:105], src, a.peer, 7); err != nil {
				t.Fatal(err)
			}
			if shmIgnoresMask(a.info) {
				err = b.ep.Wait(ctx, &r5, t5)
			} else {
				r5.Len, r5.RecvTag, err = b.ep.TRecv(ctx, r5.Buf, dst, AddrUnspec, r5.Tag, r5.Ignore)
			}
			if err != nil || r5.Len != 5 || r5.RecvTag != 7 || string(dst.Bytes()[:5]) != "seven" {
				t.Fatalf("trecv: %d %d %q %v", r5.Len, r5.RecvTag, dst.Bytes()[:5], err)
			}
			if b.ep.Ready(&r9, t9) {
				t.Fatalf("receive for tag 9 completed without a tag-9 message")
			}
			copy(src.Bytes()[200:], "nine!")
			if err := a.ep.TSend(ctx, src.Bytes()[200:205], src, a.peer, 9); err != nil {
				t.Fatal(err)
			}
			if err := b.ep.Wait(ctx, &r9, t9); err != nil || r9.RecvTag != 9 || string(dst.Bytes()[4096:4101]) != "nine!" {
				t.Fatalf("trecv 9: %v %q", err, dst.Bytes()[4096:4101])
			}
			// a tagged message that arrives before its receive waits for it
			copy(src.Bytes()[300:], "late")
			if err := a.ep.TSend(ctx, src.Bytes()[300:304], src, a.peer, 11); err != nil {
				t.Fatal(err)
			}
			if n, tag, err := b.ep.TRecv(ctx, dst.Bytes()[:64], dst, AddrUnspec, 11, 0); err != nil || n != 4 || tag != 11 || string(dst.Bytes()[:4]) != "late" {
				t.Fatalf("trecv 11: %d %d %q %v", n, tag, dst.Bytes()[:4], err)
			}
			// inject: copied at once, the source may change right after
			msg := []byte("injected")
			if err := a.ep.Inject(msg, a.peer); err != nil {
				t.Fatal(err)
			}
			copy(msg, "XXXXXXXX")
			if n, err := b.ep.Recv(ctx, dst.Bytes()[:64], dst, AddrUnspec); err != nil || string(dst.Bytes()[:n]) != "injected" {
				t.Fatalf("recv inject: %q %v", dst.Bytes()[:n], err)
			}
			big := make([]byte, a.info.InjectSize()+1)
			if err := a.ep.Inject(big, a.peer); !errors.Is(err, ErrTooBig) {
				t.Fatalf("oversized inject: %v", err)
			}
		})
	}
}

func TestRMA(t *testing.T) {
	for name, p := range pairs(t, CapMsg|CapRMA) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := p[0], p[1]
			loc := a.reg(t, 1<<20, AccessLocal)
			rem := b.reg(t, 1<<20, AccessLocal|AccessRemote)
			r := rem.Region()
			for i := range loc.Bytes() {
				loc.Bytes()[i] = byte(i * 7)
			}
			ops := []Op{{Kind: OpWrite, Buf: loc.Bytes()[:65536], MR: loc, Peer: a.peer, RemoteAddr: r.Addr + 4096, Key: r.Key, Flags: DeliveryComplete}}
			if err := a.ep.Do(ctx, ops); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rem.Bytes()[4096:4096+65536], loc.Bytes()[:65536]) {
				t.Fatal("write: data differs")
			}
			clear(loc.Bytes()[:8192])
			if err := a.ep.Read(ctx, loc.Bytes()[:8192], loc, a.peer, r.Addr+4096, r.Key); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(loc.Bytes()[:8192], rem.Bytes()[4096:4096+8192]) {
				t.Fatal("read: data differs")
			}
			// vectored: three local pieces into one remote range and back
			segs := []Seg{{loc.Bytes()[0:100], loc}, {loc.Bytes()[5000:5100], loc}, {loc.Bytes()[9000:9056], loc}}
			if err := a.ep.WriteV(ctx, segs, a.peer, r.Addr+500000, r.Key, 0, false, DeliveryComplete); err != nil {
				t.Fatal(err)
			}
			want := append(append(append([]byte{}, segs[0].Buf...), segs[1].Buf...), segs[2].Buf...)
			if !bytes.Equal(rem.Bytes()[500000:500000+len(want)], want) {
				t.Fatal("writev: data differs")
			}
			back := []Seg{{loc.Bytes()[700000:700128], loc}, {loc.Bytes()[800000:800128], loc}}
			if err := a.ep.ReadV(ctx, back, a.peer, r.Addr+500000, r.Key); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(append([]byte{}, back[0].Buf...), back[1].Buf...), rem.Bytes()[500000:500256]) {
				t.Fatal("readv: data differs")
			}
			// a local buffer outside its region is refused before anything is posted
			other := a.reg(t, 4096, AccessLocal)
			if err := a.ep.Write(ctx, other.Bytes(), loc, a.peer, r.Addr, r.Key); !errors.Is(err, ErrInvalid) {
				t.Fatalf("buffer outside MR: %v", err)
			}
		})
	}
}

func TestWriteData(t *testing.T) {
	for name, p := range pairs(t, CapMsg|CapRMA) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := p[0], p[1]
			if a.info.CQDataSize() == 0 {
				t.Skipf("%s carries no remote CQ data", a.info.Provider())
			}
			loc := a.reg(t, 4096, AccessLocal)
			rem := b.reg(t, 4096, AccessLocal|AccessRemote)
			r := rem.Region()
			copy(loc.Bytes(), "with-data")
			if err := a.ep.WriteData(ctx, loc.Bytes()[:9], loc, a.peer, r.Addr, r.Key, 0xfeed); err != nil {
				t.Fatal(err)
			}
			v, err := b.cq.RemoteData(ctx)
			if err != nil || v != 0xfeed {
				t.Fatalf("remote data %#x %v", v, err)
			}
			if string(rem.Bytes()[:9]) != "with-data" {
				t.Fatalf("written %q", rem.Bytes()[:9])
			}
		})
	}
}

func TestAtomics(t *testing.T) {
	type cas struct {
		kind           OpKind
		op             AtomicOp
		start, operand uint64
		compare        uint64
		want           uint64
		fetch          bool
	}
	cases := []cas{
		{OpAtomic, OpSum, 40, 2, 0, 42, false},
		{OpAtomic, OpMin, 40, 2, 0, 2, false},
		{OpAtomic, OpMax, 40, 99, 0, 99, false},
		{OpAtomic, OpBor, 0xf0, 0x0f, 0, 0xff, false},
		{OpAtomic, OpBand, 0xf0, 0x3c, 0, 0x30, false},
		{OpAtomic, OpBxor, 0xff, 0x0f, 0, 0xf0, false},
		{OpAtomic, OpAtomicWrite, 1, 5, 0, 5, false},
		{OpFetchAtomic, OpSum, 10, 5, 0, 15, true},
		{OpFetchAtomic, OpAtomicRead, 77, 0, 0, 77, true},
		{OpFetchAtomic, OpBor, 1, 2, 0, 3, true},
		{OpFetchAtomic, OpBand, 3, 2, 0, 2, true},
		{OpFetchAtomic, OpBxor, 3, 1, 0, 2, true},
		{OpCompareAtomic, OpCswap, 5, 9, 5, 9, true},
		{OpCompareAtomic, OpCswap, 5, 9, 6, 5, true},
		{OpCompareAtomic, OpMswap, 0xff00, 0x1234, 0x00ff, 0xff34, true},
	}
	for name, p := range pairs(t, CapMsg|CapRMA|CapAtomic) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := p[0], p[1]
			rem := b.reg(t, 4096, AccessLocal|AccessRemote)
			r := rem.Region()
			for _, dt := range []Datatype{Uint32, Uint64, Int64} {
				size := dt.Size()
				get := func() uint64 { return getWord(rem.Bytes()[64:64+size], dt) }
				for _, c := range cases {
					if err := a.dom.QueryAtomic(c.kind, c.op, dt); err != nil {
						if !errors.Is(err, ErrNotSupported) {
							t.Fatalf("query %s %s %s: %v", c.kind, c.op, dt, err)
						}
						ops := []Op{{Kind: c.kind, AtomicOp: c.op, Datatype: dt, Peer: a.peer, RemoteAddr: r.Addr + 64, Key: r.Key}}
						if err := a.ep.Do(ctx, ops); !errors.Is(err, ErrNotSupported) {
							t.Errorf("%s %s %s unsupported but Do says %v", c.kind, c.op, dt, err)
						}
						continue
					}
					putWord(rem.Bytes()[64:64+size], dt, c.start)
					ops := []Op{{Kind: c.kind, AtomicOp: c.op, Datatype: dt, Peer: a.peer, RemoteAddr: r.Addr + 64,
						Key: r.Key, Operand: c.operand, Compare: c.compare}}
					if err := a.ep.Do(ctx, ops); err != nil {
						t.Fatalf("%s %s %s: %v", c.kind, c.op, dt, err)
					}
					if c.kind == OpAtomic { // no result: read it back atomically to see it landed
						v, err := a.ep.FetchAtomic(ctx, OpAtomicRead, dt, a.peer, r.Addr+64, r.Key, 0)
						if err != nil || v != c.want {
							t.Fatalf("%s %s: read back %#x %v, want %#x", c.op, dt, v, err, c.want)
						}
					}
					if get() != c.want || c.fetch && ops[0].Result != c.start {
						t.Errorf("%s %s %s on %#x: word %#x result %#x; want %#x / %#x", c.kind, c.op, dt,
							c.start, get(), ops[0].Result, c.want, c.start)
					}
				}
			}
			// misaligned and mismatched ops are refused before posting
			bad := []Op{
				{Kind: OpFetchAtomic, AtomicOp: OpSum, Datatype: Uint64, Peer: a.peer, RemoteAddr: r.Addr + 4, Key: r.Key},
				{Kind: OpAtomic, AtomicOp: OpCswap, Datatype: Uint64, Peer: a.peer, RemoteAddr: r.Addr, Key: r.Key},
				{Kind: OpAtomic, AtomicOp: OpAtomicRead, Datatype: Uint64, Peer: a.peer, RemoteAddr: r.Addr, Key: r.Key},
				{Kind: OpFetchAtomic, AtomicOp: OpSum, Datatype: 99, Peer: a.peer, RemoteAddr: r.Addr, Key: r.Key},
			}
			for i := range bad {
				if err := a.ep.Do(ctx, bad[i:i+1]); !errors.Is(err, ErrInvalid) {
					t.Errorf("bad op %d: %v, want ErrInvalid", i, err)
				}
			}
		})
	}
}

func TestCompletionErrors(t *testing.T) {
	a, b := rdmPair(t, "sockets", CapMsg|CapRMA)
	ctx := testCtx(t)
	loc := a.reg(t, 4096, AccessLocal)
	rem := b.reg(t, 4096, AccessLocal|AccessRemoteRead)
	r := rem.Region()
	// provider protection: wrong key and a write to a read-only region
	err := a.ep.Read(ctx, loc.Bytes()[:64], loc, a.peer, r.Addr, r.Key+1)
	var fe *Error
	if !errors.Is(err, ErrAccess) || !errors.As(err, &fe) || fe.Errno == 0 {
		t.Fatalf("wrong key: %v", err)
	}
	if err := a.ep.Write(ctx, loc.Bytes()[:64], loc, a.peer, r.Addr, r.Key); !errors.Is(err, ErrAccess) {
		t.Fatalf("write to read-only: %v", err)
	}
	// truncation: a message longer than the posted buffer
	small := b.reg(t, 4096, AccessLocal)
	op := Op{Kind: OpRecv, Buf: small.Bytes()[:4], MR: small, Peer: AddrUnspec}
	tk, err := b.ep.Post(ctx, &op)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ep.Send(ctx, loc.Bytes()[:64], loc, a.peer); err != nil {
		t.Fatal(err)
	}
	if err := b.ep.Wait(ctx, &op, tk); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated recv: %v", err)
	}
	// a posted receive with a deadline: Wait gives up, the op stays posted
	op2 := Op{Kind: OpRecv, Buf: small.Bytes()[:64], MR: small, Peer: AddrUnspec}
	tk2, err := b.ep.Post(ctx, &op2)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.ep.Wait(short, &op2, tk2); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with deadline: %v", err)
	}
	copy(loc.Bytes(), "late")
	if err := a.ep.Send(ctx, loc.Bytes()[:4], loc, a.peer); err != nil {
		t.Fatal(err)
	}
	if err := b.ep.Wait(ctx, &op2, tk2); err != nil || string(small.Bytes()[:4]) != "late" {
		t.Fatalf("wait again: %v %q", err, small.Bytes()[:4])
	}
}

func TestCounter(t *testing.T) {
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapRMA)
	ctx := testCtx(t)
	// a fresh endpoint on a with a counter for writes
	cntr, err := a.dom.OpenCntr()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := a.dom.NewEndpoint(a.info)
	if err != nil {
		t.Fatal(err)
	}
	cq, _ := a.dom.OpenCQ(CQAttr{})
	av, _ := a.dom.OpenAV(AVTable, 4)
	if err := errors.Join(ep.BindCQ(cq, BindTransmit|BindRecv), ep.BindAV(av), ep.BindCntr(cntr, AccessWrite), ep.Enable()); err != nil {
		t.Fatal(err)
	}
	nb, _ := b.ep.Name()
	peer, err := av.Insert(nb)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := av.Lookup(peer); err != nil || !bytes.Equal(got, nb) {
		t.Fatalf("lookup %x %v, want %x", got, err, nb)
	}
	if s := av.String(nb); s == "" {
		t.Error("empty straddr")
	}
	loc := a.reg(t, 4096, AccessLocal)
	rem := b.reg(t, 4096, AccessLocal|AccessRemote)
	r := rem.Region()
	ops := make([]Op, 10)
	for i := range ops {
		ops[i] = Op{Kind: OpWrite, Buf: loc.Bytes()[:8], MR: loc, Peer: peer, RemoteAddr: r.Addr + uint64(8*i), Key: r.Key}
	}
	if err := ep.Do(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := cntr.Wait(ctx, 10); err != nil || cntr.Read() != 10 || cntr.ReadErr() != 0 {
		t.Fatalf("counter %d/%d %v", cntr.Read(), cntr.ReadErr(), err)
	}
	if err := cntr.Add(5); err != nil || cntr.Read() != 15 {
		t.Fatalf("add: %d %v", cntr.Read(), err)
	}
	if err := av.Remove(peer); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownEvent(t *testing.T) {
	cli, srv := msgPair(t, "tcp", CapMsg|CapRMA)
	ctx := testCtx(t)
	if err := cli.ep.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := srv.eq.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for shutdown: %v", err)
		}
		if ev.Kind == EventShutdown && ev.For(srv.ep) {
			return
		}
	}
}

func TestCloseOrder(t *testing.T) {
	a, _ := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapRMA)
	ctx := testCtx(t)
	mr := a.reg(t, 4096, AccessLocal)
	// a receive waiting when the endpoint closes returns ErrClosed
	done := make(chan error, 1)
	go func() {
		_, err := a.ep.Recv(ctx, mr.Bytes()[:64], mr, AddrUnspec)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	// a known answer to an atomics query is kept (it is asked on every atomic posted) ...
	if err := a.dom.QueryAtomic(OpFetchAtomic, OpSum, Uint64); err != nil {
		t.Fatalf("query: %v", err)
	}
	// closing the domain closes endpoint, queues and regions in order
	if err := a.dom.Close(); err != nil {
		t.Fatalf("domain close: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending recv after close: %v", err)
	}
	for _, err := range []error{a.dom.Close(), a.ep.Close(), a.cq.Close(), mr.Close()} {
		if err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
	if err := a.ep.Send(ctx, []byte("x"), nil, a.peer); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := a.dom.RegMR(make([]byte, 8), AccessLocal); !errors.Is(err, ErrClosed) {
		t.Fatalf("regmr after close: %v", err)
	}
	if _, err := a.av.Insert([]byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("av insert after close: %v", err)
	}
	// ... but not past Close
	if err := a.dom.QueryAtomic(OpFetchAtomic, OpSum, Uint64); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after close: %v", err)
	}
}

func TestGetInfo(t *testing.T) {
	infos, err := GetInfo("", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, i := range infos {
		seen[i.Provider()] = true
		if i.Summary() == "" || i.String() == "" {
			t.Fatalf("empty rendering for %s", i.Provider())
		}
	}
	for _, p := range []string{"tcp", "tcp;ofi_rxm", "sockets", "shm"} {
		if !seen[p] {
			t.Errorf("provider %s missing from fi_getinfo (have %v)", p, seen)
		}
	}
	if _, err := GetInfo("", "", false, &Hints{Provider: "no-such-provider"}); !errors.Is(err, ErrNoData) {
		t.Errorf("bogus provider: %v", err)
	}
	if Version() == "" {
		t.Error("no version")
	}
	var e *Error
	if err := fiErr("x", -11); !errors.As(err, &e) || !errors.Is(err, errAgain) {
		t.Errorf("fiErr(-EAGAIN) = %v", err)
	}
	if b := binary.LittleEndian.Uint16([]byte{1, 0}); b != 1 {
		t.Fatal("host is not little endian; atomics scratch assumes it")
	}
}

func TestAllocFree(t *testing.T) {
	if _, err := Alloc(0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Alloc(0): %v", err)
	}
	b, err := Alloc(100)
	if err != nil || len(b.Bytes()) != 100 {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
}
