package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"unsafe"
)

// call is a Do or Post call's C memory (rk_call), pooled; a call the pool drops is freed by
// its cleanup.
type call struct{ c *C.rk_call }

var calls sync.Pool

func getCall() *call {
	if k, ok := calls.Get().(*call); ok {
		return k
	}
	k := &call{c: (*C.rk_call)(C.malloc(C.sizeof_rk_call))} // cgo's malloc never returns nil
	runtime.AddCleanup(k, func(p unsafe.Pointer) { C.free(p) }, unsafe.Pointer(k.c))
	return k
}

// Ticket identifies an operation started with Post until Wait collects it.
type Ticket struct{ id int32 }

// Post starts one operation without waiting for it (a pre-posted receive, say) and returns
// its ticket. The op's buffer belongs to the operation until Wait returns. Exactly one Wait
// must follow every successful Post.
func (e *Endpoint) Post(ctx context.Context, op *Op) (Ticket, error) {
	return e.postOne(ctx, op, false)
}

// postOne is Post; with waits the operation takes the latency path, as if its caller waited
// for it next (TestLatencyPathPollsForATime times the posting call so).
func (e *Endpoint) postOne(ctx context.Context, op *Op, waits bool) (Ticket, error) {
	if e.isClosed() {
		return Ticket{}, ErrClosed
	}
	c, err := e.prepare(op)
	if err != nil {
		return Ticket{}, err
	}
	k := getCall()
	defer calls.Put(k)
	k.c.op = c
	cops := unsafe.Slice(&k.c.op, 1)
	ids := [1]int32{}
	for {
		n, err := e.post(ctx, k, unsafe.Slice(op, 1), cops, ids[:], 0, false, waits)
		if err != nil {
			return Ticket{}, err
		}
		if n == 1 {
			return Ticket{id: ids[0]}, nil
		}
	}
}

// Wait waits for an operation started with Post and fills op's outputs. If ctx ends first the
// operation stays posted and Wait returns ErrTimeout or ErrCanceled: wait again with the same
// ticket later, or close the endpoint. Ready tells whether it would return at once.
func (e *Endpoint) Wait(ctx context.Context, op *Op, t Ticket) error {
	return e.finish(ctx, op, t.id, true, false)
}

// WaitOr is Wait that also returns, with ErrStopped, when stop closes: the operation stays
// posted then, as when ctx ends. (A context derived for that costs allocations per call.)
func (e *Endpoint) WaitOr(ctx context.Context, op *Op, t Ticket, stop <-chan struct{}) error {
	return e.finishOr(ctx, op, t.id, true, false, stop)
}

// Watch is Wait for an operation that may stay pending for the endpoint's whole life (a
// standing receive for a rare message). It neither polls the queue nor counts as a waiter:
// the queue's progress goroutine finds the completion when it next drains the queue, and,
// idle otherwise, backs off its safety tick as with nobody waiting (a waiter keeps it at
// 10 ms, a wake-up of the process a hundred times a second per queue). If a wake-up of the
// progress goroutine is missed, the completion comes up to one long tick (160 ms) late.
func (e *Endpoint) Watch(ctx context.Context, op *Op, t Ticket) error {
	return e.finish(ctx, op, t.id, true, true)
}

// Ready reports whether the operation of t has finished (polling the queue once).
func (e *Endpoint) Ready(op *Op, t Ticket) bool {
	if t.id < 0 {
		return true
	}
	q := e.cqFor(op.Kind)
	if q.slots[t.id].state.Load() == slotPending {
		q.poll()
	}
	return q.slots[t.id].state.Load() != slotPending
}
