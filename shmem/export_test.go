package shmem

import "github.com/rdmakit/rdmakit/fabric"

// Without makes s treat the atomics in set as missing from the transport, so that tests run
// the compare-and-swap fallbacks that verbs needs on providers that have everything.
func Without(s *Segment, set fabric.AtomicSet) { s.without = set }
