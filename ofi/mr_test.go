package ofi

import (
	"runtime"
	"testing"
)

// A region's descriptor and key are read from libfabric once: every RMA and atomic posts them,
// and fi_mr_desc and fi_mr_key are static inline, so each read would be a cgo call of its own.
func TestMRDescKeyNoCgo(t *testing.T) {
	s := openSide(t, "127.0.0.1", "", hintsFor("tcp;ofi_rxm", EPRDM, CapMsg|CapRMA))
	m := s.reg(t, 4096, AccessLocal|AccessRemote)
	desc, key := m.Desc(), m.Key()
	m.load() // from libfabric again
	if m.Desc() != desc || m.Key() != key || desc == 0 && key == 0 {
		t.Fatalf("cached desc %#x key %#x, libfabric says %#x %#x", desc, key, m.Desc(), m.Key())
	}
	const n = 1000
	before := runtime.NumCgoCall()
	for range n {
		_, _ = m.Desc(), m.Key()
	}
	// This domain has no queue (so no progress goroutine); other cgo calls in the process
	// now are a few at most.
	if calls := runtime.NumCgoCall() - before; calls > n/10 {
		t.Fatalf("%d reads of Desc and Key made %d cgo calls", n, calls)
	}
}
