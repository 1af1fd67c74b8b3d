package pager

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropper frees ranges of paged memory with MADV_DONTNEED: all ranges of a batch in one
// process_madvise call on the process itself where the kernel allows it (Linux 6.13 and
// later, whose newer releases also flush the TLB once per batch rather than once per
// range), one madvise per range otherwise.
type dropper struct {
	pidfd int // -1 once process_madvise turned out unusable
	iov   []unix.Iovec
	total uint64
}

// newDropper opens the pidfd process_madvise needs; without one it drops by madvise.
func newDropper() *dropper {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		fd = -1
	}
	return &dropper{pidfd: fd}
}

// add queues b, a range of paged memory.
func (d *dropper) add(b []byte) {
	d.iov = append(d.iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
	d.total += uint64(len(b))
}

// flush drops the queued ranges.
func (d *dropper) flush() error {
	defer func() { d.iov, d.total = d.iov[:0], 0 }()
	if len(d.iov) == 0 {
		return nil
	}
	if d.pidfd >= 0 {
		n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(d.pidfd),
			uintptr(unsafe.Pointer(&d.iov[0])), uintptr(len(d.iov)), unix.MADV_DONTNEED, 0, 0)
		if errno == 0 && uint64(n) == d.total {
			return nil
		}
		if errno != 0 && errno != unix.EINTR && errno != unix.EAGAIN {
			unix.Close(d.pidfd) // an older kernel: madvise from now on
			d.pidfd = -1
		}
		// dropping again what was dropped already is harmless
	}
	var first error
	for _, v := range d.iov {
		if err := unix.Madvise(unsafe.Slice(v.Base, v.Len), unix.MADV_DONTNEED); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (d *dropper) close() {
	if d.pidfd >= 0 {
		unix.Close(d.pidfd)
		d.pidfd = -1
	}
}
