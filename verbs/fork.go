package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"syscall"
)

// ForkMode says how memory registrations survive fork(2) (enum ibv_fork_status).
type ForkMode int

// Fork modes.
const (
	// ForkDisabled: ibv_fork_init was not called and the kernel needs it (pre-5.13 kernels):
	// a child process may corrupt registered memory of the parent.
	ForkDisabled ForkMode = C.IBV_FORK_DISABLED
	// ForkEnabled: ibv_fork_init was called (madvise(MADV_DONTFORK) on registrations).
	ForkEnabled ForkMode = C.IBV_FORK_ENABLED
	// ForkUnneeded: the kernel copes with fork on its own (Linux >= 5.13); nothing to do.
	ForkUnneeded ForkMode = C.IBV_FORK_UNNEEDED
)

func (m ForkMode) String() string {
	switch m {
	case ForkDisabled:
		return "disabled"
	case ForkEnabled:
		return "enabled"
	case ForkUnneeded:
		return "unneeded"
	}
	return fmt.Sprintf("ForkMode(%d)", int(m))
}

var (
	forkOnce sync.Once
	forkErr  error
)

// ensureForkSafe runs once before the first verbs call of the process. Go starts processes
// with fork+exec (os/exec), so registered memory must be fork safe: when the kernel says
// IBV_FORK_UNNEEDED nothing is done, otherwise ibv_fork_init is called (it must run before any
// resource is created, hence here).
func ensureForkSafe() error {
	forkOnce.Do(func() {
		if ForkStatus() == ForkUnneeded {
			return
		}
		if rc := C.ibv_fork_init(); rc != 0 {
			forkErr = callError("ibv_fork_init", syscall.Errno(rc))
		}
	})
	return forkErr
}

// ForkStatus returns ibv_is_fork_initialized().
func ForkStatus() ForkMode { return ForkMode(C.ibv_is_fork_initialized()) }
