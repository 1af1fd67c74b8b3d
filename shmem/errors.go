package shmem

import "errors"

// Errors returned by the package; they match with errors.Is. Errors from the fabric are
// wrapped, so fabric sentinels (fabric.ErrTimeout, fabric.ErrConnReset, ...) match as well.
var (
	// ErrUnknownNode is an operation on a node that is not a member of the segment.
	ErrUnknownNode = errors.New("shmem: unknown node")
	// ErrOutOfRange is an offset outside the target node's portion.
	ErrOutOfRange = errors.New("shmem: offset outside the portion")
	// ErrMisaligned is a word offset that is not a multiple of 8.
	ErrMisaligned = errors.New("shmem: offset not 8-byte aligned")
	// ErrWidth is a bit field that does not fit a 64-bit word, or a value wider than its field.
	ErrWidth = errors.New("shmem: bad bit-field width")
	// ErrMemberDown is an operation on the portion of a member that cannot be reached (it died,
	// restarted or its connection failed).
	ErrMemberDown = errors.New("shmem: member unreachable")
	// ErrMembership is a failure to form the segment: a member refused us, speaks another
	// protocol or belongs to a differently configured segment.
	ErrMembership = errors.New("shmem: membership")
	// ErrConfig is an invalid Config.
	ErrConfig = errors.New("shmem: bad configuration")
	// ErrClosed is the use of a closed segment.
	ErrClosed = errors.New("shmem: segment closed")
	// ErrFull is a Bitmap with no free ID.
	ErrFull = errors.New("shmem: no free ID")
	// ErrNotHeld is the release of an ID or a lock that the caller does not hold.
	ErrNotHeld = errors.New("shmem: not held")
	// ErrLockLost is a lease that lapsed or was taken over before the holder renewed or
	// released it.
	ErrLockLost = errors.New("shmem: lease lost")
)
