package bench

/*
#cgo pkg-config: libfabric
#cgo LDFLAGS: -lpthread
#include "cref.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/rdmakit/rdmakit/ofi"
)

// cPair is the C reference: two RDM endpoints opened and driven entirely from C.
type cPair struct {
	a, b *C.rkb_side
}

func openCPair(prov string, size int) (*cPair, error) {
	p := &cPair{a: (*C.rkb_side)(C.calloc(1, C.sizeof_rkb_side)), b: (*C.rkb_side)(C.calloc(1, C.sizeof_rkb_side))}
	cp := C.CString(prov)
	defer C.free(unsafe.Pointer(cp))
	for _, s := range []*C.rkb_side{p.a, p.b} {
		if rc := C.rkb_open(s, cp, C.size_t(size)); rc != 0 {
			p.close()
			return nil, fmt.Errorf("C reference on %s: open: %s", prov, C.GoString(C.fi_strerror(-rc)))
		}
	}
	if rc := C.rkb_pair(p.a, p.b); rc != 0 {
		p.close()
		return nil, fmt.Errorf("C reference on %s: pair: %s", prov, C.GoString(C.fi_strerror(-rc)))
	}
	return p, nil
}

func (p *cPair) close() {
	C.rkb_close(p.a)
	C.rkb_close(p.b)
	C.free(unsafe.Pointer(p.a))
	C.free(unsafe.Pointer(p.b))
}

func cResult(rc C.int64_t) (time.Duration, error) {
	if rc < 0 {
		return 0, &ofi.Error{Op: "C reference", Errno: int(-rc), Text: C.GoString(C.fi_strerror(C.int(-rc)))}
	}
	return time.Duration(rc), nil
}

// rma times iters writes (or reads) of size bytes with window in flight.
func (p *cPair) rma(size, iters, window int, read bool) (time.Duration, error) {
	C.rkb_start(p.b, 0)
	defer C.rkb_stop(p.b)
	rd := C.int(0)
	if read {
		rd = 1
	}
	return cResult(C.rkb_rma(p.a, C.size_t(size), C.int(iters), C.int(window), rd))
}

// pingpong times iters round trips of size-byte messages.
func (p *cPair) pingpong(size, iters int) (time.Duration, error) {
	C.rkb_start(p.b, 1)
	defer C.rkb_stop(p.b)
	return cResult(C.rkb_pingpong(p.a, C.size_t(size), C.int(iters)))
}

// fetchAdd times iters fetch-adds with window in flight.
func (p *cPair) fetchAdd(iters, window int) (time.Duration, error) {
	C.rkb_start(p.b, 0)
	defer C.rkb_stop(p.b)
	return cResult(C.rkb_fadd(p.a, C.int(iters), C.int(window)))
}
