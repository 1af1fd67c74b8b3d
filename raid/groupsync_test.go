package raid

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSync checks that every caller waits for a sync that started after its call, and that
// concurrent callers share syncs.
func TestGroupSync(t *testing.T) {
	var started atomic.Int64 // number of syncs started
	var finished atomic.Int64
	g := groupSync{sync: func() error {
		started.Add(1)
		time.Sleep(time.Millisecond)
		finished.Add(1)
		return nil
	}}
	const callers = 64
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := started.Load()
			if err := g.wait(); err != nil {
				t.Error(err)
			}
			// A sync that started after the call has finished.
			if finished.Load() <= before {
				t.Errorf("returned after %d finished syncs; %d had started before the call", finished.Load(), before)
			}
		}()
	}
	wg.Wait()
	if n := started.Load(); n < 1 || n >= callers {
		t.Errorf("%d syncs for %d concurrent callers", n, callers)
	}
}
