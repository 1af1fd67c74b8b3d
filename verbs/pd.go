package verbs

/*
#include "shim.h"
*/
import "C"

import "syscall"

// PD is a protection domain (struct ibv_pd).
type PD struct {
	g  guard
	c  *Context
	pd *C.struct_ibv_pd
}

// AllocPD allocates a protection domain.
func (c *Context) AllocPD() (*PD, error) {
	if err := c.g.enter(); err != nil {
		return nil, err
	}
	defer c.g.leave()
	pd, err := C.ibv_alloc_pd(c.ctx)
	if pd == nil {
		return nil, callError("ibv_alloc_pd", errnoOf(-1, err))
	}
	p := &PD{c: c, pd: pd}
	c.kids.add(p)
	return p, nil
}

// Context returns the device context the PD belongs to.
func (p *PD) Context() *Context { return p.c }

// Close deallocates the PD. Close its MRs, QPs, SRQs and AHs first (or close the Context,
// which does it in order); otherwise it fails with EBUSY. It is idempotent.
func (p *PD) Close() error {
	err := p.g.shut(func() error {
		if rc := C.ibv_dealloc_pd(p.pd); rc != 0 {
			return callError("ibv_dealloc_pd", syscall.Errno(rc))
		}
		return nil
	})
	if err == nil {
		p.c.kids.remove(p)
	}
	return err
}
