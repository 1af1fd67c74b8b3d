package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"sync"
	"unsafe"
)

// AsyncEventType is enum ibv_event_type.
type AsyncEventType uint32

// Asynchronous events of interest.
const (
	EventCQErr       AsyncEventType = C.IBV_EVENT_CQ_ERR
	EventQPFatal     AsyncEventType = C.IBV_EVENT_QP_FATAL
	EventQPReqErr    AsyncEventType = C.IBV_EVENT_QP_REQ_ERR
	EventQPAccessErr AsyncEventType = C.IBV_EVENT_QP_ACCESS_ERR
	EventCommEst     AsyncEventType = C.IBV_EVENT_COMM_EST
	EventPortActive  AsyncEventType = C.IBV_EVENT_PORT_ACTIVE
	EventPortErr     AsyncEventType = C.IBV_EVENT_PORT_ERR
	EventGIDChange   AsyncEventType = C.IBV_EVENT_GID_CHANGE
	EventSRQErr      AsyncEventType = C.IBV_EVENT_SRQ_ERR
	EventSRQLimit    AsyncEventType = C.IBV_EVENT_SRQ_LIMIT_REACHED
	EventLastWQE     AsyncEventType = C.IBV_EVENT_QP_LAST_WQE_REACHED
	EventDeviceFatal AsyncEventType = C.IBV_EVENT_DEVICE_FATAL
)

func (t AsyncEventType) String() string { return C.GoString(C.ibv_event_type_str(uint32(t))) }

// hasObject reports whether the event names a CQ, QP or SRQ (rather than a port or device).
func (t AsyncEventType) hasObject() bool {
	switch t {
	case EventCQErr, EventQPFatal, EventQPReqErr, EventQPAccessErr, EventCommEst, EventSRQErr,
		EventSRQLimit, EventLastWQE, C.IBV_EVENT_SQ_DRAINED, C.IBV_EVENT_PATH_MIG, C.IBV_EVENT_PATH_MIG_ERR:
		return true
	}
	return false
}

// asyncTarget is an object (CQ, QP, SRQ) told about its asynchronous events.
type asyncTarget interface{ asyncEvent(AsyncEventType) }

// asyncReader reads a device's asynchronous events (ibv_get_async_event) from a goroutine
// parked in the netpoller and routes them to the CQ/QP/SRQ they name. One runs per device
// context of the process (librdmacm shares contexts), counted by reference.
type asyncReader struct {
	ctx  *C.struct_ibv_context
	refs int
	pfd  *pollFD
	done chan struct{}
}

var (
	asyncMu      sync.Mutex
	asyncReaders = map[*C.struct_ibv_context]*asyncReader{}
)

func startAsync(ctx *C.struct_ibv_context) (*asyncReader, error) {
	asyncMu.Lock()
	defer asyncMu.Unlock()
	if r := asyncReaders[ctx]; r != nil {
		r.refs++
		return r, nil
	}
	pfd, err := newPollFD(ctx.async_fd, "ibv-async")
	if err != nil {
		return nil, err
	}
	r := &asyncReader{ctx: ctx, refs: 1, pfd: pfd, done: make(chan struct{})}
	asyncReaders[ctx] = r
	go r.run()
	return r, nil
}

func (r *asyncReader) run() {
	defer close(r.done)
	buf := (*C.rk_async)(C.calloc(16, C.sizeof_rk_async))
	defer C.free(unsafe.Pointer(buf))
	evs := unsafe.Slice(buf, 16)
	for {
		var got []AsyncEventType
		var handles []uint64
		err := r.pfd.wait(context.Background(), func() (bool, error) {
			n := C.rk_get_async_events(r.ctx, buf, 16)
			for i := 0; i < int(n); i++ {
				got = append(got, AsyncEventType(evs[i]._type))
				handles = append(handles, uint64(evs[i].handle))
			}
			return n > 0 || n < 0, nil
		})
		for i, t := range got {
			if !t.hasObject() {
				continue
			}
			if o, ok := lookupHandle(handles[i]).(asyncTarget); ok {
				o.asyncEvent(t)
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *asyncReader) stop() {
	asyncMu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(asyncReaders, r.ctx)
	}
	asyncMu.Unlock()
	if last {
		r.pfd.close()
		<-r.done
	}
}
