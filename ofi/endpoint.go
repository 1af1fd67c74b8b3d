package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rdmakit/rdmakit/internal/scratch"
)

// Endpoint is an active endpoint (fi_endpoint), MSG or RDM. Bind a CQ for each direction
// (and an AV for RDM, an EQ for MSG), Enable it, then issue operations with Do or the
// blocking helpers in ops.go.
type Endpoint struct {
	node
	c      *C.struct_fid_ep
	domain *Domain
	info   *Info
	flow   *flow // limit of bytes in flight (sockets), or nil
	txcq   *CQ
	rxcq   *CQ
	av     *AV
	eq     *EQ

	latencyPosts atomic.Uint64 // posting calls on the latency path (retries too), ever
}

// CQ binding flags for BindCQ.
const (
	BindTransmit = uint64(C.FI_TRANSMIT)
	BindRecv     = uint64(C.FI_RECV)
)

// NewEndpoint creates an endpoint from info (from GetInfo, or from a connection request).
func (d *Domain) NewEndpoint(info *Info) (*Endpoint, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	e := &Endpoint{domain: d, info: info, flow: newFlow(info.Provider())}
	d.quiet.RLock()
	rc := C.fi_endpoint(d.c, info.c, &e.c, nil)
	d.quiet.RUnlock()
	if rc != 0 {
		return nil, fmt.Errorf("provider %s: %w", info.Provider(), fiErr("fi_endpoint", C.ssize_t(rc)))
	}
	if err := e.init(&d.node, rankEndpoint, e.release); err != nil {
		C.fi_close(&e.c.fid)
		return nil, err
	}
	return e, nil
}

// release closes the endpoint while no one drains its queues: providers such as rxm progress
// the endpoints bound to a CQ from fi_cq_read and must not see one half closed.
func (e *Endpoint) release() error {
	var locked []*CQ
	for _, q := range []*CQ{e.txcq, e.rxcq} {
		if q != nil {
			// rxm's fi_trywait (libfabric 1.17) walks the endpoints bound to the queue and
			// crashes on a closed one: the queue polls from now on.
			q.orphaned.Store(true)
		}
		if q != nil && (len(locked) == 0 || locked[0] != q) {
			q.mu.Lock()
			locked = append(locked, q)
		}
	}
	e.domain.quiet.Lock()
	var err error
	if e.av == nil && e.info.EPType() == EPRDM && strings.Contains(e.info.Provider(), "ofi_rxm") {
		// Never bound to an AV (closed on an error path before it was): rxm needs one to close.
		err = fiErr("fi_close(ep) with a throwaway av", C.ssize_t(C.rk_close_ep_av(e.c, e.domain.c)))
	} else {
		err = fiErr("fi_close(ep)", C.ssize_t(C.fi_close(&e.c.fid)))
	}
	e.domain.quiet.Unlock()
	for _, q := range locked {
		q.eps.Add(-1)
		q.mu.Unlock()
	}
	return err
}

// Info is the configuration the endpoint was created with.
func (e *Endpoint) Info() *Info { return e.info }

// Domain is the endpoint's domain.
func (e *Endpoint) Domain() *Domain { return e.domain }

// BindCQ binds cq for transmit and/or receive completions (BindTransmit|BindRecv).
func (e *Endpoint) BindCQ(cq *CQ, flags uint64) error {
	if err := e.ctl("fi_ep_bind(cq)", &cq.node, func() C.int { return C.fi_ep_bind(e.c, &cq.c.fid, C.uint64_t(flags)) }); err != nil {
		return err
	}
	if e.txcq != cq && e.rxcq != cq {
		cq.eps.Add(1)
	}
	if flags&BindTransmit != 0 {
		e.txcq = cq
	}
	if flags&BindRecv != 0 {
		e.rxcq = cq
	}
	return nil
}

// BindAV binds an address vector (RDM and DGRAM endpoints).
func (e *Endpoint) BindAV(av *AV) error {
	if err := e.ctl("fi_ep_bind(av)", &av.node, func() C.int { return C.fi_ep_bind(e.c, &av.c.fid, 0) }); err != nil {
		return err
	}
	e.av = av
	return nil
}

// BindEQ binds an event queue (connection events of MSG endpoints).
func (e *Endpoint) BindEQ(eq *EQ) error {
	if err := e.ctl("fi_ep_bind(eq)", &eq.node, func() C.int { return C.fi_ep_bind(e.c, &eq.c.fid, 0) }); err != nil {
		return err
	}
	e.eq = eq
	return nil
}

