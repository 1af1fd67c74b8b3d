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
	if got, release := withLazyDeadline(parent, time.Millisecond); got != parent {
		t.Fatal("a context with a deadline was wrapped")
	} else {
		release()
	}

	// Before anything asks for Done, Err follows the clock.
	ctx, release := withLazyDeadline(context.Background(), 20*time.Millisecond)
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
	release()

	// Armed early, Done closes at the deadline.
	ctx, release = withLazyDeadline(context.Background(), 20*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("Done never closed")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("after Done: %v", ctx.Err())
	}
	release()

	// The parent's cancellation shows before and after arming.
	p2, cancel2 := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
	ctx, release = withLazyDeadline(p2, time.Minute)
	defer release()
	if ctx.Value("k") != "v" {
		t.Error("value of the parent lost")
	}
	cancel2()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("parent canceled: %v", ctx.Err())
	}
	<-ctx.Done()
}
