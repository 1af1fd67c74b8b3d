package ofi

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A target of back-to-back atomics stays awake between them: after a request wakes its
// progress goroutine through the wait fd, the goroutine keeps polling (lingers) and serves the
// following requests itself, and it goes back to waiting on the fd once they stop. Without
// the linger every request is a wake-up through Go's poller.
func TestLingerServesBackToBack(t *testing.T) {
	target, init := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic)
	if !target.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	rem := target.reg(t, 4096, AccessLocal|AccessRemote)
	r := rem.Region()
	// The first request wakes the target (fd); the gaps between the next ones are shorter
	// than its linger window, so it is still polling when they come.
	const n = 200
	wakes := target.cq.fdWaits.Load()
	for i := range n {
		if _, err := init.ep.FetchAtomic(ctx, OpSum, Uint64, init.peer, r.Addr, r.Key, 1); err != nil {
			t.Fatalf("fetch-add %d: %v", i, err)
		}
		for until := time.Now().Add(10 * time.Microsecond); time.Now().Before(until); {
		}
	}
	wakes = target.cq.fdWaits.Load() - wakes
	t.Logf("%d requests: %d wake-ups, %d linger windows, %d polls that served", n, wakes,
		target.cq.lingers.Load(), target.cq.lingerServed.Load())
	if got := getWord(rem.Bytes()[:8], Uint64); got != n {
		t.Fatalf("word is %d after %d fetch-adds", got, n)
	}
	if target.cq.lingerServed.Load() == 0 {
		t.Fatalf("the target's progress goroutine served no request while lingering (%d windows)",
			target.cq.lingers.Load())
	}
	// Without lingering: about one wake-up per request.
	if wakes > 2*n/3 {
		t.Fatalf("%d requests woke the target's progress goroutine %d times (want at most %d)", n, wakes, 2*n/3)
	}
	// Then it stops polling: over a quiet stretch the process uses a few ms of CPU (a
	// goroutine still polling takes most of a core).
	time.Sleep(10 * time.Millisecond)
	c0, w0 := processCPU(t), time.Now()
	time.Sleep(200 * time.Millisecond)
	if used, wall := processCPU(t)-c0, time.Since(w0); used > wall/10 {
		t.Fatalf("the process used %v of CPU in %v of quiet after the requests: still polling", used, wall)
	}
}

// A linger window closes as soon as an operation is posted on the queue (its waiter polls the
// queue, and the lingering goroutine would only take the queue's lock from it), when its time
// is up; and a queue whose linger is off, or whose provider progresses data itself, has none.
func TestLingerYields(t *testing.T) {
	a, _ := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic)
	q := a.cq
	far := time.Now().Add(time.Hour)
	until := time.Now().Add(time.Second)
	if !q.linger(&until, far, q.posts.Load()) {
		t.Fatal("an open window on a quiet queue closed")
	}
	until = time.Now().Add(time.Second)
	if q.linger(&until, far, q.posts.Load()-1) {
		t.Fatal("a window stayed open after an operation was posted on the queue")
	}
	until = time.Now().Add(-time.Microsecond)
	if q.linger(&until, far, q.posts.Load()) {
		t.Fatal("a window stayed open past its end")
	}
	until = time.Now().Add(time.Second)
	if q.linger(&until, time.Now().Add(-time.Microsecond), q.posts.Load()) {
		t.Fatal("a window stayed open past its limit")
	}
	off, _ := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg, CQAttr{Linger: -1})
	if off.cq.attr.Linger > 0 {
		t.Fatalf("Linger -1 gives a window of %v", off.cq.attr.Linger)
	}
	// sockets progresses data in threads of its own (FI_PROGRESS_AUTO): no window.
	auto, _ := rdmPair(t, "sockets", CapMsg)
	if auto.info.DataProgress() != ProgressAuto || auto.cq.attr.Linger > 0 {
		t.Fatalf("sockets (data progress %v) lingers %v", auto.info.DataProgress(), auto.cq.attr.Linger)
	}
}

