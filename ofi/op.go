package ofi

/*
#include "helpers.h"
*/
import "C"

import "fmt"

// OpKind names an operation.
type OpKind int

// Operation kinds.
const (
	OpSend          OpKind = C.RK_SEND           // fi_send / fi_senddata
	OpRecv          OpKind = C.RK_RECV           // fi_recv
	OpTSend         OpKind = C.RK_TSEND          // fi_tsend / fi_tsenddata
	OpTRecv         OpKind = C.RK_TRECV          // fi_trecv
	OpInject        OpKind = C.RK_INJECT         // fi_inject (no completion)
	OpTInject       OpKind = C.RK_TINJECT        // fi_tinject (no completion)
	OpRead          OpKind = C.RK_READ           // fi_read
	OpWrite         OpKind = C.RK_WRITE          // fi_write / fi_writedata
	OpInjectWrite   OpKind = C.RK_INJECT_WRITE   // fi_inject_write(data) (no completion)
	OpAtomic        OpKind = C.RK_ATOMIC         // fi_atomic
	OpFetchAtomic   OpKind = C.RK_FETCH_ATOMIC   // fi_fetch_atomic
	OpCompareAtomic OpKind = C.RK_COMPARE_ATOMIC // fi_compare_atomic
)

func (k OpKind) String() string {
	switch k {
	case OpSend:
		return "send"
	case OpRecv:
		return "recv"
	case OpTSend:
		return "tsend"
	case OpTRecv:
		return "trecv"
	case OpInject:
		return "inject"
	case OpTInject:
		return "tinject"
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpInjectWrite:
		return "inject_write"
	case OpAtomic:
		return "atomic"
	case OpFetchAtomic:
		return "fetch_atomic"
	case OpCompareAtomic:
		return "compare_atomic"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

func (k OpKind) isRecv() bool   { return k == OpRecv || k == OpTRecv }
func (k OpKind) isInject() bool { return k == OpInject || k == OpTInject || k == OpInjectWrite }
func (k OpKind) isAtomic() bool { return k == OpAtomic || k == OpFetchAtomic || k == OpCompareAtomic }
func (k OpKind) isRMA() bool    { return k == OpRead || k == OpWrite || k == OpInjectWrite }

// Op is one operation for Endpoint.Do. Set the inputs of its kind; Do fills the outputs.
type Op struct {
	Kind OpKind
	// Buf is the local buffer (send source, receive sink, RMA source or sink). It must lie in
	// MR when the provider requires local registration (FI_MR_LOCAL); inject ops copy it at once.
	Buf []byte
	MR  *MR
	// Peer is the destination (or, for receives, the source filter) on RDM endpoints; it is
	// ignored on connected MSG endpoints.
	Peer Addr
	// Target of RMA and atomics: the address (Region.Addr + offset) and key of remote memory.
	RemoteAddr, Key uint64
	// Tag and Ignore for tagged operations.
	Tag, Ignore uint64
	// Flags are extra libfabric operation flags; for writes, DeliveryComplete makes the write
	// complete only once its data is visible at the target (posted with fi_writemsg).
	Flags uint64
	// Data is remote CQ data sent with Send, TSend and Write when WithData is set.
	Data     uint64
	WithData bool
	// Atomics: one element of Datatype at RemoteAddr; Operand is the value (the swap value
	// for compare ops), Compare the expected value (CSWAP*) or mask (MSWAP).
	AtomicOp AtomicOp
	Datatype Datatype
	Operand  uint64
	Compare  uint64

	// Outputs.
	Result   uint64 // fetch and compare atomics: the value before the operation
	Len      int    // receives: bytes received
	RecvTag  uint64 // tagged receives: the sender's tag
	RecvData uint64 // receives: remote CQ data, if RecvHasData
	// RecvHasData reports that the message carried remote CQ data.
	RecvHasData bool
	// Src is the sender of a received message (CQ opened with Source), else AddrUnspec.
	Src Addr
	Err error
}