// BindCntr binds a counter for the events in flags (FI_SEND, FI_RECV, FI_READ, FI_WRITE,
// FI_REMOTE_READ, FI_REMOTE_WRITE as Access bits).
func (e *Endpoint) BindCntr(c *Cntr, events Access) error {
	return e.ctl("fi_ep_bind(cntr)", &c.node, func() C.int { return C.fi_ep_bind(e.c, &c.c.fid, C.uint64_t(events)) })
}

// Enable enables the endpoint once its queues are bound.
func (e *Endpoint) Enable() error {
	polled := e.txcq != nil && e.txcq.waiter == nil || e.rxcq != nil && e.rxcq.waiter == nil
	if polled && e.info != nil && e.info.Caps()&CapRMAEvent != 0 {
		// Peers' RMA and atomics leave no completion here; counted, they tell the domain's
		// poller that this endpoint is a busy target (best effort: polling works without).
		// Bound and enabled while the poller is out: reading the counter progresses the
		// endpoints bound to it.
		// (Unlocked before the queues join the poller, which takes p.mu.)
		p := &e.domain.poll
		p.mu.Lock()
		if c := p.activityCntr(); c != nil {
			_ = e.BindCntr(c, AccessRemoteRead|AccessRemoteWrite)
		}
		err := e.enable()
		p.mu.Unlock()
		if err != nil {
			return err
		}
	} else if err := e.enable(); err != nil {
		return err
	}
	for _, q := range []*CQ{e.txcq, e.rxcq} {
		if q != nil {
			q.startProgress()
		}
	}
	return nil
}

func (e *Endpoint) enable() error {
	return e.ctl("fi_enable", nil, func() C.int { return C.fi_enable(e.c) })
}

// Name is the endpoint's address in the provider's format (fi_getname), to hand to peers.
func (e *Endpoint) Name() ([]byte, error) {
	if !e.enter() {
		return nil, ErrClosed
	}
	defer e.exit()
	return getname(&e.c.fid)
}

func getname(f *C.struct_fid) ([]byte, error) {
	buf := (*[256]byte)(C.malloc(256))
	defer C.free(unsafe.Pointer(buf))
	n := C.size_t(256)
	if rc := C.fi_getname(f, unsafe.Pointer(buf), &n); rc != 0 {
		return nil, fiErr("fi_getname", C.ssize_t(rc))
	}
	return C.GoBytes(unsafe.Pointer(buf), C.int(n)), nil
}

// Connect starts connecting a MSG endpoint to addr (nil: the info's destination) with
// private data; the outcome arrives on the bound EQ as EventConnected or an error.
func (e *Endpoint) Connect(addr, priv []byte) error {
	if addr == nil {
		addr = e.info.DestAddr()
	}
	ca, cp := cbytes(addr), cbytes(priv)
	defer C.free(ca)
	defer C.free(cp)
	return e.ctl("fi_connect", nil, func() C.int { return C.fi_connect(e.c, ca, cp, C.size_t(len(priv))) })
}

// Accept accepts the connection request the endpoint was created for, with private data.
func (e *Endpoint) Accept(priv []byte) error {
	cp := cbytes(priv)
	defer C.free(cp)
	return e.ctl("fi_accept", nil, func() C.int { return C.fi_accept(e.c, cp, C.size_t(len(priv))) })
}

// Shutdown shuts a connected endpoint down; the peer sees EventShutdown.
func (e *Endpoint) Shutdown() error {
	return e.ctl("fi_shutdown", nil, func() C.int { return C.fi_shutdown(e.c, 0) })
}

// Close closes the endpoint; operations in flight end with ErrClosed. Idempotent.
func (e *Endpoint) Close() error { return e.close() }

func (e *Endpoint) fid() uintptr { return uintptrOf(&e.c.fid) }

// cbytes copies b into C memory (NULL for an empty slice); the caller frees it.
func cbytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return C.CBytes(b)
}

