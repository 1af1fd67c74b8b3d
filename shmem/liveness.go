package shmem

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// selfPID is this process's id: members it hosts need no liveness check.
var selfPID = os.Getpid()

// process watches a same-host member's process. Through the beacon the process advertised
// (beacon.go) a check is one memory load that sees the death as soon as the kernel starts
// tearing the process down. Without one, it asks the pidfd (Linux 5.3+), which sees the
// process exit even while it is an unreaped zombie and cannot be fooled by a recycled pid, or
// failing that kill(pid, 0), which sees neither; each is a syscall per check.
type process struct {
	pid    int
	beacon *peerBeacon     // nil: none
	pidfd  *os.File        // nil: no pidfd
	rc     syscall.RawConn // pidfd's, made once: exited runs before every operation
}

// watchProcess starts watching pid, whose beacon is fd beacon (-1: none); 0 and our own pid
// need no watching (nil).
func watchProcess(pid, beacon int) *process {
	if pid == 0 || pid == selfPID {
		return nil
	}
	p := &process{pid: pid}
	if beacon >= 0 {
		if b, err := openBeacon(pid, beacon); err == nil {
			p.beacon = b
			return p
		}
	}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		f := os.NewFile(uintptr(fd), "pidfd")
		if rc, err := f.SyscallConn(); err == nil {
			p.pidfd, p.rc = f, rc
		} else {
			f.Close()
		}
	}
	return p
}

// exited reports whether the process has exited: a load with a beacon, else one syscall. Safe
// against a concurrent close.
func (p *process) exited() bool {
	if p == nil {
		return false
	}
	if p.beacon != nil {
		return p.beacon.dead()
	}
	if p.pidfd == nil {
		return unix.Kill(p.pid, 0) == unix.ESRCH
	}
	gone := false
	if p.rc.Control(func(fd uintptr) {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds[:], 0)
		gone = n > 0 // a pidfd is readable once its process has exited
	}) != nil {
		return false // closed: the segment is closing
	}
	return gone
}

// close releases the pidfd.
func (p *process) close() {
	if p != nil && p.pidfd != nil {
		p.pidfd.Close()
	}
}
