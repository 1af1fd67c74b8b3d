//go:build race

package fabric_test

// raceEnabled: the race detector is on (its sync.Pool drops what it is given at random, so
// allocation counts are random too).
const raceEnabled = true
