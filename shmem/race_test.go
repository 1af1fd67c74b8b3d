//go:build race

package shmem_test

// raceEnabled: the race detector is on.
const raceEnabled = true
