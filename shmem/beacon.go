package shmem

/*
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>

_Static_assert(sizeof(pthread_mutex_t) <= 64, "the beacon's magic follows the mutex at 64");

typedef struct {
	pthread_mutex_t *mutex;
	sem_t ready;
	int tid, err;
} rk_beacon_start_arg;

// rk_beacon_main locks the robust mutex and then sleeps for the life of the process, with every
// signal blocked: the kernel releases the mutex for it when the process dies.
static void *rk_beacon_main(void *p) {
	rk_beacon_start_arg *a = p;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutexattr_t at;
	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	int err = pthread_mutex_init(a->mutex, &at);
	pthread_mutexattr_destroy(&at);
	if (!err)
		err = pthread_mutex_lock(a->mutex);
	a->err = err;
	a->tid = (int)syscall(SYS_gettid);
	sem_post(&a->ready); // a is the starter's: not touched after this
	if (err)
		return NULL;
	for (;;)
		pause();
	return NULL;
}

// rk_beacon_start starts the thread holding mutex and returns its thread id, or -errno.
static int rk_beacon_start(void *mutex) {
	rk_beacon_start_arg a = {.mutex = mutex};
	if (sem_init(&a.ready, 0, 0))
		return -errno;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_t th;
	int rc = pthread_create(&th, &attr, rk_beacon_main, &a);
	pthread_attr_destroy(&attr);
	if (rc) {
		sem_destroy(&a.ready);
		return -rc;
	}
	while (sem_wait(&a.ready) && errno == EINTR)
		;
	sem_destroy(&a.ready);
	return a.err ? -a.err : a.tid;
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A beacon tells same-host peers, with one memory load, whether this process still lives: a
// robust, process-shared pthread mutex in a memfd, locked by a C thread that never unlocks it.
// However the process dies, the kernel walks that thread's robust list during the exit and
// marks the mutex's futex word (FUTEX_OWNER_DIED, owner tid cleared) before the process's
// files close, so a peer that maps the memfd sees the death by the time anything else could
// tell it. A peer opens the memfd as /proc/<pid>/fd/<fd>; the membership handshake carries the
// fd. The memfd is sealed at its size, and the page holds a magic, the pid and the holder's
// tid, so that a peer cannot mistake another file for a beacon or fault on it.
//
// The futex word is the first int of glibc's pthread_mutex_t (its __lock), which the kernel's
// robust-futex protocol reads and writes.
const (
	beaconLen      = 4096
	beaconMagicOff = 64 // after the mutex (40 bytes on x86-64, 48 on arm64; asserted in C)
	futexTIDMask   = 0x3fffffff
	beaconSeals    = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
)

var beaconMagic = [8]byte{'R', 'K', 'B', 'E', 'A', 'C', 'O', 'N'}

var local struct {
	once sync.Once
	fd   int // -1: no beacon (the peers check with a syscall instead)
	err  error
}

// localBeacon returns the fd of this process's beacon, made at the first call, or -1 and why
// there is none.
func localBeacon() (int, error) {
	local.once.Do(func() { local.fd, local.err = newBeacon() })
	return local.fd, local.err
}

func newBeacon() (int, error) {
	fd, err := unix.MemfdCreate("rdmakit-beacon", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, beaconLen); err != nil {
		return fail("ftruncate", err)
	}
	// Its size is fixed for good: a peer's loads can never fault past the end.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, beaconSeals); err != nil {
		return fail("seal", err)
	}
	// Mapped for the life of the process (off the Go heap: the C thread holds the mutex in it).
	mem, err := unix.Mmap(fd, 0, beaconLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	tid := C.rk_beacon_start(unsafe.Pointer(&mem[0]))
	if tid < 0 {
		unix.Munmap(mem)
		return fail("beacon thread", unix.Errno(-tid))
	}
	copy(mem[beaconMagicOff:], beaconMagic[:])
	binary.LittleEndian.PutUint32(mem[beaconMagicOff+8:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint32(mem[beaconMagicOff+12:], uint32(tid))
	return fd, nil
}

// peerBeacon is a mapping of a peer's beacon.
type peerBeacon struct {
	word *uint32 // the futex word
	tid  uint32  // its owner while the process lives
}

// openBeacon maps the beacon that process pid advertised as its fd. It fails when the file is
// not a live beacon of that process (then the caller checks with syscalls).
func openBeacon(pid, fd int) (*peerBeacon, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Only a sealed memfd of the right size: loads from any other file could fault (SIGBUS)
	// once it shrinks.
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err != nil || seals&beaconSeals != beaconSeals {
		return nil, fmt.Errorf("fd %d of process %d is not a sealed memfd", fd, pid)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size != beaconLen {
		return nil, fmt.Errorf("fd %d of process %d is not a beacon's size", fd, pid)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, beaconLen, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap beacon of %d: %w", pid, err)
	}
	b := &peerBeacon{word: (*uint32)(unsafe.Pointer(&mem[0])),
		tid: binary.LittleEndian.Uint32(mem[beaconMagicOff+12:])}
	if [8]byte(mem[beaconMagicOff:]) != beaconMagic ||
		binary.LittleEndian.Uint32(mem[beaconMagicOff+8:]) != uint32(pid) || b.tid == 0 {
		unix.Munmap(mem)
		return nil, fmt.Errorf("fd %d of process %d is not its beacon", fd, pid)
	}
	// Unmapped once nothing can load from it any more, so that a check racing with the
	// member's close needs no lock.
	runtime.AddCleanup(b, func(m []byte) { unix.Munmap(m) }, mem)
	return b, nil
}

// dead reports whether the beacon's process has died (the kernel released the mutex).
func (b *peerBeacon) dead() bool {
	return atomic.LoadUint32(b.word)&futexTIDMask != b.tid
}
