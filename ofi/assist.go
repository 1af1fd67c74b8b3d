package ofi

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Spinners help the progress goroutines of the process.
//
// Progress goroutines park in Go's netpoller on their queues' wait fds. While a goroutine
// spins (a waiter polling its queue in await, the shm poller in its hot window), Go's
// scheduler finds netpoller goroutines late: measured on this project's 2-core machines, a
// goroutine parked on a pipe woke a median 1.9 ms after the write with one goroutine spinning
// in the process, 10 µs with none. A process spinning on one queue would leave its other queues
// unserved meanwhile, and those are often what its spinner waits for: the targets of peers'
// RMA and atomics, in a shmem member the process's own portion. So spinners look, every few
// rounds, at a level-triggered epoll set holding the wait fd of every queue of the process
// that has a progress goroutine, and drain the queues that have something themselves.
//
// A look is a syscall, which on this project's small VMs takes over a microsecond, as long as
// a poll of a tcp;ofi_rxm queue: a spinner looking every other poll detects its own completion
// later by about a third of that on average. So spinners look every other poll only while
// looks find work; after assistIdleLooks empty looks in a row (a process that only initiates,
// say) they look every 16th poll, and go back to every other one as soon as a look finds a
// queue to serve.
type assistSet struct {
	once sync.Once
	epfd int // -1: no epoll set (then nobody helps)

	mu   sync.RWMutex // shared while helping, exclusive while the set changes
	byID map[int32]*CQ
	next int32
	n    atomic.Int32 // queues in the set

	misses atomic.Uint32 // looks in a row that found no queue to serve (saturating)
}

// assistIdleLooks is how many empty looks in a row make spinners look less often.
const assistIdleLooks = 16

// due reports whether a spinner's poll number i (counted from 0 in one wait) is followed by a
// look at the set.
func (a *assistSet) due(i int) bool {
	if i&1 == 0 {
		return false
	}
	return a.misses.Load() < assistIdleLooks || i&15 == 15
}

var assist = assistSet{epfd: -1}

func (a *assistSet) init() {
	a.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		a.epfd = fd
		a.byID = map[int32]*CQ{}
	})
}

// add puts q's wait fd (a dup of it) into the set. Failing is harmless: q's progress goroutine
// still serves it.
func (a *assistSet) add(q *CQ, fd int) {
	a.init()
	if a.epfd < 0 {
		return
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next++
	id := a.next
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: id}
	if unix.EpollCtl(a.epfd, unix.EPOLL_CTL_ADD, d, &ev) != nil {
		unix.Close(d)
		return
	}
	a.byID[id] = q
	q.assistID.Store(id)
	q.assistFD = d
	a.n.Add(1)
}

// remove takes q out of the set; when it returns no spinner is draining q on its behalf.
func (a *assistSet) remove(q *CQ) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := q.assistID.Load()
	if id == 0 {
		return
	}
	unix.EpollCtl(a.epfd, unix.EPOLL_CTL_DEL, q.assistFD, nil)
	unix.Close(q.assistFD)
	delete(a.byID, id)
	q.assistID.Store(0)
	q.assistFD = -1
	a.n.Add(-1)
}

// help drains the queues of the set whose wait fds are readable, except self (its caller
// polls that one), and returns the number of completions it reaped. A queue someone else is
// draining is left to them.
func (a *assistSet) help(self *CQ) int {
	if n := a.n.Load(); n == 0 || n == 1 && self != nil && self.assistID.Load() != 0 {
		return 0
	}
	var evs [8]unix.EpollEvent
	a.mu.RLock()
	defer a.mu.RUnlock()
	k, err := unix.EpollWait(a.epfd, evs[:], 0)
	if err != nil {
		return 0
	}
	got, found := 0, false
	for _, ev := range evs[:k] {
		if q := a.byID[ev.Fd]; q != nil && q != self {
			found = true
			got += q.poll()
		}
	}
	a.looked(found)
	return got
}

// looked counts a look that found a queue to serve, or none.
func (a *assistSet) looked(found bool) {
	if found {
		a.misses.Store(0)
	} else if a.misses.Load() < assistIdleLooks {
		a.misses.Add(1)
	}
}
