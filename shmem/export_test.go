package shmem

import (
	"fmt"
	"os"

	"github.com/rdmakit/rdmakit/fabric"
)

// Without makes s treat the atomics in set as missing from the transport, so that tests run
// the compare-and-swap fallbacks that verbs needs on providers that have everything.
func Without(s *Segment, set fabric.AtomicSet) { s.without = set }

// BeaconHelper is the main of a test's child process: it prints its pid, its beacon fd and the
// fd of a regular file it holds open (its executable), then waits to be killed.
func BeaconHelper() int {
	fd, err := localBeacon()
	if err != nil {
		fmt.Fprintln(os.Stderr, "beacon:", err)
		return 1
	}
	exe, err := os.Open(os.Args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Println(os.Getpid(), fd, exe.Fd())
	select {}
}