// Do posts ops and waits until all have finished: the batched form (post many, reap many).
// Operations are posted in order, as many at once as the queues have room for, with one cgo
// call per batch; FI_EAGAIN is flow control (progress, then retry), never an error. Each op
// gets its outputs and Err; Do returns the first error. Invalid ops are rejected before
// anything is posted. If ctx ends first, Do returns ErrTimeout or ErrCanceled: operations
// still in flight may finish later, so their buffers must not be reused until the endpoint
// is closed.
func (e *Endpoint) Do(ctx context.Context, ops []Op) error {
	if e.isClosed() {
		return ErrClosed
	}
	k := getCall()
	defer calls.Put(k)
	cops := unsafe.Slice(&k.c.op, 1)[:0]
	var smallIDs [1]int32
	ids := smallIDs[:]
	if len(ops) > 1 {
		cs, is := copsPool.Get(len(ops)), idsPool.Get(len(ops))
		defer copsPool.Put(cs)
		defer idsPool.Put(is)
		cops, ids = (*cs)[:0], *is
	}
	for i := range ops {
		c, err := e.prepare(&ops[i])
		if err != nil {
			if len(ops) > 1 {
				err = fmt.Errorf("op %d: %w", i, err)
			}
			return err
		}
		cops = append(cops, c)
	}
	posted, reaped := 0, 0
	var first error
	for reaped < len(ops) {
		if posted < len(ops) && first == nil {
			n, err := e.post(ctx, k, ops, cops, ids, posted, posted > reaped, true)
			posted += n
			if err != nil {
				for i := posted; i < len(ops); i++ {
					ops[i].Err = err
				}
				first = err
			}
		}
		if reaped == posted {
			if posted == len(ops) || first != nil {
				break
			}
			continue
		}
		err := e.finish(ctx, &ops[reaped], ids[reaped], false, false)
		if err != nil && first == nil {
			first = err
		}
		reaped++
	}
	if first != nil && posted > reaped { // still in flight: wait them out (they are abandoned on ctx end)
		for ; reaped < posted; reaped++ {
			e.finish(ctx, &ops[reaped], ids[reaped], false, false)
		}
	}
	return first
}

// Scratch of Do calls with more than one operation (one has its own in the call).
var (
	copsPool scratch.Pool[C.rk_op]
	idsPool  scratch.Pool[int32]
)

// post posts ops[from:] until a queue is full (when busy, some are in flight already) and
// returns how many it posted. With waits the caller waits for them next, so a lone operation
// takes the latency path (posted and polled for in one cgo call); Post's caller goes on.
func (e *Endpoint) post(ctx context.Context, k *call, ops []Op, cops []C.rk_op, ids []int32, from int, busy, waits bool) (int, error) {
	for {
		n := 0
		for i := from; i < len(ops); i++ {
			k := ops[i].Kind
			if k.isInject() {
				ids[i] = -1
				cops[i].ctx = 0
				n++
				continue
			}
			q := e.cqFor(k)
			id := q.allocSlot(e.flow, ops[i].wireBytes())
			if id < 0 {
				break
			}
			ids[i] = id
			cops[i].ctx = C.uint64_t(id + 1)
			if k.isAtomic() {
				putWord(q.scratchWord(id, 0), ops[i].Datatype, ops[i].Operand)
				putWord(q.scratchWord(id, 1), ops[i].Datatype, ops[i].Compare)
				cops[i].operand = C.uint64_t(q.scratchAddr(id, 0))
				cops[i].compare = C.uint64_t(q.scratchAddr(id, 1))
				cops[i].result = C.uint64_t(q.scratchAddr(id, 2))
				cops[i].scratch_desc = C.uint64_t(q.scratchMR.Desc())
			}
			n++
		}
		if n == 0 {
			if busy {
				return 0, nil // reap first
			}
			// Other callers' operations hold every slot (or the flow limit): help reap them.
			if e.cqFor(ops[from].Kind).poll() == 0 {
				runtime.Gosched()
			}
			if ctx.Err() != nil {
				return 0, ctxErr(ctx)
			}
			if e.isClosed() {
				return 0, ErrClosed
			}
			continue
		}
		var got C.int
		if !e.enter() {
			for i := from; i < from+n; i++ {
				if ids[i] >= 0 {
					e.cqFor(ops[i].Kind).freeSlot(ids[i])
				}
			}
			return 0, ErrClosed
		}
		e.domain.poll.touch()
		recv := false
		for i := from; i < from+n; i++ {
			recv = recv || ops[i].Kind.isRecv()
		}
		alone := e.domain.lockPost(recv)
		if waits && n == 1 && !busy && from == len(ops)-1 && e.cqFor(ops[from].Kind).mu.TryLock() {
			e.latencyPosts.Add(1)
			// Latency path: post and poll in one cgo call, for at most latencyPathPoll.
			q := e.cqFor(ops[from].Kind)
			got = C.rk_post_drain(e.c, &cops[from], 1, &k.c.rc, q.c, &q.comps[0], C.int(len(q.comps)),
				boolInt(q.attr.Source), boolInt(q.tagged), C.int64_t(latencyPathPoll), &k.c.ncomp)
			e.domain.unlockPost(alone)
			if n := k.c.ncomp; n < 0 {
				q.readFailed(n)
			} else {
				q.dispatch(q.comps[:n])
			}
			q.mu.Unlock()
		} else {
			got = C.rk_post(e.c, &cops[from], C.int(n), &k.c.rc)
			e.domain.unlockPost(alone)
		}
		e.exit()
		rc := k.c.rc
		for i := from + int(got); i < from+n; i++ { // not posted
			if ids[i] >= 0 {
				e.cqFor(ops[i].Kind).freeSlot(ids[i])
			}
		}
		if got > 0 || rc == 0 {
			return int(got), nil
		}
		if rc != -C.FI_EAGAIN {
			op := &ops[from]
			return 0, fmt.Errorf("%s: %w", op.Kind, fiErr("fi_"+op.Kind.String(), rc))
		}
		// FI_EAGAIN: make progress, then retry.
		if busy {
			return 0, nil
		}
		if e.txcq != nil {
			e.txcq.poll()
		}
		if e.rxcq != nil && e.rxcq != e.txcq {
			e.rxcq.poll()
		}
		if ctx.Err() != nil {
			return 0, ctxErr(ctx)
		}
		if e.isClosed() {
			return 0, ErrClosed
		}
		runtime.Gosched()
	}
}