// While a queue's progress goroutine lingers it polls the queue itself, so the wait fd's gate
// is shut: requests served in the window wake no thread in Go's poller (with the gate open,
// each was an event for the poller, on a 2-core machine a wake-up on the initiator's CPU).
// The gate opens again before the goroutine goes back to waiting on the fd.
func TestLingerShutsGate(t *testing.T) {
	// fetchAdds makes 20 fetch-adds on a target queue opened with attr, back to back, and then
	// more, a ms apart, until one of them has opened a window. The first normally does: it
	// wakes the target through the fd. On a loaded machine the target may have each request
	// before it is back at the fd (fi_trywait finds it) and serve all 20 without a window.
	fetchAdds := func(t *testing.T, attr CQAttr) *side {
		target, init := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic, attr)
		if !target.cq.WaitFD() {
			t.Skip("tcp;ofi_rxm queue without a wait fd")
		}
		waitGateOpen(t, target.cq)
		rem := target.reg(t, 4096, AccessLocal|AccessRemote)
		r := rem.Region()
		n := 0
		for deadline := time.Now().Add(5 * time.Second); n < 20 || target.cq.lingers.Load() == 0; n++ {
			if n >= 20 {
				if time.Now().After(deadline) {
					t.Fatalf("%d requests opened no linger window", n)
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := init.ep.FetchAtomic(testCtx(t), OpSum, Uint64, init.peer, r.Addr, r.Key, 1); err != nil {
				t.Fatal(err)
			}
		}
		if got := getWord(rem.Bytes()[:8], Uint64); got != uint64(n) {
			t.Fatalf("word is %d after %d fetch-adds", got, n)
		}
		return target
	}
	t.Run("shut", func(t *testing.T) {
		// A window long enough to be open still when the requests are over, even on a loaded
		// machine that stops the initiator for a few time slices between two of them (the
		// queue's close ends it).
		target := fetchAdds(t, CQAttr{Linger: time.Second})
		last := time.Now()
		var evs [1]unix.EpollEvent
		n, err := unix.EpollWait(target.cq.waiter.ep, evs[:], 0)
		m := gateMask(t, target.cq.waiter.ep)
		if since := time.Since(last); since > 500*time.Millisecond {
			t.Skipf("the check came %v after the last request: the window may be over", since)
		}
		if err != nil || n != 0 || m&unix.EPOLLIN != 0 {
			t.Fatalf("while the progress goroutine lingered the gate had mask %#x and passed %d events (%v)", m, n, err)
		}
	})
	t.Run("reopens", func(t *testing.T) {
		// The default window (100 µs) ends soon after the last request.
		waitGateOpen(t, fetchAdds(t, CQAttr{}).cq)
	})
}

// waitGateOpen waits until q's progress goroutine has the wait fd's gate open (it waits on the
// fd), for at most 5 s.
func waitGateOpen(t *testing.T, q *CQ) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gateMask(t, q.waiter.ep)&gateEvents != gateEvents {
		if time.Now().After(deadline) {
			t.Fatalf("the gate stayed shut (mask %#x; %d linger windows)", gateMask(t, q.waiter.ep), q.lingers.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// gateMask reads the event mask of the one fd in epoll set ep from /proc/self/fdinfo (the
// kernel adds EPOLLERR and EPOLLHUP to every mask).
func gateMask(t *testing.T, ep int) uint32 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", ep))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var fd int
		var mask uint32
		if n, _ := fmt.Sscanf(line, "tfd: %d events: %x", &fd, &mask); n == 2 {
			return mask
		}
	}
	t.Fatalf("no fd in epoll set %d:\n%s", ep, b)
	return 0
}

// A long linger window ends, however the polls in it go: after a few requests on a pair whose
// queues both linger 10 ms, the process goes quiet within the windows' limit. (Without the
// limit, idle polls slower than lingerWork, hundreds a second on a VM, counted as requests
// served and the windows never ended.)
func TestLingerWindowEnds(t *testing.T) {
	target, init := rdmPairCQ(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic, CQAttr{Linger: 10 * time.Millisecond})
	if !target.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm queue without a wait fd")
	}
	ctx := testCtx(t)
	rem := target.reg(t, 4096, AccessLocal|AccessRemote)
	r := rem.Region()
	for i := range 20 {
		if _, err := init.ep.FetchAtomic(ctx, OpSum, Uint64, init.peer, r.Addr, r.Key, 1); err != nil {
			t.Fatalf("fetch-add %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	if target.cq.lingers.Load() == 0 {
		t.Fatal("no linger window opened")
	}
	time.Sleep(3 * max(lingerMaxWindows*10*time.Millisecond, lingerMaxFloor))
	c0, w0 := processCPU(t), time.Now()
	time.Sleep(300 * time.Millisecond)
	if used, wall := processCPU(t)-c0, time.Since(w0); used > wall/10 {
		t.Fatalf("the process used %v of CPU in %v of quiet, long after the windows' limit: still polling", used, wall)
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
