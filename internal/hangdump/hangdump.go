// Package hangdump helps tests that end on a deadline say where they were stuck. A test whose
// operations hang until their context's deadline usually unwinds before it fails, and what was
// blocked is gone with it; Before writes every goroutine's stack shortly before the deadline,
// while the hang is still there.
package hangdump

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

// out is where Before's dumps go.
var out io.Writer = os.Stderr

// Before arranges for all goroutine stacks to be written to standard error margin before
// ctx's deadline, if the test is still running then, and reports whether it did: not for a
// context without a deadline or one closer than margin. The dump is cancelled when the test
// ends.
func Before(t testing.TB, ctx context.Context, margin time.Duration) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return false
	}
	d := time.Until(dl) - margin
	if d <= 0 {
		return false
	}
	name, w := t.Name(), out
	timer := time.AfterFunc(d, func() { Write(w, name, margin) })
	t.Cleanup(func() { timer.Stop() })
	return true
}

// Write writes every goroutine's stack to w under a header naming the test.
func Write(w io.Writer, test string, left time.Duration) {
	fmt.Fprintf(w, "=== hangdump: %s still running %v before its deadline; goroutines:\n", test, left)
	pprof.Lookup("goroutine").WriteTo(w, 2)
	fmt.Fprintf(w, "=== end of hangdump for %s\n", test)
}
