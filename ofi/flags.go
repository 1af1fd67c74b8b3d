package ofi

/*
#include "helpers.h"
*/
import "C"

import "strings"

// Caps is a set of FI_* capability bits (fi_info.caps).
type Caps uint64

// Capability bits.
const (
	CapMsg          Caps = C.FI_MSG
	CapRMA          Caps = C.FI_RMA
	CapTagged       Caps = C.FI_TAGGED
	CapAtomic       Caps = C.FI_ATOMIC
	CapRead         Caps = C.FI_READ
	CapWrite        Caps = C.FI_WRITE
	CapRecv         Caps = C.FI_RECV
	CapSend         Caps = C.FI_SEND
	CapRemoteRead   Caps = C.FI_REMOTE_READ
	CapRemoteWrite  Caps = C.FI_REMOTE_WRITE
	CapMultiRecv    Caps = C.FI_MULTI_RECV
	CapRemoteCQData Caps = C.FI_REMOTE_CQ_DATA
	CapSource       Caps = C.FI_SOURCE
	CapDirectedRecv Caps = C.FI_DIRECTED_RECV
	CapLocalComm    Caps = C.FI_LOCAL_COMM
	CapRemoteComm   Caps = C.FI_REMOTE_COMM
	CapRMAEvent     Caps = C.FI_RMA_EVENT
)

var capNames = []struct {
	c    Caps
	name string
}{
	{CapMsg, "MSG"}, {CapRMA, "RMA"}, {CapTagged, "TAGGED"}, {CapAtomic, "ATOMIC"},
	{CapRead, "READ"}, {CapWrite, "WRITE"}, {CapRecv, "RECV"}, {CapSend, "SEND"},
	{CapRemoteRead, "REMOTE_READ"}, {CapRemoteWrite, "REMOTE_WRITE"},
	{CapMultiRecv, "MULTI_RECV"}, {CapRemoteCQData, "REMOTE_CQ_DATA"}, {CapSource, "SOURCE"},
	{CapDirectedRecv, "DIRECTED_RECV"}, {CapLocalComm, "LOCAL_COMM"},
	{CapRemoteComm, "REMOTE_COMM"}, {CapRMAEvent, "RMA_EVENT"},
}

// String lists the bits like fi_info does, e.g. "MSG|RMA|ATOMIC".
func (c Caps) String() string {
	var parts []string
	for _, n := range capNames {
		if c&n.c != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, "|")
}

// EPType is an endpoint type (fi_ep_attr.type).
type EPType int

// Endpoint types.
const (
	EPUnspec EPType = C.FI_EP_UNSPEC
	EPMsg    EPType = C.FI_EP_MSG
	EPDgram  EPType = C.FI_EP_DGRAM
	EPRDM    EPType = C.FI_EP_RDM
)

func (t EPType) String() string {
	switch t {
	case EPMsg:
		return "FI_EP_MSG"
	case EPDgram:
		return "FI_EP_DGRAM"
	case EPRDM:
		return "FI_EP_RDM"
	}
	return "FI_EP_UNSPEC"
}

// MRMode is a set of FI_MR_* bits a provider requires of the application.
type MRMode int

// Memory registration mode bits.
const (
	MRLocal     MRMode = C.FI_MR_LOCAL
	MRRaw       MRMode = C.FI_MR_RAW
	MRVirtAddr  MRMode = C.FI_MR_VIRT_ADDR
	MRAllocated MRMode = C.FI_MR_ALLOCATED
	MRProvKey   MRMode = C.FI_MR_PROV_KEY
	MRMMUNotify MRMode = C.FI_MR_MMU_NOTIFY
	MRRMAEvent  MRMode = C.FI_MR_RMA_EVENT
	MREndpoint  MRMode = C.FI_MR_ENDPOINT
	MRHMem      MRMode = C.FI_MR_HMEM

	// MRModeSupported is every bit this package handles for its users; it is the default
	// mr_mode of Hints.
	MRModeSupported = MRLocal | MRVirtAddr | MRAllocated | MRProvKey | MREndpoint
)

func (m MRMode) String() string {
	var parts []string
	for _, n := range []struct {
		m    MRMode
		name string
	}{{MRLocal, "LOCAL"}, {MRRaw, "RAW"}, {MRVirtAddr, "VIRT_ADDR"}, {MRAllocated, "ALLOCATED"},
		{MRProvKey, "PROV_KEY"}, {MRMMUNotify, "MMU_NOTIFY"}, {MRRMAEvent, "RMA_EVENT"},
		{MREndpoint, "ENDPOINT"}, {MRHMem, "HMEM"}} {
		if m&n.m != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, "|")
}

// Progress is a progress model (fi_domain_attr.data_progress, control_progress).
type Progress int

// Progress models.
const (
	ProgressUnspec Progress = C.FI_PROGRESS_UNSPEC
	ProgressAuto   Progress = C.FI_PROGRESS_AUTO
	ProgressManual Progress = C.FI_PROGRESS_MANUAL
)

func (p Progress) String() string {
	switch p {
	case ProgressAuto:
		return "AUTO"
	case ProgressManual:
		return "MANUAL"
	}
	return "UNSPEC"
}

