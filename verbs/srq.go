package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// SRQ is a shared receive queue (struct ibv_srq): several QPs take receive buffers from it.
type SRQ struct {
	g       guard
	pd      *PD
	srq     *C.struct_ibv_srq
	h       uint64
	maxWR   int
	failure atomic.Pointer[error]
}

// CreateSRQ creates a shared receive queue of maxWR entries of up to maxSGE elements.
func (p *PD) CreateSRQ(maxWR, maxSGE int) (*SRQ, error) {
	if err := p.g.enter(); err != nil {
		return nil, err
	}
	defer p.g.leave()
	if maxWR <= 0 || maxSGE <= 0 || maxSGE > MaxSGE {
		return nil, fmt.Errorf("%w: SRQ of %d WRs x %d SGEs", ErrInvalid, maxWR, maxSGE)
	}
	var a C.struct_ibv_srq_init_attr
	a.attr.max_wr = C.uint32_t(maxWR)
	a.attr.max_sge = C.uint32_t(maxSGE)
	s := &SRQ{pd: p}
	s.h = newHandle(s)
	srq, err := C.ibv_create_srq(p.pd, &a)
	if srq == nil {
		dropHandle(s.h)
		return nil, callError("ibv_create_srq", errnoOf(-1, err))
	}
	C.rk_set_srq_context(srq, C.uint64_t(s.h))
	s.srq, s.maxWR = srq, int(a.attr.max_wr)
	p.c.kids.add(s)
	return s, nil
}

func (s *SRQ) asyncEvent(t AsyncEventType) {
	if t == EventSRQErr {
		err := fmt.Errorf("%w: SRQ error", ErrQPFatal)
		s.failure.CompareAndSwap(nil, &err)
	}
}

// Len returns the number of entries granted.
func (s *SRQ) Len() int { return s.maxWR }

// PostRecv posts receive work requests to the SRQ in one cgo call.
func (s *SRQ) PostRecv(wrs []RecvWR) (int, error) {
	if len(wrs) == 0 {
		return 0, nil
	}
	if err := s.g.enter(); err != nil {
		return 0, err
	}
	defer s.g.leave()
	for i := range wrs {
		if wrs[i].NumSGE > MaxSGE {
			return 0, fmt.Errorf("%w: receive work request %d: %d SGEs", ErrInvalid, i, wrs[i].NumSGE)
		}
	}
	var posted C.int
	rc := C.rk_post_recv(nil, s.srq, (*C.rk_recv_wr)(unsafe.Pointer(&wrs[0])), C.int(len(wrs)), &posted)
	if rc != 0 {
		return int(posted), callError("ibv_post_srq_recv", syscall.Errno(rc))
	}
	return int(posted), nil
}

// Close destroys the SRQ; close the QPs using it first. It is idempotent.
func (s *SRQ) Close() error {
	did := false
	err := s.g.shut(func() error {
		if rc := C.ibv_destroy_srq(s.srq); rc != 0 {
			return callError("ibv_destroy_srq", syscall.Errno(rc))
		}
		dropHandle(s.h)
		did = true
		return nil
	})
	if did {
		s.pd.c.kids.remove(s)
	}
	return err
}
