package verbs

/*
#cgo LDFLAGS: -libverbs -lrdmacm
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors. Errors returned by this package wrap one of these (match with errors.Is)
// and, for failing library calls, the syscall.Errno that caused them.
var (
	// ErrClosed reports use of an object after Close.
	ErrClosed = errors.New("verbs: use of closed object")
	// ErrNotSupported reports a feature the device or library lacks.
	ErrNotSupported = errors.New("verbs: not supported")
	// ErrNoDevice reports that no RDMA device (or not the one asked for) exists.
	ErrNoDevice = errors.New("verbs: no such RDMA device")
	// ErrMemlock reports a memory registration refused because of RLIMIT_MEMLOCK.
	ErrMemlock = errors.New("verbs: memory registration exceeds the locked-memory limit")
	// ErrTimeout reports a deadline that passed (it also matches context.DeadlineExceeded when a
	// context's deadline caused it).
	ErrTimeout = errors.New("verbs: timeout")
	// ErrCanceled reports a canceled context (it also matches context.Canceled).
	ErrCanceled = errors.New("verbs: canceled")
	// ErrInvalid reports bad arguments rejected before reaching the library.
	ErrInvalid = errors.New("verbs: invalid argument")
	// ErrCQOverrun reports a completion queue that overflowed (IBV_EVENT_CQ_ERR): completions
	// were lost and the queue is unusable.
	ErrCQOverrun = errors.New("verbs: completion queue overrun")
	// ErrQPFatal reports an asynchronous fatal error on a queue pair.
	ErrQPFatal = errors.New("verbs: queue pair fatal error")
	// ErrRejected reports a connection request refused by the peer (see RejectError).
	ErrRejected = errors.New("verbs: connection rejected")
	// ErrDisconnected reports a connection the peer (or the network) ended.
	ErrDisconnected = errors.New("verbs: disconnected")
	// ErrUnreachable reports an address or route that could not be resolved.
	ErrUnreachable = errors.New("verbs: address or route unreachable")

	// Work-completion status sentinels (WCError matches them through errors.Is).

	// ErrLocalLength is IBV_WC_LOC_LEN_ERR.
	ErrLocalLength = errors.New("verbs: local length error")
	// ErrLocalQPOp is IBV_WC_LOC_QP_OP_ERR.
	ErrLocalQPOp = errors.New("verbs: local QP operation error")
	// ErrLocalProtection is IBV_WC_LOC_PROT_ERR.
	ErrLocalProtection = errors.New("verbs: local protection error")
	// ErrFlushed is IBV_WC_WR_FLUSH_ERR: the work request was flushed because the QP is in ERR.
	ErrFlushed = errors.New("verbs: work request flushed")
	// ErrLocalAccess is IBV_WC_LOC_ACCESS_ERR.
	ErrLocalAccess = errors.New("verbs: local access error")
	// ErrRemoteInvalidRequest is IBV_WC_REM_INV_REQ_ERR (e.g. misaligned atomic, bad length).
	ErrRemoteInvalidRequest = errors.New("verbs: remote invalid request")
	// ErrRemoteAccess is IBV_WC_REM_ACCESS_ERR (bad rkey, out of bounds, missing permission).
	ErrRemoteAccess = errors.New("verbs: remote access error")
	// ErrRemoteOp is IBV_WC_REM_OP_ERR.
	ErrRemoteOp = errors.New("verbs: remote operation error")
	// ErrRetryExceeded is IBV_WC_RETRY_EXC_ERR (the peer stopped answering).
	ErrRetryExceeded = errors.New("verbs: transport retry counter exceeded")
	// ErrRNRRetryExceeded is IBV_WC_RNR_RETRY_EXC_ERR (no receive posted at the peer).
	ErrRNRRetryExceeded = errors.New("verbs: RNR retry counter exceeded")
	// ErrBadResponse is IBV_WC_BAD_RESP_ERR.
	ErrBadResponse = errors.New("verbs: bad response")
	// ErrWCFatal covers the remaining error statuses (fatal, general, ...).
	ErrWCFatal = errors.New("verbs: work completion error")
)

var wcSentinel = map[WCStatus]error{
	WCLocalLengthErr:   ErrLocalLength,
	WCLocalQPOpErr:     ErrLocalQPOp,
	WCLocalProtErr:     ErrLocalProtection,
	WCFlushErr:         ErrFlushed,
	WCLocalAccessErr:   ErrLocalAccess,
	WCRemoteInvReqErr:  ErrRemoteInvalidRequest,
	WCRemoteAccessErr:  ErrRemoteAccess,
	WCRemoteOpErr:      ErrRemoteOp,
	WCRetryExcErr:      ErrRetryExceeded,
	WCRNRRetryExcErr:   ErrRNRRetryExceeded,
	WCBadRespErr:       ErrBadResponse,
	WCRespTimeoutErr:   ErrTimeout,
	WCRemoteInvRdReqEr: ErrRemoteInvalidRequest,
}

// WCError is the error of a failed work completion. Its text is ibv_wc_status_str's.
type WCError struct {
	Status    WCStatus
	ID        uint64 // wr_id of the failed work request
	VendorErr uint32
}

func (e *WCError) Error() string {
	return fmt.Sprintf("verbs: work request %d: %s (status %d, vendor error %#x)", e.ID, e.Status, int(e.Status), e.VendorErr)
}

// Unwrap returns the sentinel that matches the status.
func (e *WCError) Unwrap() error {
	if s, ok := wcSentinel[e.Status]; ok {
		return s
	}
	return ErrWCFatal
}

// String returns ibv_wc_status_str's text for the status.
func (s WCStatus) String() string { return C.GoString(C.ibv_wc_status_str(uint32(s))) }

// callError wraps a failing library call's errno.
func callError(op string, errno syscall.Errno) error {
	if errno == 0 {
		errno = syscall.EIO
	}
	switch errno {
	case syscall.EOPNOTSUPP, syscall.ENOSYS:
		return fmt.Errorf("verbs: %s: %w (%w)", op, errno, ErrNotSupported)
	case syscall.ETIMEDOUT:
		return fmt.Errorf("verbs: %s: %w (%w)", op, errno, ErrTimeout)
	}
	return fmt.Errorf("verbs: %s: %w", op, errno)
}

// errnoOf turns a cgo call's err (or a returned errno int) into a syscall.Errno.
func errnoOf(rc C.int, err error) syscall.Errno {
	if rc > 0 {
		return syscall.Errno(rc)
	}
	if rc < 0 && rc != -1 {
		return syscall.Errno(-rc)
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// ctxError maps a done context to ErrTimeout/ErrCanceled, keeping the context's own error.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrCanceled, err)
}
