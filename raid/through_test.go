package raid

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestThroughController writes random ranges, full stripes among them, over the
// through-controller baseline and checks what it wrote and that the data went through the
// controller: the targets pulled no host memory, the controller sent every data byte.
func TestThroughController(t *testing.T) {
	const chunk = 4096
	v := newVolume(t, "tcp", "6", 5, chunk, 64*chunk+dataStart)
	ctx := testCtx(t, 60*time.Second)
	size := v.cli.Size()
	shadow := make([]byte, size)
	mem, err := v.cli.Alloc(int(size))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 11))
	var wrote uint64
	for i := range 24 {
		off := rng.Int64N(size)
		n := 1 + rng.Int64N(min(size-off, 12*chunk))
		if i%5 == 0 {
			off, n = 0, size
		}
		buf := mem.Bytes()[:n]
		for k := range buf {
			buf[k] = byte(rng.Uint32())
		}
		if err := v.cli.WriteThroughController(ctx, mem, 0, off, int(n)); err != nil {
			t.Fatalf("write [%d,+%d): %v", off, n, err)
		}
		copy(shadow[off:], buf)
		wrote += uint64(n)
	}
	for i := -1; i < 5; i++ {
		clear(mem.Bytes())
		var exclude uint64
		if i >= 0 {
			exclude = 1 << i
		}
		if err := v.cli.ReadExcluding(ctx, mem, 0, 0, int(size), exclude); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mem.Bytes(), shadow) {
			t.Fatalf("read without member %d differs from what was written", i)
		}
	}
	st, err := v.cli.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Counters; c.DataToTargets != wrote || c.ThroughControllerOps != 24 || c.FullStripes == 0 {
		t.Errorf("counters: %+v, want %d data bytes from the controller in 24 requests", c, wrote)
	}
	for _, m := range st.Members {
		if m.Counters.PulledFromHost != 0 {
			t.Errorf("member %d pulled %d bytes from the host", m.Index, m.Counters.PulledFromHost)
		}
	}
}