// latencyPathPoll is how long the latency path (a lone operation posted by a caller that
// waits for it) polls for its completion in the cgo call that posts it; await polls on in
// short calls. A cgo call that outlasts a tick of the Go runtime's sysmon (20 µs and up) while
// the other Ps are busy loses its P: its return then waits for a P, often on another thread,
// and sysmon, having retaken one, goes back to its shortest tick. The call used to make 64
// polls (a tcp;ofi_rxm poll is an epoll_wait, 1-2 µs on a VM: up to 100 µs); the runtime
// tracer counted 269 such slow returns in 20000 one-in-flight fetch-adds then, 4 with 10 µs.
var latencyPathPoll = 10 * time.Microsecond

// finish waits for one posted op and fills its outputs. With keep, an op still pending when
// ctx ends stays posted.
func (e *Endpoint) finish(ctx context.Context, op *Op, id int32, keep, watch bool) error {
	return e.finishOr(ctx, op, id, keep, watch, nil)
}

// finishOr is finish that also ends, in ErrStopped, when stop closes (nil: never).
func (e *Endpoint) finishOr(ctx context.Context, op *Op, id int32, keep, watch bool, stop <-chan struct{}) error {
	if id < 0 { // inject: complete when posted
		return nil
	}
	q := e.cqFor(op.Kind)
	if err := q.await(ctx, id, e.done, stop, keep, watch); err != nil {
		if keep && q.slots[id].state.Load() == slotPending {
			return err
		}
		if op.Kind.isRecv() {
			// best effort: a closed endpoint has flushed the receive already
			_ = e.ctl("fi_cancel", nil, func() C.int { return C.rk_cancel(e.c, C.uint64_t(id+1)) })
		}
		op.Err = fmt.Errorf("%s: %w", op.Kind, err)
		return op.Err
	}
	c := q.slots[id].comp
	if c.err != nil {
		op.Err = fmt.Errorf("%s: %w", op.Kind, c.err)
	} else {
		switch {
		case op.Kind.isRecv():
			op.Len = int(c.len)
			op.RecvTag = c.tag
			op.RecvHasData = c.flags&C.FI_REMOTE_CQ_DATA != 0
			op.RecvData = c.data
			op.Src = c.src
		case op.Kind == OpFetchAtomic || op.Kind == OpCompareAtomic:
			op.Result = q.result(id, op.Datatype)
		}
	}
	q.freeSlot(id)
	return op.Err
}

func (e *Endpoint) cqFor(k OpKind) *CQ {
	if k.isRecv() {
		return e.rxcq
	}
	return e.txcq
}

