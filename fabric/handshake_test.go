package fabric

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rdmakit/rdmakit/ofi"
)

func TestHandshakeRoundTrip(t *testing.T) {
	in := handshake{kind: welcomeKind, status: 0, name: []byte{1, 2, 3, 4}, alive: ofi.Region{Addr: 0x1000, Key: 7}}
	out, err := parseHandshake(in.marshal())
	if err != nil || out.kind != in.kind || out.status != in.status || !bytes.Equal(out.name, in.name) || out.alive != in.alive {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     []byte("XXXX\x01\x00\x01\x00a"),
		"kind":      append(append([]byte{}, handshakeMagic[:]...), 9, 0, 1, 0, 'a'),
		"no name":   append(append([]byte{}, handshakeMagic[:]...), 1, 0, 0, 0),
		"truncated": append(append([]byte{}, handshakeMagic[:]...), 1, 0, 5, 0, 'a'),
		"no word":   append(append([]byte{}, handshakeMagic[:]...), 1, 0, 1, 0, 'a'),
		"version 1": append([]byte("RKH\x01"), 1, 0, 1, 0, 'a'),
	} {
		if _, err := parseHandshake(b); !errors.Is(err, errHandshake) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzHandshake(f *testing.F) {
	f.Add(handshake{kind: helloKind, name: []byte("abc"), alive: ofi.Region{Addr: 1, Key: 2}}.marshal())
	f.Add([]byte("RKH\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHandshake(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.marshal(), b) {
			t.Fatalf("re-marshal differs from input")
		}
	})
}
