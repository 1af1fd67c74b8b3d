package raid

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestShadow writes and reads random ranges in every RAID mode and compares with a shadow copy,
// then reads everything back with each member missing in turn.
func TestShadow(t *testing.T) {
	for _, tc := range []struct {
		level string
		n     int
		tr    string
	}{
		{"0", 3, "tcp"}, {"1", 2, "tcp"}, {"5", 4, "tcp"}, {"6", 5, "tcp"}, {"3+3", 6, "tcp"}, {"6", 4, "shm"},
	} {
		t.Run("raid"+tc.level+"-"+tc.tr, func(t *testing.T) { testShadow(t, tc.level, tc.n, tc.tr) })
	}
}

// testShadow runs the shadow-copy check on a volume of the given level and member count on
// transport tr.
func testShadow(t *testing.T, level string, n int, tr string) {
	tc := struct {
		level string
		n     int
		tr    string
	}{level, n, tr}
	chunk := 4096
	ctx := testCtx(t, 90*time.Second)
	var cli *Client
	if tc.tr == "shm" {
		// shm roles run as processes: many shm endpoints created and torn down in one
		// process have crashed libfabric here (see the package report).
		pv := newProcVolume(t, tc.tr, tc.level, tc.n, chunk, 64*int64(chunk)+dataStart)
		var err error
		if cli, err = Dial(ctx, pv.ctrl.addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
	} else {
		cli = newVolume(t, tc.tr, tc.level, tc.n, chunk, 64*int64(chunk)+dataStart).cli
	}
	v := struct{ cli *Client }{cli}
	size := v.cli.Size()
	shadow := make([]byte, size)
	mem, err := v.cli.Alloc(int(size))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(tc.n)))
	for i := range 40 {
		off := rng.Int64N(size)
		n := 1 + rng.Int64N(min(size-off, 5*int64(chunk)))
		if i%7 == 0 {
			off, n = 0, size
		}
		moff := rng.IntN(int(size - n + 1))
		buf := mem.Bytes()[moff : moff+int(n)]
		for k := range buf {
			buf[k] = byte(rng.Uint32())
		}
		if err := v.cli.Write(ctx, mem, moff, off, int(n)); err != nil {
			t.Fatalf("write [%d,+%d): %v", off, n, err)
		}
		copy(shadow[off:], buf)
		roff := rng.Int64N(size)
		rn := 1 + rng.Int64N(size-roff)
		clear(mem.Bytes())
		if err := v.cli.Read(ctx, mem, 0, roff, int(rn)); err != nil {
			t.Fatalf("read [%d,+%d): %v", roff, rn, err)
		}
		if !bytes.Equal(mem.Bytes()[:rn], shadow[roff:roff+rn]) {
			t.Fatalf("read [%d,+%d) differs from what was written", roff, rn)
		}
	}
	l := v.cli.Info().Layout
	for i := 0; i < l.N() && l.M > 0; i++ {
		clear(mem.Bytes())
		if err := v.cli.ReadExcluding(ctx, mem, 0, 0, int(size), 1<<i); err != nil {
			t.Fatalf("read without member %d: %v", i, err)
		}
		if !bytes.Equal(mem.Bytes(), shadow) {
			t.Fatalf("read without member %d differs", i)
		}
	}
	st, err := v.cli.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.DataToTargets != 0 {
		t.Errorf("controller sent %d data bytes to targets", st.Counters.DataToTargets)
	}
	var pulled uint64
	for _, m := range st.Members {
		pulled += m.Counters.PulledFromHost
	}
	want := st.Counters.WriteBytes
	if l.Mirror() {
		want *= uint64(l.N())
	}
	if pulled != want {
		t.Errorf("targets pulled %d bytes from the host, hosts wrote %d", pulled, want)
	}
	t.Logf("%s: %+v", l, st.Counters)
}
