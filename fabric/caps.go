package fabric

import "strings"

// AtomicSet is a set of atomic operations.
type AtomicSet uint16

// Has reports whether a is in the set.
func (s AtomicSet) Has(a AtomicOp) bool { return s&(1<<a) != 0 }

// With returns the set plus a.
func (s AtomicSet) With(a AtomicOp) AtomicSet { return s | 1<<a }

func (s AtomicSet) String() string {
	var names []string
	for _, a := range AtomicOps() {
		if s.Has(a) {
			names = append(names, a.String())
		}
	}
	if names == nil {
		return "none"
	}
	return strings.Join(names, ",")
}

// Caps is what a fabric's transport can do.
type Caps struct {
	Backend  string // "ofi" or "verbs"
	Provider string // e.g. "tcp;ofi_rxm", "shm", "rxe0"
	Endpoint string // "rdm", "msg" or "rc"
	// Atomics are the atomic operations the transport runs natively. The others return
	// ErrNotSupported; packages that need them build them from CompareSwap loops.
	Atomics AtomicSet
	// MaxMessage is the largest Send/Recv message.
	MaxMessage int
	// MaxTransfer is the largest single Read or Write.
	MaxTransfer uint64
}
