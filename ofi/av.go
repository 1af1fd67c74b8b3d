package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// AVType selects the address vector organization.
type AVType int

// Address vector types.
const (
	AVUnspec AVType = C.FI_AV_UNSPEC
	AVMap    AVType = C.FI_AV_MAP
	AVTable  AVType = C.FI_AV_TABLE
)

// AV is an address vector (fi_av_open): it turns peer addresses into Addr handles for RDM
// endpoints.
type AV struct {
	node
	c      *C.struct_fid_av
	domain *Domain
}

// OpenAV opens an address vector for about count peers.
func (d *Domain) OpenAV(typ AVType, count int) (*AV, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	a := &AV{domain: d}
	var attr C.struct_fi_av_attr
	attr._type = C.enum_fi_av_type(typ)
	attr.count = C.size_t(count)
	if rc := C.fi_av_open(d.c, &attr, &a.c, nil); rc != 0 {
		return nil, fiErr("fi_av_open", C.ssize_t(rc))
	}
	if err := a.init(&d.node, rankQueue, func() error {
		return fiErr("fi_close(av)", C.ssize_t(C.fi_close(&a.c.fid)))
	}); err != nil {
		C.fi_close(&a.c.fid)
		return nil, err
	}
	return a, nil
}

// Insert adds one address (as Endpoint.Name returned it) and returns its handle.
func (a *AV) Insert(addr []byte) (Addr, error) {
	if !a.enter() {
		return AddrUnspec, ErrClosed
	}
	defer a.exit()
	if len(addr) == 0 {
		return AddrUnspec, fmt.Errorf("%w: empty address", ErrInvalid)
	}
	ca := C.CBytes(addr)
	defer C.free(ca)
	var out C.fi_addr_t
	a.domain.quiet.RLock()
	rc := C.fi_av_insert(a.c, ca, 1, &out, 0, nil)
	a.domain.quiet.RUnlock()
	if rc != 1 {
		if rc >= 0 {
			rc = -C.FI_EINVAL
		}
		return AddrUnspec, fmt.Errorf("insert address %x: %w", addr, fiErr("fi_av_insert", C.ssize_t(rc)))
	}
	return Addr(out), nil
}

// InsertService resolves node and service (like "127.0.0.1", "7471") into a handle.
func (a *AV) InsertService(node, service string) (Addr, error) {
	if !a.enter() {
		return AddrUnspec, ErrClosed
	}
	defer a.exit()
	cn, cs := C.CString(node), C.CString(service)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cs))
	var out C.fi_addr_t
	a.domain.quiet.RLock()
	rc := C.fi_av_insertsvc(a.c, cn, cs, &out, 0, nil)
	a.domain.quiet.RUnlock()
	if rc != 1 {
		if rc >= 0 {
			rc = -C.FI_EINVAL
		}
		return AddrUnspec, fmt.Errorf("insert %s:%s: %w", node, service, fiErr("fi_av_insertsvc", C.ssize_t(rc)))
	}
	return Addr(out), nil
}

// Lookup returns the address stored for a handle.
func (a *AV) Lookup(h Addr) ([]byte, error) {
	if !a.enter() {
		return nil, ErrClosed
	}
	defer a.exit()
	buf := C.malloc(256)
	defer C.free(buf)
	n := C.size_t(256)
	if rc := C.fi_av_lookup(a.c, C.fi_addr_t(h), buf, &n); rc != 0 {
		return nil, fiErr("fi_av_lookup", C.ssize_t(rc))
	}
	return C.GoBytes(buf, C.int(min(n, 256))), nil
}

// Remove drops a handle.
func (a *AV) Remove(h Addr) error {
	if !a.enter() {
		return ErrClosed
	}
	defer a.exit()
	ch := C.fi_addr_t(h)
	return fiErr("fi_av_remove", C.ssize_t(C.fi_av_remove(a.c, &ch, 1, 0)))
}

// String renders an address in the provider's text form (fi_av_straddr).
func (a *AV) String(addr []byte) string {
	if !a.enter() {
		return ""
	}
	defer a.exit()
	if len(addr) == 0 {
		return ""
	}
	ca := C.CBytes(addr)
	defer C.free(ca)
	buf := (*[128]C.char)(C.malloc(128))
	defer C.free(unsafe.Pointer(buf))
	n := C.size_t(128)
	C.fi_av_straddr(a.c, ca, &buf[0], &n)
	return C.GoString(&buf[0])
}

// Close closes the address vector. Idempotent.
func (a *AV) Close() error { return a.close() }
