package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/rdmakit/rdmakit/internal/region"
)

// Region is a remote memory region descriptor {addr, key, len}: what a peer needs to reach
// registered memory. MarshalBinary/UnmarshalBinary give its 28-byte wire form.
type Region = region.Region

// MR is a registered memory region (fi_mr_reg).
type MR struct {
	node
	c      *C.struct_fid_mr
	domain *Domain
	buf    []byte
	access Access
	// desc and key are fi_mr_desc and fi_mr_key, read once the region is usable (RegMR, or
	// Enable with FI_MR_ENDPOINT): data-path posts read them per operation, and both are
	// static inline in libfabric, so each read would be a cgo call of its own.
	desc uintptr
	key  uint64
}

// RegMR registers buf, which must be off-heap memory (see Alloc), for the given access. The
// domain's mr_mode is handled here: a key is requested unless the provider picks it
// (FI_MR_PROV_KEY); with FI_MR_ENDPOINT the region must be bound with Bind and Enable'd.
func (d *Domain) RegMR(buf []byte, access Access) (*MR, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("%w: empty buffer", ErrInvalid)
	}
	if d.isClosed() {
		return nil, ErrClosed
	}
	m := &MR{domain: d, buf: buf, access: access}
	key := d.nextKey.Add(1)
	d.quiet.RLock()
	rc := C.fi_mr_reg(d.c, unsafe.Pointer(unsafe.SliceData(buf)), C.size_t(len(buf)), C.uint64_t(access), 0,
		C.uint64_t(key), 0, &m.c, nil)
	d.quiet.RUnlock()
	if rc != 0 {
		err := fiErr("fi_mr_reg", C.ssize_t(rc))
		return nil, fmt.Errorf("register %d bytes: %w", len(buf), err)
	}
	m.load()
	if err := m.init(&d.node, rankMR, func() error {
		d.quiet.RLock()
		defer d.quiet.RUnlock()
		return fiErr("fi_close(mr)", C.ssize_t(C.fi_close(&m.c.fid)))
	}); err != nil {
		C.fi_close(&m.c.fid)
		return nil, err
	}
	return m, nil
}

// Bind binds the region to an endpoint (needed when the domain's mr_mode has FI_MR_ENDPOINT).
func (m *MR) Bind(ep *Endpoint) error {
	if !m.enter() {
		return ErrClosed
	}
	defer m.exit()
	if !ep.enter() {
		return ErrClosed
	}
	defer ep.exit()
	return fiErr("fi_mr_bind", C.ssize_t(C.fi_mr_bind(m.c, &ep.c.fid, 0)))
}

// Enable enables a region bound with Bind.
func (m *MR) Enable() error {
	if !m.enter() {
		return ErrClosed
	}
	defer m.exit()
	if err := fiErr("fi_mr_enable", C.ssize_t(C.fi_mr_enable(m.c))); err != nil {
		return err
	}
	m.load() // a provider may assign the key only now
	return nil
}

// load reads the region's descriptor and key from libfabric into m.
func (m *MR) load() {
	m.desc = uintptr(C.fi_mr_desc(m.c))
	m.key = uint64(C.fi_mr_key(m.c))
}

// Key is the remote key peers use (fi_mr_key).
func (m *MR) Key() uint64 { return m.key }

// Desc is the local descriptor (fi_mr_desc) passed with local buffers.
func (m *MR) Desc() uintptr { return m.desc }

// Bytes is the registered memory.
func (m *MR) Bytes() []byte { return m.buf }

// Region is the descriptor to send to peers. Its Addr is the buffer's virtual address where
// the provider addresses remote memory virtually (FI_MR_VIRT_ADDR) and 0 where it uses
// offsets, so a peer always targets Region.Addr + offset.
func (m *MR) Region() Region {
	r := Region{Key: m.Key(), Len: uint64(len(m.buf))}
	if m.domain.info.MRMode()&MRVirtAddr != 0 {
		r.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.buf))))
	}
	return r
}

// contains reports whether b lies inside the registered memory.
func (m *MR) contains(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= base && p+uintptr(len(b)) <= base+uintptr(len(m.buf))
}

// Close deregisters the region. Idempotent.
func (m *MR) Close() error { return m.close() }
