package pager

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rdmakit/rdmakit/fabric"
)

// The control protocol between the runtime and a memory server: small Send/Recv messages.
// Every message opens with "RKPG" and the format version. Data never travels here: pages move
// by RDMA READ and WRITE against the slab descriptors the server hands out.
//
//	request: magic[4] version[1] op[1] zero[2] id[4] arg[8]                        (20 bytes)
//	reply:   magic[4] version[1] op|0x80[1] status[2] id[4] slab[8] remote[28]
//	         textlen[2] text[textlen]                                               (<= 306 bytes)
const (
	wireVersion  = 1
	requestSize  = 20
	replyFixed   = 50
	maxReplyText = 256
	maxReplySize = replyFixed + maxReplyText
	remoteSize   = 28
	replyBit     = 0x80
)

var wireMagic = [4]byte{'R', 'K', 'P', 'G'}

// op is a control operation.
type op uint8

const (
	opAlloc op = iota + 1 // arg: slab size in bytes; reply: slab id and descriptor
	opFree                // arg: slab id
	opPing                // keeps the client's lease; no reply
	opBye                 // the client leaves: its slabs are released
	numOps
)

func (o op) String() string {
	switch o {
	case opAlloc:
		return "alloc"
	case opFree:
		return "free"
	case opPing:
		return "ping"
	case opBye:
		return "bye"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// status is a reply's outcome.
type status uint16

const (
	statusOK        status = iota
	statusInvalid          // malformed or nonsensical request
	statusQuota            // the client's quota would be exceeded
	statusExhausted        // the pool has no free range that large
	statusNoSlab           // unknown slab id
	numStatus
)

// Errors a memory server reports, matched with errors.Is.
var (
	// ErrQuota: the request would exceed the client's quota on the server.
	ErrQuota = errors.New("pager: server quota exceeded")
	// ErrPoolExhausted: the server's pool has no free range that large.
	ErrPoolExhausted = errors.New("pager: server pool exhausted")
	// ErrProtocol: a malformed control message.
	ErrProtocol = errors.New("pager: protocol error")
	// ErrInvalid: bad argument (size, alignment, budget).
	ErrInvalid = errors.New("pager: invalid argument")
)

func (s status) err(text string) error {
	var base error
	switch s {
	case statusOK:
		return nil
	case statusInvalid:
		base = ErrInvalid
	case statusQuota:
		base = ErrQuota
	case statusExhausted:
		base = ErrPoolExhausted
	case statusNoSlab:
		base = fmt.Errorf("%w: unknown slab", ErrInvalid)
	default:
		base = fmt.Errorf("%w: status %d", ErrProtocol, uint16(s))
	}
	if text == "" {
		return base
	}
	return fmt.Errorf("%w: server: %s", base, text)
}

// request is a control request.
type request struct {
	op  op
	id  uint32
	arg uint64
}

func (r request) marshal() []byte {
	b := make([]byte, requestSize)
	copy(b, wireMagic[:])
	b[4], b[5] = wireVersion, byte(r.op)
	binary.LittleEndian.PutUint32(b[8:], r.id)
	binary.LittleEndian.PutUint64(b[12:], r.arg)
	return b
}

func (r *request) unmarshal(b []byte) error {
	if len(b) != requestSize {
		return fmt.Errorf("%w: request of %d bytes, want %d", ErrProtocol, len(b), requestSize)
	}
	if [4]byte(b[:4]) != wireMagic || b[4] != wireVersion {
		return fmt.Errorf("%w: bad magic or version %x", ErrProtocol, b[:5])
	}
	o := op(b[5])
	if o == 0 || o >= numOps || b[6] != 0 || b[7] != 0 {
		return fmt.Errorf("%w: bad op %d", ErrProtocol, b[5])
	}
	*r = request{op: o, id: binary.LittleEndian.Uint32(b[8:]), arg: binary.LittleEndian.Uint64(b[12:])}
	return nil
}

// reply answers an alloc or free request.
type reply struct {
	op     op
	status status
	id     uint32
	slab   uint64
	remote fabric.Remote
	text   string
}

func (r reply) marshal() []byte {
	text := r.text
	if len(text) > maxReplyText {
		text = text[:maxReplyText]
	}
	b := make([]byte, replyFixed, replyFixed+len(text))
	copy(b, wireMagic[:])
	b[4], b[5] = wireVersion, byte(r.op)|replyBit
	binary.LittleEndian.PutUint16(b[6:], uint16(r.status))
	binary.LittleEndian.PutUint32(b[8:], r.id)
	binary.LittleEndian.PutUint64(b[12:], r.slab)
	rb, _ := r.remote.MarshalBinary()
	copy(b[20:], rb)
	binary.LittleEndian.PutUint16(b[48:], uint16(len(text)))
	return append(b, text...)
}

func (r *reply) unmarshal(b []byte) error {
	if len(b) < replyFixed || len(b) > maxReplySize {
		return fmt.Errorf("%w: reply of %d bytes", ErrProtocol, len(b))
	}
	if [4]byte(b[:4]) != wireMagic || b[4] != wireVersion {
		return fmt.Errorf("%w: bad magic or version %x", ErrProtocol, b[:5])
	}
	o := op(b[5] &^ replyBit)
	if b[5]&replyBit == 0 || (o != opAlloc && o != opFree && o != opBye) {
		return fmt.Errorf("%w: bad reply op %#x", ErrProtocol, b[5])
	}
	st := status(binary.LittleEndian.Uint16(b[6:]))
	if st >= numStatus {
		return fmt.Errorf("%w: bad status %d", ErrProtocol, st)
	}
	n := int(binary.LittleEndian.Uint16(b[48:]))
	if n != len(b)-replyFixed {
		return fmt.Errorf("%w: text of %d bytes in %d", ErrProtocol, n, len(b)-replyFixed)
	}
	var rem fabric.Remote
	if err := rem.UnmarshalBinary(b[20:48]); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	*r = reply{op: o, status: st, id: binary.LittleEndian.Uint32(b[8:]),
		slab: binary.LittleEndian.Uint64(b[12:]), remote: rem, text: string(b[replyFixed:])}
	return nil
}
