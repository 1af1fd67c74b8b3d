package verbs

/*
#include <stddef.h>
#include "shim.h"
enum { rk_off_send_sge = offsetof(rk_send_wr, sge) };
enum { rk_off_send_raddr = offsetof(rk_send_wr, remote_addr) };
enum { rk_off_send_ah = offsetof(rk_send_wr, ah) };
enum { rk_off_send_rkey = offsetof(rk_send_wr, rkey) };
enum { rk_off_wc_imm = offsetof(rk_wc, imm) };
enum { rk_off_wc_sl = offsetof(rk_wc, sl) };
*/
import "C"

import "unsafe"

// MaxSGE is the number of scatter/gather elements a SendWR or RecvWR can carry.
const MaxSGE = C.RK_MAX_SGE

// Opcode is a send work request opcode (enum ibv_wr_opcode).
type Opcode uint32

// Send opcodes.
const (
	OpWrite        Opcode = C.IBV_WR_RDMA_WRITE
	OpWriteWithImm Opcode = C.IBV_WR_RDMA_WRITE_WITH_IMM
	OpSend         Opcode = C.IBV_WR_SEND
	OpSendWithImm  Opcode = C.IBV_WR_SEND_WITH_IMM
	OpRead         Opcode = C.IBV_WR_RDMA_READ
	OpCompareSwap  Opcode = C.IBV_WR_ATOMIC_CMP_AND_SWP
	OpFetchAdd     Opcode = C.IBV_WR_ATOMIC_FETCH_AND_ADD
	maxKnownOpcode        = OpFetchAdd
)

// SendFlags are ibv_send_flags.
type SendFlags uint32

// Send flags.
const (
	// Signaled asks for a completion for this work request.
	Signaled SendFlags = C.IBV_SEND_SIGNALED
	// Inline copies the data into the work request (no lkey needed; size <= MaxInline).
	Inline SendFlags = C.IBV_SEND_INLINE
	// Fence waits for prior RDMA reads and atomics before starting.
	Fence SendFlags = C.IBV_SEND_FENCE
	// Solicited sets the solicited-event bit.
	Solicited SendFlags = C.IBV_SEND_SOLICITED
)

// SGE is a scatter/gather element: a range of registered memory.
type SGE struct {
	Addr   uint64
	Length uint32
	LKey   uint32
}

// SendWR describes one send-queue work request as plain values (it holds no Go pointer).
// A slice of them is posted in one cgo call by QP.PostSend.
type SendWR struct {
	// ID is returned in the work completion (wr_id). Use an integer, never a pointer.
	ID     uint64
	Opcode Opcode
	Flags  SendFlags
	// NumSGE is how many entries of SG are used.
	NumSGE uint32
	// Imm is the immediate data (host byte order) for the *WithImm opcodes.
	Imm uint32
	SG  [MaxSGE]SGE
	// RemoteAddr and RKey name the peer memory for RDMA and atomic opcodes.
	RemoteAddr uint64
	// CompareAdd is the add operand (fetch-add) or the compare operand (compare-swap).
	CompareAdd uint64
	// Swap is the swap operand of compare-swap.
	Swap uint64
	ah   uint64
	RKey uint32
	// RemoteQPN and RemoteQKey address a UD peer (set AH with SetAH).
	RemoteQPN  uint32
	RemoteQKey uint32
	_          uint32
}

// RecvWR describes one receive work request as plain values.
type RecvWR struct {
	ID     uint64
	NumSGE uint32
	_      uint32
	SG     [MaxSGE]SGE
}

// SetAH sets the address handle of a UD send.
func (w *SendWR) SetAH(ah *AH) {
	if ah == nil {
		w.ah = 0
		return
	}
	w.ah = uint64(ah.cptr())
}

// Local sets a single scatter/gather element.
func (w *SendWR) Local(s SGE) *SendWR { w.SG[0], w.NumSGE = s, 1; return w }

// Local sets a single scatter/gather element.
func (w *RecvWR) Local(s SGE) *RecvWR { w.SG[0], w.NumSGE = s, 1; return w }

// Layout checks: the Go types must match the C structs the helpers read.
var (
	_ [unsafe.Sizeof(SendWR{}) - C.sizeof_rk_send_wr]byte
	_ [C.sizeof_rk_send_wr - unsafe.Sizeof(SendWR{})]byte
	_ [unsafe.Sizeof(RecvWR{}) - C.sizeof_rk_recv_wr]byte
	_ [C.sizeof_rk_recv_wr - unsafe.Sizeof(RecvWR{})]byte
	_ [unsafe.Sizeof(WC{}) - C.sizeof_rk_wc]byte
	_ [C.sizeof_rk_wc - unsafe.Sizeof(WC{})]byte
)

func init() {
	var w SendWR
	var c WC
	ok := unsafe.Offsetof(w.SG) == uintptr(C.rk_off_send_sge) &&
		unsafe.Offsetof(w.RemoteAddr) == uintptr(C.rk_off_send_raddr) &&
		unsafe.Offsetof(w.ah) == uintptr(C.rk_off_send_ah) &&
		unsafe.Offsetof(w.RKey) == uintptr(C.rk_off_send_rkey) &&
		unsafe.Offsetof(c.Imm) == uintptr(C.rk_off_wc_imm) &&
		unsafe.Offsetof(c.SL) == uintptr(C.rk_off_wc_sl)
	if !ok {
		panic("verbs: Go work-request layout does not match shim.h")
	}
}
