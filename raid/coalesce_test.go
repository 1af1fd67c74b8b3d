package raid

import (
	"testing"

	"github.com/rdmakit/rdmakit/fabric"
)

// TestCoalesce merges operations contiguous on both sides, and only those, up to the limit.
func TestCoalesce(t *testing.T) {
	var a, b fabric.Memory
	r1 := fabric.Remote{Addr: 1 << 20, Key: 1, Len: 1 << 20}
	r2 := fabric.Remote{Addr: 1 << 30, Key: 2, Len: 1 << 20}
	rd := func(m *fabric.Memory, off int, r fabric.Remote, roff uint64, n int) fabric.Op {
		return fabric.Op{Kind: fabric.OpRead, Mem: m, Off: off, Len: n, Remote: r, RemoteOff: roff}
	}
	ops := []fabric.Op{
		rd(&a, 0, r1, 0, 100), rd(&a, 100, r1, 100, 100), rd(&a, 200, r1, 200, 100), // one
		rd(&a, 300, r1, 400, 100),                            // remote gap
		rd(&b, 400, r1, 500, 100),                            // other memory
		rd(&b, 500, r2, 600, 100),                            // other region
		rd(&b, 600, r2, 700, 100), rd(&b, 700, r2, 800, 150), // over the limit
	}
	got := coalesce(ops, 300)
	want := []struct{ off, n int }{{0, 300}, {300, 100}, {400, 100}, {500, 200}, {700, 150}}
	if len(got) != len(want) {
		t.Fatalf("%d operations, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Off != w.off || got[i].Len != w.n {
			t.Errorf("operation %d: [%d,+%d), want [%d,+%d)", i, got[i].Off, got[i].Len, w.off, w.n)
		}
	}
}

// TestStagedRuns merges pieces contiguous in the buffer and in the measured space.
func TestStagedRuns(t *testing.T) {
	var s staged
	s.add(piece{moff: 0, roff: 1000, boff: 0, n: 10})
	s.add(piece{moff: 10, roff: 5000, boff: 10, n: 10})
	s.add(piece{moff: 20, roff: 5010, boff: 20, n: 10})
	s.add(piece{moff: 40, roff: 5020, boff: 30, n: 10})
	byStore := s.runs(func(p piece) int64 { return p.moff }, 1<<30)
	if len(byStore) != 2 || byStore[0].n != 30 || byStore[1].moff != 40 {
		t.Errorf("store runs %+v", byStore)
	}
	byRemote := s.runs(func(p piece) int64 { return int64(p.roff) }, 20)
	if len(byRemote) != 3 || byRemote[0].n != 10 || byRemote[1].n != 20 || byRemote[2].boff != 30 {
		t.Errorf("remote runs %+v", byRemote)
	}
	if s.used != 40 {
		t.Errorf("used %d", s.used)
	}
}
