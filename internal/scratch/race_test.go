//go:build race

package scratch

// raceEnabled: the race detector is on (its sync.Pool drops what it is given at random).
const raceEnabled = true
