package shmem

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rdmakit/rdmakit/fabric"
)

// The membership protocol, sent with Conn.Send on the control connection a member dials to
// each member (itself included) when it joins. Nothing of it is on the data path.
//
//	header (40 bytes, little endian):
//	  magic "RKS" | version 2 | kind | status | from u16 | members u16 | beacon u16
//	  | segment u64 | portion size u64 | incarnation u64 | pid u32
//	pid is the sender's process id if its address is on this host only (shm, loopback), else 0;
//	beacon is then 1 + the fd of its liveness beacon (beacon.go), or 0 for none.
//	kind 1 hello   (dialer → member): header only; from is the dialer's index, incarnation its own
//	kind 2 welcome (member → dialer): header, then on status 0 the 28-byte descriptor of the
//	               member's portion (fabric.Remote); from is the member's index, incarnation its own
//
// segment is a hash of the segment name; a member refuses a hello whose segment, member count
// or portion size differ from its own (status 1) or whose index is out of range (status 2).

const (
	kindHello   = 1
	kindWelcome = 2

	statusOK       = 0
	statusMismatch = 1
	statusBadIndex = 2
	statusClosing  = 3

	headerLen  = 40
	regionLen  = 28
	maxMsgLen  = headerLen + regionLen
	maxMembers = 1 << 12
)

var wireMagic = [4]byte{'R', 'K', 'S', 2}

// errWire is a malformed membership message.
var errWire = errors.New("shmem: malformed membership message")

// msg is one membership message.
type msg struct {
	kind        byte
	status      byte
	from        uint16
	members     uint16
	segment     uint64
	size        uint64
	incarnation uint64
	pid         uint32
	beacon      uint16        // 1 + beacon fd, 0: none
	portion     fabric.Remote // welcome with status 0
}

func (m msg) marshal() []byte {
	b := make([]byte, 0, maxMsgLen)
	b = append(b, wireMagic[:]...)
	b = append(b, m.kind, m.status)
	b = binary.LittleEndian.AppendUint16(b, m.from)
	b = binary.LittleEndian.AppendUint16(b, m.members)
	b = binary.LittleEndian.AppendUint16(b, m.beacon)
	b = binary.LittleEndian.AppendUint64(b, m.segment)
	b = binary.LittleEndian.AppendUint64(b, m.size)
	b = binary.LittleEndian.AppendUint64(b, m.incarnation)
	b = binary.LittleEndian.AppendUint32(b, m.pid)
	if m.kind == kindWelcome && m.status == statusOK {
		b, _ = m.portion.AppendBinary(b)
	}
	return b
}

// parseMsg decodes a membership message; anything malformed is errWire.
func parseMsg(b []byte) (msg, error) {
	if len(b) < headerLen || [4]byte(b[:4]) != wireMagic {
		return msg{}, fmt.Errorf("%w: %d bytes without the RKS2 header", errWire, len(b))
	}
	m := msg{kind: b[4], status: b[5],
		from:        binary.LittleEndian.Uint16(b[6:]),
		members:     binary.LittleEndian.Uint16(b[8:]),
		beacon:      binary.LittleEndian.Uint16(b[10:]),
		segment:     binary.LittleEndian.Uint64(b[12:]),
		size:        binary.LittleEndian.Uint64(b[20:]),
		incarnation: binary.LittleEndian.Uint64(b[28:]),
		pid:         binary.LittleEndian.Uint32(b[36:]),
	}
	if m.beacon != 0 && m.pid == 0 {
		return msg{}, fmt.Errorf("%w: beacon fd %d without a pid", errWire, m.beacon-1)
	}
	if m.members == 0 || m.members > maxMembers || m.from >= m.members {
		return msg{}, fmt.Errorf("%w: member %d of %d", errWire, m.from, m.members)
	}
	want := headerLen
	switch m.kind {
	case kindHello:
		if m.status != statusOK {
			return msg{}, fmt.Errorf("%w: status %d in a kind %d message", errWire, m.status, m.kind)
		}
	case kindWelcome:
		if m.status > statusClosing {
			return msg{}, fmt.Errorf("%w: welcome status %d", errWire, m.status)
		}
		if m.status == statusOK {
			want += regionLen
		}
	default:
		return msg{}, fmt.Errorf("%w: kind %d", errWire, m.kind)
	}
	if len(b) != want {
		return msg{}, fmt.Errorf("%w: kind %d message of %d bytes, want %d", errWire, m.kind, len(b), want)
	}
	if want > headerLen {
		if err := m.portion.UnmarshalBinary(b[headerLen:]); err != nil {
			return msg{}, fmt.Errorf("%w: %w", errWire, err)
		}
		if m.portion.Len != m.size {
			return msg{}, fmt.Errorf("%w: descriptor of %d bytes for a %d-byte portion", errWire, m.portion.Len, m.size)
		}
	}
	return m, nil
}

func statusText(s byte) string {
	switch s {
	case statusMismatch:
		return "segment name, member count or portion size differ"
	case statusBadIndex:
		return "member index out of range"
	case statusClosing:
		return "member is closing"
	}
	return fmt.Sprintf("status %d", s)
}
