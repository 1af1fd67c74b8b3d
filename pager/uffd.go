package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The userfaultfd ABI (linux/userfaultfd.h); golang.org/x/sys/unix does not carry it.
const (
	uffdAPI = 0xAA

	uffdioAPI          = 0xC018AA3F // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister     = 0xC020AA00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioUnregister   = 0x8010AA01 // _IOR(0xAA, 0x01, struct uffdio_range)
	uffdioWake         = 0x8010AA02 // _IOR(0xAA, 0x02, struct uffdio_range)
	uffdioCopy         = 0xC028AA03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	uffdioZeropage     = 0xC020AA04 // _IOWR(0xAA, 0x04, struct uffdio_zeropage)
	uffdioWriteprotect = 0xC018AA06 // _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
	uffdioPoison       = 0xC020AA08 // _IOWR(0xAA, 0x08, struct uffdio_poison)
	userfaultfdIocNew  = 0xAA00     // _IO(0xAA, 0x00) on /dev/userfaultfd

	featurePagefaultFlagWP = 1 << 0
	featurePoison          = 1 << 14

	registerModeMissing = 1 << 0
	registerModeWP      = 1 << 1

	ioctlBitWake         = 1 << 0x02
	ioctlBitCopy         = 1 << 0x03
	ioctlBitZeropage     = 1 << 0x04
	ioctlBitWriteprotect = 1 << 0x06
	ioctlBitPoison       = 1 << 0x08

	copyModeDontWake = 1 << 0
	copyModeWP       = 1 << 1
	zeroModeDontWake = 1 << 0
	wpModeWP         = 1 << 0
	wpModeDontWake   = 1 << 1

	eventPagefault = 0x12

	pagefaultFlagWrite = 1 << 0
	pagefaultFlagWP    = 1 << 1

	msgSize = 32 // sizeof(struct uffd_msg)
)

// ErrPrivilege is returned when the process may not use userfaultfd.
var ErrPrivilege = errors.New("pager: no permission to use userfaultfd: run as root or with " +
	"CAP_SYS_PTRACE, give the user read-write access to /dev/userfaultfd, " +
	"or set sysctl vm.unprivileged_userfaultfd=1")

// ErrUnsupported is returned when the kernel lacks a userfaultfd feature the pager needs.
var ErrUnsupported = errors.New("pager: kernel lacks a required userfaultfd feature")

// uffd is one userfaultfd file descriptor, opened non-blocking.
type uffd struct {
	fd       int
	features uint64 // negotiated
	poison   bool   // UFFDIO_POISON available (Linux >= 6.6)
}

// openUffd opens a userfaultfd with the write-protect fault feature (and poison where the kernel
// has it). It tries the userfaultfd system call first, then /dev/userfaultfd.
func openUffd() (*uffd, error) {
	fd, err := newUffdFD()
	if err != nil {
		return nil, err
	}
	u := &uffd{fd: fd}
	// Ask which features exist, then enable the ones we use (the API ioctl works once per fd,
	// so probe on a throwaway descriptor).
	avail, err := probeFeatures()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if avail&featurePagefaultFlagWP == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: write-protect faults (UFFD_FEATURE_PAGEFAULT_FLAG_WP, Linux >= 5.7) "+
			"are needed to tell modified pages from clean ones", ErrUnsupported)
	}
	want := uint64(featurePagefaultFlagWP) | avail&featurePoison
	api := [3]uint64{uffdAPI, want, 0}
	if err := ioctl(fd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pager: UFFDIO_API: %w", err)
	}
	u.features = api[1]
	u.poison = u.features&featurePoison != 0
	return u, nil
}

func probeFeatures() (uint64, error) {
	fd, err := newUffdFD()
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	api := [3]uint64{uffdAPI, 0, 0}
	if err := ioctl(fd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		return 0, fmt.Errorf("pager: UFFDIO_API: %w", err)
	}
	return api[1], nil
}

