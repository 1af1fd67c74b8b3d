package shmem

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rdmakit/rdmakit/fabric"
)

func TestWireRoundTrip(t *testing.T) {
	for _, m := range []msg{
		{kind: kindHello, from: 2, members: 3, segment: 7, size: 4096, incarnation: 99, pid: 1234, beacon: 8},
		{kind: kindWelcome, from: 0, members: 3, segment: 7, size: 4096, incarnation: 5,
			portion: fabric.Remote{Addr: 0x7f0000, Key: 42, Len: 4096}},
		{kind: kindWelcome, status: statusMismatch, from: 1, members: 2, segment: 7, size: 8},
	} {
		got, err := parseMsg(m.marshal())
		if err != nil || got != m {
			t.Errorf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
}

func TestWireRejects(t *testing.T) {
	good := msg{kind: kindWelcome, from: 1, members: 2, segment: 7, size: 64,
		portion: fabric.Remote{Addr: 8, Key: 1, Len: 64}}.marshal()
	mut := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short":          good[:headerLen-1],
		"truncated":      good[:len(good)-1],
		"long":           append(bytes.Clone(good), 0),
		"magic":          mut(0, 'X'),
		"kind":           mut(4, 9),
		"status":         mut(5, 9),
		"from too big":   mut(6, 5),
		"no members":     mut(8, 0),
		"beacon, no pid": mut(10, 1),
		"descriptor len": mut(20, 65),
		"hello status":   msg{kind: kindHello, status: 1, members: 1}.marshal(),
	} {
		if _, err := parseMsg(b); !errors.Is(err, errWire) {
			t.Errorf("%s: err = %v, want errWire", name, err)
		}
	}
}

func FuzzWire(f *testing.F) {
	f.Add(msg{kind: kindHello, from: 1, members: 2, segment: 3, size: 64, incarnation: 1}.marshal())
	f.Add(msg{kind: kindWelcome, from: 0, members: 2, segment: 3, size: 64, incarnation: 1,
		portion: fabric.Remote{Addr: 4096, Key: 9, Len: 64}}.marshal())
	f.Add(msg{kind: kindWelcome, status: statusClosing, members: 1}.marshal())
	f.Add(msg{kind: kindHello, from: 1, members: 2, segment: 3, size: 64, pid: 77, beacon: 5}.marshal())
	f.Add([]byte("RKS\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMsg(b)
		if err != nil {
			if !errors.Is(err, errWire) {
				t.Fatalf("error %v does not match errWire", err)
			}
			return
		}
		// Whatever parses is canonical: it marshals back to the same bytes.
		if out := m.marshal(); !bytes.Equal(out, b) {
			t.Fatalf("%x parsed as %+v, marshals to %x", b, m, out)
		}
		if m.from >= m.members || m.kind == kindWelcome && m.status == statusOK && m.portion.Len != m.size ||
			m.beacon != 0 && m.pid == 0 {
			t.Fatalf("accepted an inconsistent message %+v", m)
		}
	})
}