// Threading is a threading model (fi_domain_attr.threading).
type Threading int

// Threading models.
const (
	ThreadUnspec     Threading = C.FI_THREAD_UNSPEC
	ThreadSafe       Threading = C.FI_THREAD_SAFE
	ThreadFID        Threading = C.FI_THREAD_FID
	ThreadDomain     Threading = C.FI_THREAD_DOMAIN
	ThreadCompletion Threading = C.FI_THREAD_COMPLETION
	ThreadEndpoint   Threading = C.FI_THREAD_ENDPOINT
)

func (t Threading) String() string {
	switch t {
	case ThreadSafe:
		return "SAFE"
	case ThreadFID:
		return "FID"
	case ThreadDomain:
		return "DOMAIN"
	case ThreadCompletion:
		return "COMPLETION"
	case ThreadEndpoint:
		return "ENDPOINT"
	}
	return "UNSPEC"
}

// Access is a set of memory-region access bits (fi_mr_reg access).
type Access uint64

// Access bits for RegMR.
const (
	AccessSend        Access = C.FI_SEND
	AccessRecv        Access = C.FI_RECV
	AccessRead        Access = C.FI_READ
	AccessWrite       Access = C.FI_WRITE
	AccessRemoteRead  Access = C.FI_REMOTE_READ
	AccessRemoteWrite Access = C.FI_REMOTE_WRITE

	// AccessLocal is everything a local buffer needs as source or sink of operations.
	AccessLocal = AccessSend | AccessRecv | AccessRead | AccessWrite
	// AccessRemote lets peers read, write and run atomics on the region.
	AccessRemote = AccessRemoteRead | AccessRemoteWrite
)

// AtomicOp is a libfabric atomic operation (enum fi_op).
type AtomicOp int

// Atomic operations.
const (
	OpMin         AtomicOp = C.FI_MIN
	OpMax         AtomicOp = C.FI_MAX
	OpSum         AtomicOp = C.FI_SUM
	OpProd        AtomicOp = C.FI_PROD
	OpBor         AtomicOp = C.FI_BOR
	OpBand        AtomicOp = C.FI_BAND
	OpBxor        AtomicOp = C.FI_BXOR
	OpAtomicRead  AtomicOp = C.FI_ATOMIC_READ
	OpAtomicWrite AtomicOp = C.FI_ATOMIC_WRITE
	OpCswap       AtomicOp = C.FI_CSWAP
	OpCswapNE     AtomicOp = C.FI_CSWAP_NE
	OpCswapLE     AtomicOp = C.FI_CSWAP_LE
	OpCswapLT     AtomicOp = C.FI_CSWAP_LT
	OpCswapGE     AtomicOp = C.FI_CSWAP_GE
	OpCswapGT     AtomicOp = C.FI_CSWAP_GT
	OpMswap       AtomicOp = C.FI_MSWAP
)

var atomicOpNames = map[AtomicOp]string{
	OpMin: "MIN", OpMax: "MAX", OpSum: "SUM", OpProd: "PROD", OpBor: "BOR", OpBand: "BAND",
	OpBxor: "BXOR", OpAtomicRead: "ATOMIC_READ", OpAtomicWrite: "ATOMIC_WRITE", OpCswap: "CSWAP",
	OpCswapNE: "CSWAP_NE", OpCswapLE: "CSWAP_LE", OpCswapLT: "CSWAP_LT", OpCswapGE: "CSWAP_GE",
	OpCswapGT: "CSWAP_GT", OpMswap: "MSWAP",
}

func (o AtomicOp) String() string {
	if s, ok := atomicOpNames[o]; ok {
		return s
	}
	return "OP(?)"
}

// isCompare reports whether o is a compare-atomic (fi_compare_atomic) operation.
func (o AtomicOp) isCompare() bool { return o >= OpCswap && o <= OpMswap }

// Datatype is an atomic operand type (enum fi_datatype).
type Datatype int

// Atomic datatypes.
const (
	Int8   Datatype = C.FI_INT8
	Uint8  Datatype = C.FI_UINT8
	Int16  Datatype = C.FI_INT16
	Uint16 Datatype = C.FI_UINT16
	Int32  Datatype = C.FI_INT32
	Uint32 Datatype = C.FI_UINT32
	Int64  Datatype = C.FI_INT64
	Uint64 Datatype = C.FI_UINT64
)

// Size is the width of one element in bytes (0 for types this package does not move).
func (d Datatype) Size() int {
	switch d {
	case Int8, Uint8:
		return 1
	case Int16, Uint16:
		return 2
	case Int32, Uint32:
		return 4
	case Int64, Uint64:
		return 8
	}
	return 0
}

func (d Datatype) String() string {
	return map[Datatype]string{Int8: "INT8", Uint8: "UINT8", Int16: "INT16", Uint16: "UINT16",
		Int32: "INT32", Uint32: "UINT32", Int64: "INT64", Uint64: "UINT64"}[d]
}

// Addr is a peer address in an address vector (fi_addr_t).
type Addr uint64

// AddrUnspec is FI_ADDR_UNSPEC: the connected peer of a MSG endpoint, or any source.
const AddrUnspec Addr = Addr(^uint64(0))
