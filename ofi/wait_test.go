package ofi

import (
	"errors"
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

// WaitOr returns ErrStopped once its stop channel closes, leaving the receive posted: a later
// Wait gets the message sent after. A nil stop never fires.
func TestWaitOrStop(t *testing.T) {
	for name, p := range pairs(t, CapMsg) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			a, b := p[0], p[1]
			src := a.reg(t, 4096, AccessLocal)
			dst := b.reg(t, 4096, AccessLocal)
			op := Op{Kind: OpRecv, Buf: dst.Bytes(), MR: dst, Peer: AddrUnspec}
			tk, err := b.ep.Post(ctx, &op)
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			time.AfterFunc(20*time.Millisecond, func() { close(stop) })
			if err := b.ep.WaitOr(ctx, &op, tk, stop); !errors.Is(err, ErrStopped) {
				t.Fatalf("WaitOr with nothing sent: %v, want ErrStopped", err)
			}
			copy(src.Bytes(), "after the stop")
			if err := a.ep.Send(ctx, src.Bytes()[:14], src, a.peer); err != nil {
				t.Fatal(err)
			}
			if err := b.ep.WaitOr(ctx, &op, tk, nil); err != nil || string(dst.Bytes()[:op.Len]) != "after the stop" {
				t.Fatalf("the receive after the stop: %q, %v", dst.Bytes()[:op.Len], err)
			}
		})
	}
}
