package pager

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadAheadInstalls scans a region sequentially: read-ahead installs the pages ahead of
// the scan, so only its markers fault (served from the prefetch cache), and every page still
// reads what was written. Without read-ahead every page faults.
func TestReadAheadInstalls(t *testing.T) {
	srv := startServer(t, transports[0].listen(), 16<<20, ServerOptions{})
	const budget = 64
	p := newPager(t, srv.Addr(), Options{Budget: budget * PageSize})
	const npages = 16 * budget
	r, err := p.Map(npages * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Bytes()
	for i := range npages {
		binary.LittleEndian.PutUint64(b[i*PageSize:], uint64(i)*7+1)
	}
	scan := func(ahead bool) Stats {
		t.Helper()
		r.SetReadAhead(ahead)
		p.dropAll(r)
		before := p.Stats()
		for i := range npages {
			if v := binary.LittleEndian.Uint64(b[i*PageSize:]); v != uint64(i)*7+1 {
				t.Fatalf("read-ahead %v: page %d holds %d", ahead, i, v)
			}
		}
		st := p.Stats()
		st.Faults -= before.Faults
		st.PrefetchHits -= before.PrefetchHits
		st.Prefetched -= before.Prefetched
		return st
	}
	on := scan(true)
	t.Logf("with read-ahead: %d faults, %d prefetch hits, %d pages read ahead", on.Faults, on.PrefetchHits, on.Prefetched)
	if on.Faults > npages/3 || on.PrefetchHits == 0 || on.Prefetched < npages/2 {
		t.Errorf("read-ahead should serve most of a sequential scan without faults")
	}
	off := scan(false)
	if off.Faults < npages-budget || off.Prefetched != 0 {
		t.Errorf("without read-ahead: %d faults, %d read ahead for %d pages", off.Faults, off.Prefetched, npages)
	}
	if st := p.Stats(); st.Resident > st.Budget {
		t.Fatalf("resident %d of %d", st.Resident, st.Budget)
	}
}

func TestForRuns(t *testing.T) {
	a, b := &Region{}, &Region{}
	vs := []victim{{r: a, idx: 1, dirty: true}, {r: a, idx: 2, dirty: true}, {r: a, idx: 3},
		{r: a, idx: 4, dirty: true}, {r: a, idx: 6, dirty: true}, {r: b, idx: 7, dirty: true}}
	type run struct {
		r      *Region
		lo, hi int
	}
	collect := func(keep func(*victim) bool) []run {
		var out []run
		forRuns(vs, keep, func(r *Region, lo, hi int) { out = append(out, run{r, lo, hi}) })
		return out
	}
	all := collect(func(*victim) bool { return true })
	if want := []run{{a, 1, 5}, {a, 6, 7}, {b, 7, 8}}; !equalRuns(all, want) {
		t.Errorf("all: %v, want %v", all, want)
	}
	dirty := collect(func(v *victim) bool { return v.dirty })
	if want := []run{{a, 1, 3}, {a, 4, 5}, {a, 6, 7}, {b, 7, 8}}; !equalRuns(dirty, want) {
		t.Errorf("dirty: %v, want %v", dirty, want)
	}
}

func equalRuns[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDropper drops scattered ranges in one batch, by process_madvise or by the madvise
// fallback: they read as zeros afterwards, the pages between keep their bytes.
func TestDropper(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		mem, err := unix.Mmap(-1, 0, 8*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			mem[i*PageSize] = byte(i + 1)
		}
		d := newDropper()
		if fallback {
			d.close()
		}
		d.add(mem[0:PageSize])
		d.add(mem[3*PageSize : 5*PageSize])
		d.add(mem[7*PageSize:])
		if err := d.flush(); err != nil {
			t.Fatal(err)
		}
		d.close()
		for i := range 8 {
			want := byte(i + 1)
			if i == 0 || i == 3 || i == 4 || i == 7 {
				want = 0
			}
			if mem[i*PageSize] != want {
				t.Errorf("fallback %v: page %d holds %d, want %d", fallback, i, mem[i*PageSize], want)
			}
		}
		unix.Munmap(mem)
	}
}