// prepare checks an op and turns it into its C form.
func (e *Endpoint) prepare(op *Op) (C.rk_op, error) {
	var c C.rk_op
	op.Err, op.Result, op.Len, op.RecvTag, op.RecvData, op.RecvHasData, op.Src = nil, 0, 0, 0, 0, false, AddrUnspec
	k := op.Kind
	if k < OpSend || k > OpCompareAtomic {
		return c, fmt.Errorf("%w: unknown op kind %d", ErrInvalid, int(k))
	}
	if q := e.cqFor(k); q == nil && !k.isInject() {
		return c, fmt.Errorf("%w: %s: no completion queue bound for it", ErrInvalid, k)
	} else if q != nil && q.isClosed() {
		return c, ErrClosed
	}
	info := e.info
	if !k.isAtomic() {
		if uint64(len(op.Buf)) > info.MaxMsgSize() {
			return c, fmt.Errorf("%w: %s of %d bytes, provider max %d", ErrTooBig, k, len(op.Buf), info.MaxMsgSize())
		}
		if k.isInject() && len(op.Buf) > info.InjectSize() {
			return c, fmt.Errorf("%w: %s of %d bytes, inject size %d", ErrTooBig, k, len(op.Buf), info.InjectSize())
		}
		if op.MR != nil {
			if op.MR.isClosed() {
				return c, fmt.Errorf("%s: memory region: %w", k, ErrClosed)
			}
			if !op.MR.contains(op.Buf) {
				return c, fmt.Errorf("%w: %s buffer lies outside its memory region", ErrInvalid, k)
			}
			c.desc = C.uint64_t(op.MR.Desc())
		} else if !k.isInject() && len(op.Buf) > 0 && info.MRMode()&MRLocal != 0 {
			return c, fmt.Errorf("%w: %s: provider %s needs registered local buffers (FI_MR_LOCAL): set Op.MR",
				ErrInvalid, k, info.Provider())
		}
		if len(op.Buf) > 0 {
			c.buf = C.uint64_t(uintptr(unsafe.Pointer(unsafe.SliceData(op.Buf))))
		}
		c.len = C.uint64_t(len(op.Buf))
	} else {
		size := op.Datatype.Size()
		if size == 0 {
			return c, fmt.Errorf("%w: atomic datatype %d", ErrInvalid, int(op.Datatype))
		}
		if op.RemoteAddr%uint64(size) != 0 {
			return c, fmt.Errorf("%w: %s %s at %#x is not aligned to %d bytes", ErrInvalid, op.AtomicOp,
				op.Datatype, op.RemoteAddr, size)
		}
		if (k == OpCompareAtomic) != op.AtomicOp.isCompare() {
			return c, fmt.Errorf("%w: %s is not a %s operation", ErrInvalid, op.AtomicOp, k)
		}
		if k == OpAtomic && op.AtomicOp == OpAtomicRead {
			return c, fmt.Errorf("%w: ATOMIC_READ needs a fetch_atomic", ErrInvalid)
		}
		if err := e.domain.QueryAtomic(k, op.AtomicOp, op.Datatype); err != nil {
			return c, err
		}
		c.atomic_op = C.uint32_t(op.AtomicOp)
		c.datatype = C.uint32_t(op.Datatype)
		c.count = 1
	}
	c.kind = C.uint32_t(k)
	c.addr = C.uint64_t(op.Peer)
	if info.EPType() == EPMsg {
		c.addr = C.uint64_t(AddrUnspec)
	}
	c.raddr, c.key = C.uint64_t(op.RemoteAddr), C.uint64_t(op.Key)
	c.tag, c.ignore, c.data = C.uint64_t(op.Tag), C.uint64_t(op.Ignore), C.uint64_t(op.Data)
	if op.WithData {
		c.has_data = 1
	}
	if op.Flags != 0 {
		if k != OpWrite {
			return c, fmt.Errorf("%w: flags on %s (only writes take them)", ErrInvalid, k)
		}
		c.flags = C.uint64_t(op.Flags)
	}
	return c, nil
}

// ctl makes one control call on the endpoint (and on with, an object it binds, if any),
// holding both open for the call and taking the domain's quiet lock shared: no fi_trywait
// runs beside it (see Domain.quiet).
func (e *Endpoint) ctl(op string, with *node, call func() C.int) error {
	if !e.enter() {
		return ErrClosed
	}
	defer e.exit()
	if with != nil {
		if !with.enter() {
			return ErrClosed
		}
		defer with.exit()
	}
	e.domain.quiet.RLock()
	defer e.domain.quiet.RUnlock()
	return fiErr(op, C.ssize_t(call()))
}

func uintptrOf(f *C.struct_fid) uintptr { return uintptr(unsafe.Pointer(f)) }
