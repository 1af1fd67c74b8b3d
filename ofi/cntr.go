package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"time"
)

// Cntr is a completion counter (fi_cntr_open): a cheap count of finished operations.
type Cntr struct {
	node
	c      *C.struct_fid_cntr
	domain *Domain
}

// OpenCntr opens a counter that is read by polling.
func (d *Domain) OpenCntr() (*Cntr, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	c := &Cntr{domain: d}
	var a C.struct_fi_cntr_attr
	a.events = C.FI_CNTR_EVENTS_COMP
	a.wait_obj = C.FI_WAIT_NONE
	if rc := C.fi_cntr_open(d.c, &a, &c.c, nil); rc != 0 {
		return nil, fiErr("fi_cntr_open", C.ssize_t(rc))
	}
	if err := c.init(&d.node, rankQueue, func() error {
		return fiErr("fi_close(cntr)", C.ssize_t(C.fi_close(&c.c.fid)))
	}); err != nil {
		C.fi_close(&c.c.fid)
		return nil, err
	}
	return c, nil
}

// Read is the number of successful completions counted (reading drives progress).
func (c *Cntr) Read() uint64 {
	if !c.enter() {
		return 0
	}
	defer c.exit()
	c.domain.quiet.RLock() // reading progresses the bound endpoints (see Domain.quiet)
	defer c.domain.quiet.RUnlock()
	return uint64(C.fi_cntr_read(c.c))
}

// ReadErr is the number of failed operations counted.
func (c *Cntr) ReadErr() uint64 {
	if !c.enter() {
		return 0
	}
	defer c.exit()
	return uint64(C.fi_cntr_readerr(c.c))
}

// Add adds v to the counter.
func (c *Cntr) Add(v uint64) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.exit()
	return fiErr("fi_cntr_add", C.ssize_t(C.fi_cntr_add(c.c, C.uint64_t(v))))
}

// Set sets the counter to v.
func (c *Cntr) Set(v uint64) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.exit()
	return fiErr("fi_cntr_set", C.ssize_t(C.fi_cntr_set(c.c, C.uint64_t(v))))
}

// Wait polls until the counter reaches threshold, an error is counted (ErrConnReset-class
// errors are not distinguished: the returned error says how many failed), or ctx ends.
func (c *Cntr) Wait(ctx context.Context, threshold uint64) error {
	backoff := time.Microsecond
	errs := c.ReadErr()
	for {
		if c.isClosed() {
			return ErrClosed
		}
		if c.Read() >= threshold {
			return nil
		}
		if e := c.ReadErr(); e != errs {
			return &Error{Op: "fi_cntr_wait", Errno: C.FI_EIO, Text: "operations counted as failed"}
		}
		if ctx.Err() != nil {
			return ctxErr(ctx)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// Close closes the counter. Idempotent.
func (c *Cntr) Close() error { return c.close() }
