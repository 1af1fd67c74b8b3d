package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/ofi"
)

// goSide is one end of the Go pair, built with package ofi.
type goSide struct {
	fab  *ofi.Fabric
	dom  *ofi.Domain
	ep   *ofi.Endpoint
	cq   *ofi.CQ
	av   *ofi.AV
	buf  *ofi.Buffer
	mr   *ofi.MR
	peer ofi.Addr
	info *ofi.Info
}

// goPair is the Go side of a benchmark: the same two RDM endpoints as the C reference, used
// through rdmakit's ofi binding.
type goPair struct {
	a, b   *goSide
	remote ofi.Region // b's buffer as a sees it
	spin   time.Duration
}

func openGoSide(prov string, size int, spin time.Duration) (*goSide, error) {
	node := "127.0.0.1"
	if prov == "shm" {
		node = ""
	}
	caps := ofi.CapMsg | ofi.CapRMA | ofi.CapAtomic
	if prov == "shm" {
		caps |= ofi.CapRMAEvent // peers' RMA and atomics counted: the poller sees a busy target
	}
	infos, err := ofi.GetInfo(node, "", true, &ofi.Hints{Provider: prov, EPType: ofi.EPRDM,
		Caps: caps, Threading: ofi.ThreadSafe,
		MRMode: ofi.MRLocal | ofi.MRVirtAddr | ofi.MRAllocated | ofi.MRProvKey})
	if err != nil {
		return nil, err
	}
	s := &goSide{info: infos[0]}
	if s.fab, err = ofi.OpenFabric(s.info); err != nil {
		return nil, err
	}
	fail := func(err error) (*goSide, error) { s.close(); return nil, err }
	if s.dom, err = s.fab.OpenDomain(s.info); err != nil {
		return fail(err)
	}
	if s.ep, err = s.dom.NewEndpoint(s.info); err != nil {
		return fail(err)
	}
	if s.cq, err = s.dom.OpenCQ(ofi.CQAttr{Size: 1024, Spin: spin}); err != nil {
		return fail(err)
	}
	if s.av, err = s.dom.OpenAV(ofi.AVTable, 4); err != nil {
		return fail(err)
	}
	if err = errors.Join(s.ep.BindCQ(s.cq, ofi.BindTransmit|ofi.BindRecv), s.ep.BindAV(s.av), s.ep.Enable()); err != nil {
		return fail(err)
	}
	if s.buf, err = ofi.Alloc(size); err != nil {
		return fail(err)
	}
	if s.mr, err = s.dom.RegMR(s.buf.Bytes(), ofi.AccessLocal|ofi.AccessRemote); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *goSide) close() {
	if s.fab != nil {
		s.fab.Close()
	}
	if s.buf != nil {
		s.buf.Free()
	}
}

func openGoPair(prov string, size int, spin time.Duration) (*goPair, error) {
	a, err := openGoSide(prov, size, spin)
	if err != nil {
		return nil, err
	}
	b, err := openGoSide(prov, size, spin)
	if err != nil {
		a.close()
		return nil, err
	}
	p := &goPair{a: a, b: b, spin: spin}
	na, err1 := a.ep.Name()
	nb, err2 := b.ep.Name()
	if err := errors.Join(err1, err2); err != nil {
		p.close()
		return nil, err
	}
	if a.peer, err = a.av.Insert(nb); err == nil {
		b.peer, err = b.av.Insert(na)
	}
	if err != nil {
		p.close()
		return nil, err
	}
	p.remote = b.mr.Region()
	return p, nil
}

func (p *goPair) close() {
	p.a.close()
	p.b.close()
}

// rma times iters writes (or reads) of size bytes, window in flight.
func (p *goPair) rma(ctx context.Context, size, iters, window int, read bool) (time.Duration, error) {
	ops := make([]ofi.Op, window)
	kind, flags := ofi.OpWrite, ofi.DeliveryComplete
	if read {
		kind, flags = ofi.OpRead, 0
	}
	for i := range ops {
		ops[i] = ofi.Op{Kind: kind, Buf: p.a.buf.Bytes()[:size], MR: p.a.mr, Peer: p.a.peer,
			RemoteAddr: p.remote.Addr, Key: p.remote.Key, Flags: flags}
	}
	return p.a.slide(ctx, ops, iters)
}

// pingpong times iters round trips of size-byte messages against an echoing goroutine.
func (p *goPair) pingpong(ctx context.Context, size, iters int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	echoErr := make(chan error, 1)
	wg.Go(func() {
		b := p.b
		for {
			n, err := b.ep.Recv(ctx, b.buf.Bytes()[:64], b.mr, ofi.AddrUnspec)
			if err == nil {
				err = b.ep.Send(ctx, b.buf.Bytes()[:n], b.mr, b.peer)
			}
			if err != nil {
				if ctx.Err() == nil {
					echoErr <- err
				}
				return
			}
		}
	})
	defer func() { cancel(); wg.Wait() }()
	a := p.a
	rbuf := a.buf.Bytes()[4096 : 4096+64]
	ops := []ofi.Op{{Kind: ofi.OpRecv, Buf: rbuf, MR: a.mr, Peer: ofi.AddrUnspec}}
	start := time.Now()
	for range iters {
		op := &ops[0]
		*op = ofi.Op{Kind: ofi.OpRecv, Buf: rbuf, MR: a.mr, Peer: ofi.AddrUnspec}
		t, err := a.ep.Post(ctx, op)
		if err != nil {
			return 0, err
		}
		if err := a.ep.Send(ctx, a.buf.Bytes()[:size], a.mr, a.peer); err != nil {
			return 0, err
		}
		if err := a.ep.Wait(ctx, op, t); err != nil {
			return 0, err
		}
	}
	el := time.Since(start)
	select {
	case err := <-echoErr:
		return 0, fmt.Errorf("echo: %w", err)
	default:
	}
	return el, nil
}

// fetchAdd times iters fetch-adds on b's first word, window in flight.
func (p *goPair) fetchAdd(ctx context.Context, iters, window int) (time.Duration, error) {
	ops := make([]ofi.Op, window)
	for i := range ops {
		ops[i] = ofi.Op{Kind: ofi.OpFetchAtomic, AtomicOp: ofi.OpSum, Datatype: ofi.Uint64, Peer: p.a.peer,
			RemoteAddr: p.remote.Addr, Key: p.remote.Key, Operand: 1}
	}
	return p.a.slide(ctx, ops, iters)
}

// slide times iters operations, len(ops) in flight as a sliding window, as the C loops keep
// theirs: a new operation goes out as soon as the oldest finishes.
func (s *goSide) slide(ctx context.Context, ops []ofi.Op, iters int) (time.Duration, error) {
	window := len(ops)
	tickets := make([]ofi.Ticket, window)
	start := time.Now()
	for i := 0; i < iters+window; i++ {
		k := i % window
		if i >= window && i-window < iters {
			if err := s.ep.Wait(ctx, &ops[k], tickets[k]); err != nil {
				return 0, err
			}
		}
		if i < iters {
			t, err := s.ep.Post(ctx, &ops[k])
			if err != nil {
				return 0, err
			}
			tickets[k] = t
		}
	}
	return time.Since(start), nil
}
