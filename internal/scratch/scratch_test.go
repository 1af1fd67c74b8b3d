package scratch

import "testing"

func TestGetZeroedLength(t *testing.T) {
	var p Pool[*int]
	v := 7
	s := p.Get(5)
	if len(*s) != 5 {
		t.Fatalf("len %d, want 5", len(*s))
	}
	for i := range *s {
		(*s)[i] = &v
	}
	p.Put(s)
	if len(*s) != 0 {
		t.Errorf("a slice given back has length %d", len(*s))
	}
	for i, e := range (*s)[:cap(*s)] {
		if e != nil {
			t.Errorf("element %d still references what the call put there", i)
		}
	}
	// Whatever Get returns next (the pool may drop what it holds), it is zeroed and sized.
	for _, n := range []int{3, 5, 40} {
		g := p.Get(n)
		if len(*g) != n {
			t.Errorf("Get(%d): len %d", n, len(*g))
		}
		for i, e := range *g {
			if e != nil {
				t.Errorf("Get(%d): element %d not zero", n, i)
			}
		}
		p.Put(g)
	}
}

func TestReuseAndCap(t *testing.T) {
	var p Pool[int]
	// sync.Pool may drop what it is given (at random under the race detector, at a GC): the
	// slice comes back within a few tries all the same.
	reused := false
	for range 20 {
		s := p.Get(16)
		p.Put(s)
		if g := p.Get(10); g == s {
			reused = true
			p.Put(g)
			break
		}
	}
	if !reused {
		t.Error("a slice given back never came back from Get")
	}
	big := p.Get(MaxKept + 1)
	p.Put(big)
	if s := p.Get(MaxKept + 1); s == big {
		t.Error("a slice larger than MaxKept was kept")
	}
	p.Put(nil) // harmless
}

// Calls of two sizes settle on slices of the larger: a small slice is not handed to a large
// call over and over (each allocating). Without the race detector's random drops a warm pool
// then allocates nothing.
func TestMixedSizesSettle(t *testing.T) {
	var p Pool[int]
	mixed := func() {
		a := p.Get(1)
		p.Put(a)
		b := p.Get(32)
		p.Put(b)
	}
	for range 10 {
		mixed()
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, mixed); n != 0 {
		t.Errorf("%v allocations per pair of calls of sizes 1 and 32", n)
	}
}
