//go:build !race

package scratch

// raceEnabled: the race detector is on (see race_test.go).
const raceEnabled = false
