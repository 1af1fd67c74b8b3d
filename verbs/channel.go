package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// CompChannel is a completion event channel (struct ibv_comp_channel) driven by Go's
// netpoller: waiting on it parks the goroutine, not a thread. Several CQs may share one.
type CompChannel struct {
	g     guard
	c     *Context
	ch    *C.struct_ibv_comp_channel
	pfd   *pollFD
	users atomic.Int32 // CQs attached
	mu    sync.Mutex   // serializes drains
	evbuf *C.uint64_t
}

const chanDrainMax = 64

// CreateCompChannel creates a completion channel.
func (c *Context) CreateCompChannel() (*CompChannel, error) {
	if err := c.g.enter(); err != nil {
		return nil, err
	}
	defer c.g.leave()
	ch, err := C.ibv_create_comp_channel(c.ctx)
	if ch == nil {
		return nil, callError("ibv_create_comp_channel", errnoOf(-1, err))
	}
	pfd, perr := newPollFD(ch.fd, "ibv-comp-channel")
	if perr != nil {
		C.ibv_destroy_comp_channel(ch)
		return nil, perr
	}
	cc := &CompChannel{c: c, ch: ch, pfd: pfd,
		evbuf: (*C.uint64_t)(C.calloc(chanDrainMax, C.sizeof_uint64_t))}
	c.kids.add(cc)
	return cc, nil
}

// drain fetches every pending event (ibv_get_cq_event until EAGAIN, acked in batches) and
// marks the CQs they name as notified.
func (cc *CompChannel) drain() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for {
		n := C.rk_get_cq_events(cc.ch, cc.evbuf, chanDrainMax)
		if n < 0 {
			return callError("ibv_get_cq_event", syscall.Errno(-n))
		}
		for _, h := range unsafe.Slice(cc.evbuf, int(n)) {
			if cq, ok := lookupHandle(uint64(h)).(*CQ); ok {
				cq.notified.Store(true)
			}
		}
		if n < chanDrainMax {
			return nil
		}
	}
}

// wait parks until cond is satisfied; drain runs before each check.
func (cc *CompChannel) wait(ctx context.Context, cond func() (bool, error)) error {
	if err := cc.g.enter(); err != nil {
		return err
	}
	pfd := cc.pfd
	cc.g.leave()
	return pfd.wait(ctx, func() (bool, error) {
		if err := cc.drain(); err != nil {
			return false, err
		}
		return cond()
	})
}

// Close destroys the channel. It fails while CQs still use it. It is idempotent.
func (cc *CompChannel) Close() error {
	err := cc.g.shut(func() error {
		if n := cc.users.Load(); n > 0 {
			return fmt.Errorf("verbs: close completion channel: %w (%d CQs still use it)", syscall.EBUSY, n)
		}
		cc.pfd.close()
		if rc := C.ibv_destroy_comp_channel(cc.ch); rc != 0 {
			return callError("ibv_destroy_comp_channel", syscall.Errno(rc))
		}
		C.free(unsafe.Pointer(cc.evbuf))
		return nil
	})
	if err == nil {
		cc.c.kids.remove(cc)
	}
	return err
}
