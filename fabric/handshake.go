package fabric

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rdmakit/rdmakit/ofi"
)

// The connection handshake of connectionless (RDM) transports. A dialer sends a hello from
// its own new endpoint to the listener's well-known endpoint; the listener makes an endpoint
// for the connection and answers from it with a welcome that carries that endpoint's name.
// Both carry the sender's keepalive word (ofi_alive.go): its address and key for RMA reads.
//
//	magic "RKH" | version 2 | kind (1 hello, 2 welcome) | status | name length (u16 LE) | name |
//	keepalive word address (u64 LE) | its key (u64 LE)

const (
	helloKind   = 1
	welcomeKind = 2
	maxNameLen  = 1024
)

var handshakeMagic = [4]byte{'R', 'K', 'H', 2}

var errHandshake = errors.New("fabric: malformed handshake message")

type handshake struct {
	kind   byte
	status byte // welcome: 0 accepted, else refused
	name   []byte
	alive  ofi.Region // the sender's keepalive word (Addr and Key)
}

// handshakeMax is the longest handshake message.
const handshakeMax = 8 + maxNameLen + 16

func (h handshake) marshal() []byte {
	b := make([]byte, 0, 8+len(h.name)+16)
	b = append(b, handshakeMagic[:]...)
	b = append(b, h.kind, h.status)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h.name)))
	b = append(b, h.name...)
	b = binary.LittleEndian.AppendUint64(b, h.alive.Addr)
	return binary.LittleEndian.AppendUint64(b, h.alive.Key)
}

func parseHandshake(b []byte) (handshake, error) {
	if len(b) < 8 || [4]byte(b[:4]) != handshakeMagic {
		return handshake{}, fmt.Errorf("%w: %d bytes", errHandshake, len(b))
	}
	h := handshake{kind: b[4], status: b[5]}
	if h.kind != helloKind && h.kind != welcomeKind {
		return handshake{}, fmt.Errorf("%w: kind %d", errHandshake, h.kind)
	}
	n := int(binary.LittleEndian.Uint16(b[6:]))
	if n == 0 || n > maxNameLen || len(b) != 8+n+16 {
		return handshake{}, fmt.Errorf("%w: name of %d bytes in a %d-byte message", errHandshake, n, len(b))
	}
	h.name = append([]byte(nil), b[8:8+n]...)
	h.alive.Addr = binary.LittleEndian.Uint64(b[8+n:])
	h.alive.Key = binary.LittleEndian.Uint64(b[16+n:])
	return h, nil
}
