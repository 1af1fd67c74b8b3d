package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"syscall"
)

// Access are memory-region access flags (enum ibv_access_flags).
type Access int

// Access flags.
const (
	AccessLocalWrite   Access = C.IBV_ACCESS_LOCAL_WRITE
	AccessRemoteWrite  Access = C.IBV_ACCESS_REMOTE_WRITE
	AccessRemoteRead   Access = C.IBV_ACCESS_REMOTE_READ
	AccessRemoteAtomic Access = C.IBV_ACCESS_REMOTE_ATOMIC
	// AccessOnDemand asks for on-demand paging. Register drops it (and pins instead) when the
	// device has no RC ODP support.
	AccessOnDemand Access = C.IBV_ACCESS_ON_DEMAND
	// AccessAll is local write + remote read/write/atomic.
	AccessAll = AccessLocalWrite | AccessRemoteWrite | AccessRemoteRead | AccessRemoteAtomic
)

// MR is a registered memory region (struct ibv_mr) over off-heap Memory.
type MR struct {
	g      guard
	pd     *PD
	mr     *C.struct_ibv_mr
	mem    *Memory
	addr   uint64
	length uint64
	lkey   uint32
	rkey   uint32
	access Access
	odp    bool
}

// Register registers all of m with access. When AccessOnDemand is asked and the device
// supports RC ODP the region is not pinned; otherwise it is pinned, and a failure caused by
// RLIMIT_MEMLOCK returns an error matching ErrMemlock that says what to raise.
func (p *PD) Register(m *Memory, access Access) (*MR, error) {
	return p.RegisterRange(m, 0, m.Len(), access)
}

// RegisterRange registers length bytes of m starting at off.
func (p *PD) RegisterRange(m *Memory, off, length int, access Access) (*MR, error) {
	if err := p.g.enter(); err != nil {
		return nil, err
	}
	defer p.g.leave()
	if err := m.g.enter(); err != nil {
		return nil, err
	}
	defer m.g.leave()
	if off < 0 || length <= 0 || off+length > m.Len() {
		return nil, fmt.Errorf("%w: register [%d, %d) of %d bytes", ErrInvalid, off, off+length, m.Len())
	}
	if access&AccessOnDemand != 0 && !p.c.attr.ODP() {
		access &^= AccessOnDemand
	}
	addr := uint64(m.Addr()) + uint64(off)
	mr, err := C.rk_reg_mr(p.pd, C.uint64_t(addr), C.uint64_t(length), C.int(access))
	if mr == nil && access&AccessOnDemand != 0 {
		// ODP advertised but refused for this range: fall back to pinning.
		access &^= AccessOnDemand
		mr, err = C.rk_reg_mr(p.pd, C.uint64_t(addr), C.uint64_t(length), C.int(access))
	}
	if mr == nil {
		e := errnoOf(-1, err)
		if e == syscall.ENOMEM || e == syscall.EPERM {
			return nil, memlockError("ibv_reg_mr", uint64(length), e)
		}
		return nil, callError(fmt.Sprintf("ibv_reg_mr(%d bytes, access %#x)", length, int(access)), e)
	}
	r := &MR{pd: p, mr: mr, mem: m, addr: addr, length: uint64(length), lkey: uint32(mr.lkey),
		rkey: uint32(mr.rkey), access: access, odp: access&AccessOnDemand != 0}
	p.c.kids.add(r)
	return r, nil
}

// Addr returns the registered start address.
func (r *MR) Addr() uint64 { return r.addr }

// Len returns the registered length.
func (r *MR) Len() uint64 { return r.length }

// LKey returns the local key.
func (r *MR) LKey() uint32 { return r.lkey }

// RKey returns the remote key.
func (r *MR) RKey() uint32 { return r.rkey }

// Access returns the access flags in force (AccessOnDemand only if ODP is used).
func (r *MR) Access() Access { return r.access }

// ODP reports whether the region uses on-demand paging instead of pinning.
func (r *MR) ODP() bool { return r.odp }

// Bytes returns the registered range of the underlying Memory.
func (r *MR) Bytes() []byte {
	b := r.mem.Bytes()
	if b == nil {
		return nil
	}
	off := r.addr - uint64(r.mem.Addr())
	return b[off : off+r.length]
}

// SGE returns the scatter/gather element for [off, off+n) of the region. It does not check
// bounds: the device does, and reports ErrLocalProtection.
func (r *MR) SGE(off, n int) SGE {
	return SGE{Addr: r.addr + uint64(off), Length: uint32(n), LKey: r.lkey}
}

// Close deregisters the region (the Memory stays mapped). It is idempotent.
func (r *MR) Close() error {
	err := r.g.shut(func() error {
		if rc := C.ibv_dereg_mr(r.mr); rc != 0 {
			return callError("ibv_dereg_mr", syscall.Errno(rc))
		}
		return nil
	})
	if err == nil {
		r.pd.c.kids.remove(r)
	}
	return err
}
