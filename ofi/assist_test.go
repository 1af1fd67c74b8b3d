package ofi

import (
	"os"
	"testing"
)

// openFDs counts the process's open fds. It first makes sure Go's poller is up: the poller
// opens an epoll fd and an eventfd when a first file joins it, which under go test happens
// before any test (go test has the binary write a log file) but, with the test binary run
// directly, when the queue under test joins it.
func openFDs(t *testing.T) int {
	t.Helper()
	r, w, err := os.Pipe() // a pipe joins the poller
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Queues with a progress goroutine join the assist set when their endpoint is enabled and
// leave it, with their dup of the wait fd, when closed; help serves them from any goroutine.
func TestAssistSet(t *testing.T) {
	assist.init() // its epoll fd stays open for the process
	fds0, n0 := openFDs(t), assist.n.Load()
	a, b := rdmPair(t, "tcp;ofi_rxm", CapMsg|CapRMA|CapAtomic)
	if !a.cq.WaitFD() || !b.cq.WaitFD() {
		t.Skip("tcp;ofi_rxm gave no wait fd here: its queues are polled, not assisted")
	}
	if got := assist.n.Load() - n0; got != 2 {
		t.Fatalf("assist set grew by %d queues, want 2", got)
	}
	ctx := testCtx(t)
	mr := b.reg(t, 4096, AccessLocal|AccessRemote)
	r := mr.Region()
	// An atomic on b from a, with a goroutine calling help meanwhile as spinners do: the
	// result is right whichever goroutine served b.
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				assist.help(nil)
			}
		}
	}()
	for i := range 100 {
		v, err := a.ep.FetchAtomic(ctx, OpSum, Uint64, a.peer, r.Addr, r.Key, 1)
		if err != nil || v != uint64(i) {
			close(done)
			t.Fatalf("fetch-add %d: %d %v", i, v, err)
		}
	}
	close(done)
	a.fab.Close()
	b.fab.Close()
	if got := assist.n.Load(); got != n0 {
		t.Errorf("assist set holds %d queues after close, want %d", got, n0)
	}
	if got := openFDs(t); got > fds0 {
		t.Errorf("%d fds open after close, %d before", got, fds0)
	}
}

// Spinners look at the set every other poll until assistIdleLooks looks in a row find nothing,
// then every 16th, and every other again after a look that finds work.
func TestAssistBacksOff(t *testing.T) {
	var a assistSet
	due := func() (n int) {
		for i := range 64 {
			if a.due(i) {
				n++
			}
		}
		return n
	}
	if n := due(); n != 32 {
		t.Fatalf("fresh set: %d looks in 64 polls, want 32", n)
	}
	for range assistIdleLooks - 1 {
		a.looked(false)
	}
	if n := due(); n != 32 {
		t.Fatalf("after %d empty looks: %d looks in 64 polls, want 32", assistIdleLooks-1, n)
	}
	for range 10 {
		a.looked(false)
	}
	if n := due(); n != 4 {
		t.Fatalf("idle: %d looks in 64 polls, want 4", n)
	}
	if m := a.misses.Load(); m != assistIdleLooks {
		t.Errorf("misses %d, want it to stop at %d", m, assistIdleLooks)
	}
	a.looked(true)
	if n := due(); n != 32 {
		t.Fatalf("after a look found work: %d looks in 64 polls, want 32", n)
	}
}
