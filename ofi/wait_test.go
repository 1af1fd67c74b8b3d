package ofi

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A wait on an fd that became readable before the wait began returns at once: Go's poller
// forgets readiness it saw before a park, so the waiter must look at the fd itself. It used
// not to, and an event right after fi_trywait waited for the next deadline (10 ms).
func TestFDWaiterSeesEarlierReadiness(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	w, err := newFDWaiter(p[0])
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for i := range 3 {
		if _, err := unix.Write(p[1], []byte{1}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if ok, err := w.wait(time.Now().Add(10*time.Second), readable); !ok || err != nil || time.Since(start) > 5*time.Second {
			t.Fatalf("wait %d on a readable fd: %v, %v after %v", i, ok, err, time.Since(start))
		}
		var b [8]byte
		unix.Read(p[0], b[:])
	}
	start := time.Now()
	if ok, err := w.wait(time.Now().Add(20*time.Millisecond), readable); ok || err != nil || time.Since(start) < 15*time.Millisecond {
		t.Fatalf("wait on a quiet fd: %v, %v after %v", ok, err, time.Since(start))
	}
}
