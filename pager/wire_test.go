package pager

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

func TestWireRoundTrip(t *testing.T) {
	for _, q := range []request{{op: opAlloc, id: 1, arg: 1 << 20}, {op: opFree, id: 2, arg: 7}, {op: opPing}, {op: opBye, id: 9}} {
		var got request
		if err := got.unmarshal(q.marshal()); err != nil || got != q {
			t.Errorf("request %+v: got %+v, %v", q, got, err)
		}
	}
	rem := fabric.Remote{Addr: 0x7f0000001000, Key: 42, Len: 1 << 20}
	for _, r := range []reply{
		{op: opAlloc, status: statusOK, id: 3, slab: 5, remote: rem},
		{op: opFree, status: statusNoSlab, id: 4, text: "slab 9"},
		{op: opAlloc, status: statusExhausted, text: string(bytes.Repeat([]byte("x"), 300))},
	} {
		var got reply
		if err := got.unmarshal(r.marshal()); err != nil {
			t.Fatalf("reply %+v: %v", r, err)
		}
		want := r
		if len(want.text) > maxReplyText {
			want.text = want.text[:maxReplyText]
		}
		if got != want {
			t.Errorf("reply: got %+v, want %+v", got, want)
		}
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"short":      request{op: opAlloc}.marshal()[:requestSize-1],
		"magic":      append([]byte("XKPG"), request{op: opAlloc}.marshal()[4:]...),
		"op0":        func() []byte { b := request{op: opAlloc}.marshal(); b[5] = 0; return b }(),
		"op-unknown": func() []byte { b := request{op: opAlloc}.marshal(); b[5] = byte(numOps); return b }(),
		"reserved":   func() []byte { b := request{op: opAlloc}.marshal(); b[6] = 1; return b }(),
	} {
		var q request
		if err := q.unmarshal(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("request %s: %v, want ErrProtocol", name, err)
		}
	}
	good := reply{op: opAlloc, remote: rem}.marshal()
	for name, b := range map[string][]byte{
		"short":    good[:replyFixed-1],
		"textlen":  append(append([]byte{}, good...), 'x'),
		"notreply": func() []byte { b := append([]byte{}, good...); b[5] = byte(opAlloc); return b }(),
		"ping":     func() []byte { b := append([]byte{}, good...); b[5] = byte(opPing) | replyBit; return b }(),
		"status":   func() []byte { b := append([]byte{}, good...); b[6] = byte(numStatus); return b }(),
		"remote":   func() []byte { b := append([]byte{}, good...); b[20] = 'X'; return b }(),
	} {
		var r reply
		if err := r.unmarshal(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("reply %s: %v, want ErrProtocol", name, err)
		}
	}
}

func FuzzRequest(f *testing.F) {
	f.Add(request{op: opAlloc, id: 1, arg: 4096}.marshal())
	f.Add(request{op: opBye}.marshal())
	f.Add([]byte("RKPG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var q request
		if err := q.unmarshal(b); err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if !bytes.Equal(q.marshal(), b) {
			t.Fatalf("%x decodes to %+v, which encodes differently", b, q)
		}
	})
}

func FuzzReply(f *testing.F) {
	f.Add(reply{op: opAlloc, slab: 1, remote: fabric.Remote{Addr: 1, Key: 2, Len: 4096}}.marshal())
	f.Add(reply{op: opFree, status: statusNoSlab, text: "slab 3"}.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		var r reply
		if err := r.unmarshal(b); err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if !bytes.Equal(r.marshal(), b) {
			t.Fatalf("%x decodes to %+v, which encodes differently", b, r)
		}
		_ = r.status.err(r.text)
	})
}

func FuzzMajorityStride(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := make([]int, 0, historyLen)
		for _, c := range b[:min(len(b), historyLen)] {
			h = append(h, int(int8(c)))
		}
		d, ok := majorityStride(h)
		if !ok {
			return
		}
		n := 0
		for i := 0; i+1 < len(h); i++ {
			if h[i]-h[i+1] == d {
				n++
			}
		}
		if d == 0 || 2*n <= len(h)-1 {
			t.Fatalf("%v: stride %d is no majority", h, d)
		}
	})
}

func TestMajorityStride(t *testing.T) {
	for _, c := range []struct {
		h    []int
		d    int
		want bool
	}{
		{[]int{5, 4, 3, 2}, 1, true},
		{[]int{10, 7, 4, 1, 99}, 3, true},
		{[]int{1, 9, 2, 40}, 0, false},
		{[]int{3, 3, 3}, 0, false},
		{[]int{2, 1}, 0, false},
		{[]int{0, 2, 4, 6, 8}, -2, true},
	} {
		d, ok := majorityStride(c.h)
		if ok != c.want || ok && d != c.d {
			t.Errorf("%v: %d, %v; want %d, %v", c.h, d, ok, c.d, c.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(us(i))
	}
	for _, c := range []struct {
		q    float64
		want int
	}{{0.5, 500}, {0.99, 990}} {
		got := h.Quantile(c.q)
		if lo, hi := us(c.want*85/100), us(c.want*115/100); got < lo || got > hi {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, us(c.want))
		}
	}
	for ns := uint64(0); ns < 1<<20; ns = ns*9/8 + 1 {
		if m := bucketMid(bucketOf(ns)); float64(m) < float64(ns)*0.85 || float64(m) > float64(ns)*1.15+1 {
			t.Fatalf("%d ns lands in a bucket around %d", ns, m)
		}
	}
}

func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }
