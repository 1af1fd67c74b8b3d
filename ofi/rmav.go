package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"unsafe"
)

// Seg is one local segment of a vectored operation.
type Seg struct {
	Buf []byte
	MR  *MR
}

// WriteV gathers segs into one remote range at raddr (fi_writemsg); with withData, data is
// delivered to the target's CQ. flags may add DeliveryComplete.
func (e *Endpoint) WriteV(ctx context.Context, segs []Seg, peer Addr, raddr, key uint64, data uint64, withData bool, flags uint64) error {
	if withData {
		flags |= C.FI_REMOTE_CQ_DATA
	}
	return e.rmav(ctx, true, segs, peer, raddr, key, data, flags)
}

// ReadV scatters one remote range at raddr into segs (fi_readmsg).
func (e *Endpoint) ReadV(ctx context.Context, segs []Seg, peer Addr, raddr, key uint64) error {
	return e.rmav(ctx, false, segs, peer, raddr, key, 0, 0)
}

func (e *Endpoint) rmav(ctx context.Context, write bool, segs []Seg, peer Addr, raddr, key, data, flags uint64) error {
	if e.isClosed() {
		return ErrClosed
	}
	name := map[bool]string{true: "fi_writemsg", false: "fi_readmsg"}[write]
	if len(segs) == 0 || len(segs) > min(16, max(e.info.IOVLimit(), 1)) {
		return fmt.Errorf("%w: %s with %d segments (provider iov limit %d)", ErrInvalid, name, len(segs), e.info.IOVLimit())
	}
	iov := make([]C.rk_iov, len(segs))
	var total uint64
	for i, s := range segs {
		if len(s.Buf) == 0 {
			return fmt.Errorf("%w: %s: empty segment %d", ErrInvalid, name, i)
		}
		if s.MR != nil {
			if !s.MR.contains(s.Buf) {
				return fmt.Errorf("%w: %s: segment %d outside its memory region", ErrInvalid, name, i)
			}
			iov[i].desc = C.uint64_t(s.MR.Desc())
		} else if e.info.MRMode()&MRLocal != 0 {
			return fmt.Errorf("%w: %s: provider needs registered segments (FI_MR_LOCAL)", ErrInvalid, name)
		}
		iov[i].addr = C.uint64_t(uintptr(unsafe.Pointer(unsafe.SliceData(s.Buf))))
		iov[i].len = C.uint64_t(len(s.Buf))
		total += uint64(len(s.Buf))
	}
	if total > e.info.MaxMsgSize() {
		return fmt.Errorf("%w: %s of %d bytes", ErrTooBig, name, total)
	}
	q := e.txcq
	if q == nil {
		return fmt.Errorf("%w: no transmit completion queue bound", ErrInvalid)
	}
	if e.info.EPType() == EPMsg {
		peer = AddrUnspec
	}
	kind := OpRead
	if write {
		kind = OpWrite
	}
	for {
		id := q.allocSlot(e.flow, int64(total))
		if id < 0 { // other operations hold every slot or the flow limit: help reap them
			if q.poll() == 0 {
				runtime.Gosched()
			}
			if ctx.Err() != nil {
				return ctxErr(ctx)
			}
			continue
		}
		if !e.enter() {
			q.freeSlot(id)
			return ErrClosed
		}
		e.domain.poll.touch()
		e.domain.quiet.RLock()
		rc := C.rk_rmav(e.c, boolInt(write), &iov[0], C.int(len(iov)), C.uint64_t(peer), C.uint64_t(raddr),
			C.uint64_t(key), C.uint64_t(data), C.uint64_t(flags), C.uint64_t(id+1))
		e.domain.quiet.RUnlock()
		e.exit()
		if rc == -C.FI_EAGAIN {
			q.freeSlot(id)
			q.poll()
			if ctx.Err() != nil {
				return ctxErr(ctx)
			}
			continue
		}
		if rc != 0 {
			q.freeSlot(id)
			return fiErr(name, rc)
		}
		op := Op{Kind: kind}
		return e.finish(ctx, &op, id, false, false)
	}
}
