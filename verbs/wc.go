package verbs

/*
#include "shim.h"
*/
import "C"

// WCStatus is a work completion status (enum ibv_wc_status).
type WCStatus uint32

// Work completion statuses.
const (
	WCSuccess          WCStatus = C.IBV_WC_SUCCESS
	WCLocalLengthErr   WCStatus = C.IBV_WC_LOC_LEN_ERR
	WCLocalQPOpErr     WCStatus = C.IBV_WC_LOC_QP_OP_ERR
	WCLocalProtErr     WCStatus = C.IBV_WC_LOC_PROT_ERR
	WCFlushErr         WCStatus = C.IBV_WC_WR_FLUSH_ERR
	WCLocalAccessErr   WCStatus = C.IBV_WC_LOC_ACCESS_ERR
	WCRemoteInvReqErr  WCStatus = C.IBV_WC_REM_INV_REQ_ERR
	WCRemoteAccessErr  WCStatus = C.IBV_WC_REM_ACCESS_ERR
	WCRemoteOpErr      WCStatus = C.IBV_WC_REM_OP_ERR
	WCRetryExcErr      WCStatus = C.IBV_WC_RETRY_EXC_ERR
	WCRNRRetryExcErr   WCStatus = C.IBV_WC_RNR_RETRY_EXC_ERR
	WCBadRespErr       WCStatus = C.IBV_WC_BAD_RESP_ERR
	WCRemoteInvRdReqEr WCStatus = C.IBV_WC_REM_INV_RD_REQ_ERR
	WCRespTimeoutErr   WCStatus = C.IBV_WC_RESP_TIMEOUT_ERR
	WCFatalErr         WCStatus = C.IBV_WC_FATAL_ERR
	WCGeneralErr       WCStatus = C.IBV_WC_GENERAL_ERR
)

// WCOpcode is the operation a completion reports (enum ibv_wc_opcode).
type WCOpcode uint32

// Completion opcodes.
const (
	WCSend         WCOpcode = C.IBV_WC_SEND
	WCWrite        WCOpcode = C.IBV_WC_RDMA_WRITE
	WCRead         WCOpcode = C.IBV_WC_RDMA_READ
	WCCompareSwap  WCOpcode = C.IBV_WC_COMP_SWAP
	WCFetchAdd     WCOpcode = C.IBV_WC_FETCH_ADD
	WCRecv         WCOpcode = C.IBV_WC_RECV
	WCRecvWriteImm WCOpcode = C.IBV_WC_RECV_RDMA_WITH_IMM
	wcFlagWithImm           = C.IBV_WC_WITH_IMM
	wcFlagGRH               = C.IBV_WC_GRH
)

// WC is one work completion, copied out of struct ibv_wc as plain values.
type WC struct {
	// ID is the wr_id of the work request.
	ID     uint64
	Status WCStatus
	// Opcode is valid only when Status is WCSuccess (receive completions excepted).
	Opcode    WCOpcode
	VendorErr uint32
	// ByteLen is the number of bytes received (receive completions) or transferred.
	ByteLen uint32
	// Imm is the immediate data in host byte order (valid when HasImm).
	Imm uint32
	// QPNum is the local QP number; SrcQP the sender's QP number (UD).
	QPNum uint32
	SrcQP uint32
	Flags uint32
	// PKeyIndex, SLID, SL and DLIDPathBits are the IB addressing fields.
	PKeyIndex    uint16
	SLID         uint16
	SL           uint8
	DLIDPathBits uint8
	_            uint16
}

// HasImm reports whether the completion carries immediate data.
func (w WC) HasImm() bool { return w.Flags&wcFlagWithImm != 0 }

// HasGRH reports whether a UD receive buffer starts with a 40-byte GRH.
func (w WC) HasGRH() bool { return w.Flags&wcFlagGRH != 0 }

// Err returns nil for a successful completion, else a *WCError matching the status sentinel
// (ErrRemoteAccess, ErrFlushed, ...).
func (w WC) Err() error {
	if w.Status == WCSuccess {
		return nil
	}
	return &WCError{Status: w.Status, ID: w.ID, VendorErr: w.VendorErr}
}