func newUffdFD() (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno == 0 {
		return int(r), nil
	}
	first := errno
	if errno == unix.ENOSYS {
		return -1, fmt.Errorf("%w: the userfaultfd system call (CONFIG_USERFAULTFD, or blocked by seccomp)", ErrUnsupported)
	}
	dev, err := os.OpenFile("/dev/userfaultfd", os.O_RDWR, 0)
	if err != nil {
		if first == unix.EPERM || first == unix.EACCES {
			return -1, fmt.Errorf("%w (userfaultfd: %v; /dev/userfaultfd: %v)", ErrPrivilege, first, err)
		}
		return -1, fmt.Errorf("pager: userfaultfd: %w", first)
	}
	defer dev.Close()
	r, _, errno = unix.Syscall(unix.SYS_IOCTL, dev.Fd(), userfaultfdIocNew, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if errno != 0 {
		if errno == unix.EPERM || errno == unix.EACCES {
			return -1, fmt.Errorf("%w (userfaultfd: %v; /dev/userfaultfd: %v)", ErrPrivilege, first, errno)
		}
		return -1, fmt.Errorf("pager: /dev/userfaultfd: %w", errno)
	}
	return int(r), nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// register registers [start, start+n) for missing and write-protect faults.
func (u *uffd) register(start, n uintptr) error {
	reg := [4]uint64{uint64(start), uint64(n), registerModeMissing | registerModeWP, 0}
	if err := ioctl(u.fd, uffdioRegister, unsafe.Pointer(&reg)); err != nil {
		return fmt.Errorf("pager: UFFDIO_REGISTER: %w", err)
	}
	need := uint64(ioctlBitWake | ioctlBitCopy | ioctlBitZeropage | ioctlBitWriteprotect)
	if reg[3]&need != need {
		u.unregister(start, n)
		return fmt.Errorf("%w: range ioctls %#x lack copy, zeropage or write-protect", ErrUnsupported, reg[3])
	}
	if reg[3]&ioctlBitPoison == 0 {
		u.poison = false
	}
	return nil
}

func (u *uffd) unregister(start, n uintptr) error {
	r := [2]uint64{uint64(start), uint64(n)}
	return ioctl(u.fd, uffdioUnregister, unsafe.Pointer(&r))
}

// copy installs the page at src at dst (n bytes). EEXIST (already mapped) is reported as is.
func (u *uffd) copy(dst, src, n uintptr, mode uint64) error {
	c := [5]uint64{uint64(dst), uint64(src), uint64(n), mode, 0}
	return ioctl(u.fd, uffdioCopy, unsafe.Pointer(&c))
}

// zeropage maps the zero page at [dst, dst+n).
func (u *uffd) zeropage(dst, n uintptr, mode uint64) error {
	z := [4]uint64{uint64(dst), uint64(n), mode, 0}
	return ioctl(u.fd, uffdioZeropage, unsafe.Pointer(&z))
}

// writeProtect sets (wp) or clears the write protection of [start, start+n).
func (u *uffd) writeProtect(start, n uintptr, wp, wake bool) error {
	var mode uint64
	if wp {
		mode |= wpModeWP
	}
	if !wake && !wp { // protecting never wakes; the kernel rejects WP|DONTWAKE
		mode |= wpModeDontWake
	}
	w := [3]uint64{uint64(start), uint64(n), mode}
	return ioctl(u.fd, uffdioWriteprotect, unsafe.Pointer(&w))
}

// wake wakes the threads waiting on faults in [start, start+n).
func (u *uffd) wake(start, n uintptr) error {
	r := [2]uint64{uint64(start), uint64(n)}
	return ioctl(u.fd, uffdioWake, unsafe.Pointer(&r))
}

// poisonPage makes every access to [start, start+n) raise SIGBUS and wakes its waiters.
func (u *uffd) poisonPage(start, n uintptr) error {
	p := [4]uint64{uint64(start), uint64(n), 0, 0}
	return ioctl(u.fd, uffdioPoison, unsafe.Pointer(&p))
}

func (u *uffd) close() error { return unix.Close(u.fd) }

// read reads pending messages into b without blocking (EAGAIN if there are none).
func (u *uffd) read(b []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(u.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// fault is a decoded page-fault message.
type fault struct {
	addr  uintptr
	write bool // a write to a missing page
	wp    bool // a write to a write-protected page
}

// decodeMsg decodes one struct uffd_msg; ok is false for other events.
func decodeMsg(b []byte) (f fault, ok bool) {
	if len(b) < msgSize || b[0] != eventPagefault {
		return fault{}, false
	}
	flags := binary.NativeEndian.Uint64(b[8:])
	f.addr = uintptr(binary.NativeEndian.Uint64(b[16:]))
	f.wp = flags&pagefaultFlagWP != 0
	f.write = flags&pagefaultFlagWrite != 0
	return f, true
}
