package verbs

import (
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// MemlockLimit returns the soft and hard RLIMIT_MEMLOCK of the process, in bytes
// (unix.RLIM_INFINITY for no limit).
func MemlockLimit() (soft, hard uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r); err != nil {
		return 0, 0, fmt.Errorf("verbs: getrlimit(RLIMIT_MEMLOCK): %w", err)
	}
	return r.Cur, r.Max, nil
}

// memlockError turns a registration failing with ENOMEM/EPERM into an ErrMemlock error that
// says what to raise.
func memlockError(op string, size uint64, errno syscall.Errno) error {
	soft, _, err := MemlockLimit()
	limit := "unknown"
	if err == nil {
		if soft == unix.RLIM_INFINITY {
			limit = "unlimited"
		} else {
			limit = strconv.FormatUint(soft, 10) + " bytes"
		}
	}
	return fmt.Errorf("%w: %s of %d bytes failed (%w); RLIMIT_MEMLOCK is %s: raise it "+
		"(ulimit -l unlimited in the shell, LimitMEMLOCK=infinity in a systemd unit, "+
		"--ulimit memlock=-1 for docker) or grant CAP_IPC_LOCK",
		ErrMemlock, op, size, errno, limit)
}
