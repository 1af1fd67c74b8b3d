package shmem

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLazyDeadline(t *testing.T) {
	// A context with a deadline is used as it is.
	parent, cancelParent := context.WithTimeout(context.Background(), time.Minute)
	defer cancelParent()
	if got, lz := withLazyDeadline(parent, time.Millisecond); got != parent || lz != nil {
		t.Fatal("a context with a deadline was wrapped")
	} else {
		lz.release() // nil: nothing to release
	}

	// Before anything asks for Done, Err follows the clock.
	ctx, lz := withLazyDeadline(context.Background(), 20*time.Millisecond)
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 20*time.Millisecond {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("fresh context: %v", err)
	}
	for ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("after the deadline: %v", ctx.Err())
	}
	<-ctx.Done() // armed late: closes at once
	lz.release()

	// Armed early, Done closes at the deadline.
	ctx, lz = withLazyDeadline(context.Background(), 20*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("Done never closed")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("after Done: %v", ctx.Err())
	}
	lz.release()

	// The parent's cancellation shows before and after arming.
	p2, cancel2 := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
	ctx, lz = withLazyDeadline(p2, time.Minute)
	defer lz.release()
	if ctx.Value("k") != "v" {
		t.Error("value of the parent lost")
	}
	cancel2()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("parent canceled: %v", ctx.Err())
	}
	<-ctx.Done()
}

// TestLazyDeadlineReuse checks that a released wrapper is reused only if it was never armed:
// a context derived from an armed one may still watch it.
func TestLazyDeadlineReuse(t *testing.T) {
	ctx, armed := withLazyDeadline(context.Background(), time.Minute)
	child, cancel := context.WithCancel(ctx) // arms it
	defer cancel()
	armed.release()
	select {
	case <-child.Done():
	case <-time.After(time.Minute):
		t.Fatal("released: its child was not cancelled")
	}
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("released: its child's error is %v", child.Err())
	}
	seen := map[*lazyDeadline]bool{}
	for range 100 {
		_, lz := withLazyDeadline(context.Background(), time.Minute)
		if lz == armed {
			t.Fatal("an armed wrapper was reused")
		}
		seen[lz] = true
		lz.release()
	}
	if len(seen) == 100 { // the race detector's pool drops a quarter of them, not all
		t.Error("no unarmed wrapper was reused")
	}
}
