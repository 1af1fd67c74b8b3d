package ofi

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdWaiter parks goroutines in Go's netpoller until a libfabric wait fd (FI_WAIT_FD) becomes
// readable. It works on a dup of the provider's fd so that closing it never closes libfabric's.
// Go's poller is edge-triggered: callers drain their queue until it reports EAGAIN and ask
// fi_trywait before waiting again.
type fdWaiter struct {
	f  *os.File
	rc syscall.RawConn
}

// newFDWaiter wraps fd. It fails when the fd cannot join the poller (then callers poll).
func newFDWaiter(fd int) (*fdWaiter, error) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(d, true); err != nil {
		unix.Close(d)
		return nil, err
	}
	f := os.NewFile(uintptr(d), "fi-wait")
	// A deadline can only be set on a file the poller accepted.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fdWaiter{f: f, rc: rc}, nil
}

// wait parks until ready reports true (true), the deadline passes (false, nil), or the waiter
// is closed (os.ErrClosed). ready is called at once and after each wake-up, and must look at
// the fd itself (readable does): Go's poller forgets readiness it saw before the park began
// (RawConn.Read resets it), so an edge that came between the caller's last look and the park
// is only found by asking the fd. Without that look such an edge (a provider's event right
// after fi_trywait) waited for the deadline.
func (w *fdWaiter) wait(deadline time.Time, ready func(fd uintptr) bool) (bool, error) {
	got := false
	err := w.await(deadline, func(fd uintptr) bool {
		got = ready(fd)
		return got
	})
	return got, err
}

// await is wait for a caller that keeps ready's answer itself: it hands ready to Go's poller
// as it is, and allocates nothing when ready is a func value made once.
func (w *fdWaiter) await(deadline time.Time, ready func(fd uintptr) bool) error {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	err := w.rc.Read(ready)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// readable polls fd for input without blocking: the ready test of a plain wait fd.
func readable(fd uintptr) bool {
	p := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p[:], 0)
	return err == nil && n > 0
}

// kick wakes a goroutine parked in wait.
func (w *fdWaiter) kick() { w.f.SetReadDeadline(time.Unix(1, 0)) }

func (w *fdWaiter) close() error { return w.f.Close() }
