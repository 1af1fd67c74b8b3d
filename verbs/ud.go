package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"sync"
	"syscall"
	"unsafe"
)

// GRHSize is the size of the Global Routing Header that precedes every UD receive.
const GRHSize = 40

// DefaultQKey is a conventional Q_Key for UD traffic.
const DefaultQKey = 0x11111111

// AHAttr addresses a UD destination.
type AHAttr struct {
	Port      int // default 1
	DGID      [16]byte
	SGIDIndex int
	HopLimit  int // default 64
	Global    bool
	DLID      uint16
	SL        int
}

// AH is an address handle (struct ibv_ah) for UD sends (SendWR.SetAH).
type AH struct {
	g  guard
	pd *PD
	ah *C.struct_ibv_ah
}

var (
	ahMu   sync.RWMutex
	ahLive = map[uint64]bool{}
)

func (a *AH) cptr() uintptr { return uintptr(unsafe.Pointer(a.ah)) }

// CreateAH creates an address handle.
func (p *PD) CreateAH(at AHAttr) (*AH, error) {
	if err := p.g.enter(); err != nil {
		return nil, err
	}
	defer p.g.leave()
	if at.Port == 0 {
		at.Port = 1
	}
	if at.HopLimit == 0 {
		at.HopLimit = 64
	}
	var a C.struct_ibv_ah_attr
	a.port_num = C.uint8_t(at.Port)
	a.dlid = C.uint16_t(at.DLID)
	a.sl = C.uint8_t(at.SL)
	if at.Global {
		a.is_global = 1
		*(*[16]byte)(unsafe.Pointer(&a.grh.dgid)) = at.DGID
		a.grh.sgid_index = C.uint8_t(at.SGIDIndex)
		a.grh.hop_limit = C.uint8_t(at.HopLimit)
	}
	ah, err := C.ibv_create_ah(p.pd, &a)
	if ah == nil {
		return nil, callError("ibv_create_ah", errnoOf(-1, err))
	}
	h := &AH{pd: p, ah: ah}
	ahMu.Lock()
	ahLive[uint64(h.cptr())] = true
	ahMu.Unlock()
	p.c.kids.add(h)
	return h, nil
}

// Close destroys the address handle. It is idempotent.
func (a *AH) Close() error {
	did := false
	err := a.g.shut(func() error {
		ahMu.Lock()
		delete(ahLive, uint64(a.cptr()))
		ahMu.Unlock()
		if rc := C.ibv_destroy_ah(a.ah); rc != 0 {
			return callError("ibv_destroy_ah", syscall.Errno(rc))
		}
		did = true
		return nil
	})
	if did {
		a.pd.c.kids.remove(a)
	}
	return err
}
