// Package allocs helps tests count the allocations of a call that runs beside a process's
// background goroutines.
package allocs

import (
	"math"
	"testing"
)

// Least returns the fewest allocations per call of f in up to 10 batches of 100 (it stops at a
// batch with none). testing.AllocsPerRun counts the whole process, and the queues' progress
// goroutines allocate when they wake, more often on a loaded machine: the fewest of several
// batches is the call's own count.
func Least(f func()) float64 {
	least := math.Inf(1)
	for range 10 {
		if least = min(least, testing.AllocsPerRun(100, f)); least == 0 {
			break
		}
	}
	return least
}
