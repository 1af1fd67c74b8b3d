package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Sentinels for errors.Is. Every error the package returns for a libfabric failure is an
// *Error, which matches the sentinel of its class and the syscall.Errno it carries.
var (
	// ErrAccess: a remote protection error (wrong key, outside the region, missing access).
	ErrAccess = errors.New("ofi: remote access denied")
	// ErrTimeout: an operation or wait passed its deadline.
	ErrTimeout = errors.New("ofi: timed out")
	// ErrCanceled: an operation was canceled (context canceled or fi_cancel).
	ErrCanceled = errors.New("ofi: canceled")
	// ErrNotSupported: the provider lacks the capability, operation or datatype.
	ErrNotSupported = errors.New("ofi: not supported by provider")
	// ErrClosed: the object was closed.
	ErrClosed = errors.New("ofi: use of closed object")
	// ErrStopped: Endpoint.WaitOr's stop channel closed before the operation finished.
	ErrStopped = errors.New("ofi: wait stopped")
	// ErrInvalid: an argument was rejected (zero or oversized length, bad flags, misalignment).
	ErrInvalid = errors.New("ofi: invalid argument")
	// ErrNoData: getinfo found no matching provider.
	ErrNoData = errors.New("ofi: no matching provider")
	// ErrConnRefused: the peer refused or is not listening.
	ErrConnRefused = errors.New("ofi: connection refused")
	// ErrConnReset: the connection broke (peer gone, shutdown).
	ErrConnReset = errors.New("ofi: connection reset")
	// ErrTruncated: a received message did not fit the posted buffer.
	ErrTruncated = errors.New("ofi: message truncated")
	// ErrTooBig: a length beyond what the provider allows.
	ErrTooBig = errors.New("ofi: message too long")
	// ErrNoMem: out of resources (often the locked-memory limit).
	ErrNoMem = errors.New("ofi: out of memory or resources")

	// errAgain is FI_EAGAIN: flow control, handled inside (progress and retry), never returned.
	errAgain = errors.New("ofi: try again")
)

// Error is a libfabric failure: the call, libfabric's error number (an errno value), the
// provider's own errno and text when a completion reported them.
type Error struct {
	Op        string // the libfabric call or operation, e.g. "fi_write"
	Errno     int    // positive FI_E* / errno value
	ProvErrno int    // provider specific, 0 if none
	Text      string // provider text for ProvErrno, or fi_strerror
}

func (e *Error) Error() string {
	std := C.GoString(C.fi_strerror(C.int(e.Errno)))
	s := fmt.Sprintf("%s: %s (fi_errno %d)", e.Op, std, e.Errno)
	if e.ProvErrno != 0 || (e.Text != "" && e.Text != std) {
		s += fmt.Sprintf(" [provider errno %d: %s]", e.ProvErrno, e.Text)
	}
	return s
}

// Unwrap exposes the errno as a syscall.Errno where libfabric's number is one.
func (e *Error) Unwrap() error {
	if e.Errno > 0 && e.Errno < C.FI_ERRNO_OFFSET {
		return syscall.Errno(e.Errno)
	}
	return nil
}

// Is matches the package sentinels by error class.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrAccess:
		return e.Errno == C.FI_EACCES || e.Errno == C.FI_EPERM || e.Errno == C.FI_EKEYREJECTED ||
			(e.Errno == C.FI_EREMOTEIO || e.Errno == C.FI_EIO) && isAccessText(e.Text)
	case ErrTimeout:
		return e.Errno == C.FI_ETIMEDOUT
	case ErrCanceled:
		return e.Errno == C.FI_ECANCELED
	case ErrNotSupported:
		return e.Errno == C.FI_ENOSYS || e.Errno == C.FI_EOPNOTSUPP || e.Errno == C.FI_EBADFLAGS
	case ErrInvalid:
		return e.Errno == C.FI_EINVAL || e.Errno == C.FI_EBADF
	case ErrNoData:
		return e.Errno == C.FI_ENODATA
	case ErrConnRefused:
		return e.Errno == C.FI_ECONNREFUSED || e.Errno == C.FI_EHOSTUNREACH || e.Errno == C.FI_ENETUNREACH ||
			e.Errno == C.FI_EADDRNOTAVAIL
	case ErrConnReset:
		return e.Errno == C.FI_ECONNRESET || e.Errno == C.FI_ECONNABORTED || e.Errno == C.FI_ENOTCONN ||
			e.Errno == int(syscall.EPIPE) || e.Errno == int(syscall.ESHUTDOWN) || e.Errno == C.FI_EIO
	case ErrTruncated:
		return e.Errno == C.FI_ETRUNC || e.Errno == C.FI_ETOOSMALL
	case ErrTooBig:
		return e.Errno == C.FI_EMSGSIZE || e.Errno == C.FI_E2BIG
	case ErrNoMem:
		return e.Errno == C.FI_ENOMEM || e.Errno == C.FI_ENOSPC
	case errAgain:
		return e.Errno == C.FI_EAGAIN
	}
	return false
}

// isAccessText recognizes providers that report a remote protection fault as a generic
// (remote) I/O error with a telling text: verbs reports IBV_WC_REM_ACCESS_ERR as FI_EIO,
// "remote access error".
func isAccessText(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "access") || strings.Contains(s, "key") || strings.Contains(s, "protection")
}

// fiErr turns a libfabric return code (negative FI_E* value) into an *Error, nil for >= 0.
func fiErr(op string, rc C.ssize_t) error {
	if rc >= 0 {
		return nil
	}
	n := int(-rc)
	return &Error{Op: op, Errno: n, Text: C.GoString(C.fi_strerror(C.int(n)))}
}

// ctxErr maps a context's end to ErrCanceled or ErrTimeout, keeping the context error.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrCanceled, err)
}
