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
	rd, wr := testPipe(t)
	w, err := newFDWaiter(rd)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for i := range 3 {
		if _, err := unix.Write(wr, []byte{1}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if ok, err := w.wait(time.Now().Add(10*time.Second), readable); !ok || err != nil || time.Since(start) > 5*time.Second {
			t.Fatalf("wait %d on a readable fd: %v, %v after %v", i, ok, err, time.Since(start))
		}
		var b [8]byte
		unix.Read(rd, b[:])
	}
	start := time.Now()
	if ok, err := w.wait(time.Now().Add(20*time.Millisecond), readable); ok || err != nil || time.Since(start) < 15*time.Millisecond {
		t.Fatalf("wait on a quiet fd: %v, %v after %v", ok, err, time.Since(start))
	}
}
