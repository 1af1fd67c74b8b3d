package region

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := Region{Addr: 0x7f0000001000, Key: 0xdeadbeef, Len: 1 << 20}
	b, err := in.MarshalBinary()
	if err != nil || len(b) != Size {
		t.Fatalf("MarshalBinary = %d bytes, %v", len(b), err)
	}
	var out Region
	if err := out.UnmarshalBinary(b); err != nil || out != in {
		t.Fatalf("UnmarshalBinary = %v, %v; want %v", out, err, in)
	}
}

func TestRejects(t *testing.T) {
	good, _ := Region{Addr: 1, Key: 2, Len: 3}.MarshalBinary()
	overflow, _ := Region{Addr: ^uint64(0), Key: 2, Len: 3}.MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":    nil,
		"short":    good[:Size-1],
		"long":     append(append([]byte{}, good...), 0),
		"magic":    append([]byte{'X'}, good[1:]...),
		"overflow": overflow,
	} {
		var r Region
		if err := r.UnmarshalBinary(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
		if r != (Region{}) {
			t.Errorf("%s: region modified to %v on error", name, r)
		}
	}
}

func TestContains(t *testing.T) {
	r := Region{Len: 100}
	for _, c := range []struct {
		off, n uint64
		ok     bool
	}{{0, 100, true}, {100, 0, true}, {99, 2, false}, {101, 0, false}, {1, ^uint64(0), false}} {
		if got := r.Contains(c.off, c.n); got != c.ok {
			t.Errorf("Contains(%d,%d) = %v", c.off, c.n, got)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := Region{Addr: 0x1000, Key: 7, Len: 4096}.MarshalBinary()
	f.Add(good)
	f.Add([]byte("RKR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Region
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := r.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-marshal %x != input %x", again, b)
		}
	})
}
