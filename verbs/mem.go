package verbs

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory is an off-heap buffer (anonymous mmap), never on the Go heap, so that it can be
// handed to the device for DMA. Register it with PD.Register.
type Memory struct {
	g   guard
	buf []byte
}

var (
	memMu   sync.RWMutex
	memLive = map[uintptr]uintptr{} // start -> end of every live Memory
)

// Alloc maps size bytes (rounded up to the page size) of zeroed off-heap memory.
func Alloc(size int) (*Memory, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: Alloc size %d", ErrInvalid, size)
	}
	page := unix.Getpagesize()
	n := (size + page - 1) / page * page
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("verbs: mmap %d bytes: %w", n, err)
	}
	m := &Memory{buf: b[:size:size]}
	memMu.Lock()
	memLive[m.Addr()] = m.Addr() + uintptr(n)
	memMu.Unlock()
	return m, nil
}

// Bytes returns the memory as a slice (nil after Close). Do not use it after Close.
func (m *Memory) Bytes() []byte {
	if m.g.enter() != nil {
		return nil
	}
	defer m.g.leave()
	return m.buf
}

// Len returns the size asked of Alloc.
func (m *Memory) Len() int { return len(m.buf) }

// Addr returns the virtual address of the first byte.
func (m *Memory) Addr() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m.buf))) }

// Close unmaps the memory. It is idempotent. Deregister MRs over it first.
func (m *Memory) Close() error {
	return m.g.shut(func() error {
		memMu.Lock()
		delete(memLive, m.Addr())
		memMu.Unlock()
		full := m.buf[:cap(m.buf)]
		page := unix.Getpagesize()
		full = unsafe.Slice(unsafe.SliceData(full), (len(full)+page-1)/page*page)
		if err := unix.Munmap(full); err != nil {
			return fmt.Errorf("verbs: munmap: %w", err)
		}
		return nil
	})
}

// liveRange reports whether [addr, addr+n) lies inside one live Memory.
func liveRange(addr uint64, n uint32) bool {
	memMu.RLock()
	defer memMu.RUnlock()
	for s, e := range memLive {
		if addr >= uint64(s) && addr+uint64(n) <= uint64(e) && addr+uint64(n) >= addr {
			return true
		}
	}
	return false
}
