package hangdump

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWrite dumps a goroutine that is blocked on purpose and finds it in the dump.
func TestWrite(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{})
	go func() {
		close(started)
		blockedOnPurpose(block)
	}()
	<-started
	var buf bytes.Buffer
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "hangdump.blockedOnPurpose") {
		if time.Now().After(deadline) {
			t.Fatalf("the blocked goroutine is not in the dump:\n%s", buf.String())
		}
		buf.Reset()
		Write(&buf, "TestWrite", time.Second)
	}
	if !strings.Contains(buf.String(), "=== hangdump: TestWrite") {
		t.Errorf("no header in the dump:\n%.200s", buf.String())
	}
}

//go:noinline
func blockedOnPurpose(c chan struct{}) { <-c }

// lockedBuffer is a bytes.Buffer for one writer goroutine and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBefore arranges a dump before a deadline and sees it written in time; without a
// deadline, or with one closer than the margin, nothing is arranged.
func TestBefore(t *testing.T) {
	var buf lockedBuffer
	out = &buf
	defer func() { out = os.Stderr }()
	if Before(t, context.Background(), time.Second) {
		t.Error("a dump was arranged for a context without a deadline")
	}
	soon, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if Before(t, soon, time.Second) {
		t.Error("a dump was arranged for a deadline closer than the margin")
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if !Before(t, ctx, 10*time.Second-50*time.Millisecond) {
		t.Fatal("no dump arranged for a deadline 10s away")
	}
	for !strings.Contains(buf.String(), "=== end of hangdump for TestBefore") {
		if ctx.Err() != nil {
			t.Fatalf("no dump before the deadline; got:\n%.300s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
