package fabric

import (
	"fmt"
	"sync"

	"github.com/rdmakit/rdmakit/internal/region"
)

// Access says what peers may do with a Memory. Local use (as source or sink of this side's
// operations) is always allowed.
type Access uint8

// Access bits.
const (
	RemoteRead Access = 1 << iota
	RemoteWrite
	RemoteAtomic

	// RemoteAll allows peers everything.
	RemoteAll = RemoteRead | RemoteWrite | RemoteAtomic
)

// Remote describes registered memory on a peer: base address on the wire, key and length.
// Peers receive it (MarshalBinary, 28 bytes) and target it by offset; they never compute
// addresses themselves.
type Remote = region.Region

// Memory is off-heap memory registered with a fabric.
type Memory struct {
	f    *Fabric
	impl memoryImpl
	acc  Access

	mu     sync.RWMutex // held shared by operations using the memory, exclusively by Close
	closed bool
}

// Bytes is the memory. It is valid until Close.
func (m *Memory) Bytes() []byte { return m.impl.bytes() }

// Len is the size in bytes.
func (m *Memory) Len() int { return len(m.impl.bytes()) }

// Access is what peers may do with the memory.
func (m *Memory) Access() Access { return m.acc }

// Remote is the descriptor to hand to peers.
func (m *Memory) Remote() Remote { return m.impl.remote() }

// Close deregisters the memory and unmaps what Alloc mapped (a mapping given to Register stays
// the caller's); it waits for operations using it to finish. Idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.f.forget(m)
	return m.impl.close()
}

// check reports whether [off, off+n) is inside the memory.
func (m *Memory) check(off, n int) error {
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return fmt.Errorf("memory: %w", ErrClosed)
	}
	if off < 0 || n < 0 || off > m.Len() || n > m.Len()-off {
		return fmt.Errorf("%w: local [%d, %d+%d) of a %d-byte memory", ErrOutOfRange, off, off, n, m.Len())
	}
	return nil
}
