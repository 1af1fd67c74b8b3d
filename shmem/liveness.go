package shmem

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// selfPID is this process's id: members it hosts need no liveness check.
var selfPID = os.Getpid()

// process watches a same-host member's process. With a pidfd (Linux 5.3+) it sees the process
// exit even while it is an unreaped zombie, and a recycled pid cannot fool it; without one it
// falls back to kill(pid, 0), which sees neither.
type process struct {
	pid   int
	pidfd *os.File        // nil: no pidfd
	rc    syscall.RawConn // pidfd's, made once: exited runs before every operation
}

// watchProcess starts watching pid; 0 and our own pid need no watching (nil).
func watchProcess(pid int) *process {
	if pid == 0 || pid == selfPID {
		return nil
	}
	p := &process{pid: pid}
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

// exited reports whether the process has exited. One syscall; safe against a concurrent close.
func (p *process) exited() bool {
	if p == nil {
		return false
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
