package raid

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/rdmakit/rdmakit/fabric"
)

// Every message starts with a 13-byte header: magic "RKD", version 1, the message type and a
// request id that the reply carries back. Integers are little endian; strings and byte strings
// carry a 32-bit length.
const (
	wireVersion = 1
	headerLen   = 13
	maxSegs     = 1800 // segments per command: fits a 64 KiB message
	maxStr      = 4096
)

type msgType uint8

const (
	msgHostHello  msgType = iota + 1 // host → controller or target: session, role
	msgVolumeInfo                    // controller → host
	msgWrite                         // host → controller: ioRequest
	msgRead                          // host → controller: ioRequest
	msgStatusReq                     // host → controller
	msgStatus                        // controller → host: status JSON
	msgReplace                       // host → controller: member, address
	msgReply                         // any reply: code, text
	msgCtrlHello                     // controller → target
	msgTargetInfo                    // target → controller: capacity, superblock
	msgFormat                        // controller → target: superblock to write
	msgCommand                       // controller → target
	msgCmdReply                      // target → controller
	msgStatsReq                      // controller → target
	msgStats                         // target → controller
	numMsgTypes
)

// Reply codes.
const (
	codeOK uint16 = iota
	codeInvalid
	codeRange
	codeHostAccess
	codeStale
	codeFailed
	codeIO
	codeForeign
	codeFormat
	codeBusy
	codeLayout
	codeNoVolume
)

var codeErrs = map[uint16]error{codeInvalid: ErrInvalid, codeRange: ErrRange, codeHostAccess: ErrHostAcc,
	codeStale: ErrStale, codeFailed: ErrFailed, codeIO: ErrTarget, codeForeign: ErrForeign,
	codeFormat: ErrFormat, codeBusy: ErrBusy, codeLayout: ErrLayout, codeNoVolume: ErrNoVolume}

func codeOf(err error) uint16 {
	for c, e := range codeErrs {
		if errors.Is(err, e) {
			return c
		}
	}
	return codeIO
}

// enc appends wire fields.
type enc struct{ b []byte }

func newMsg(t msgType, id uint64) *enc {
	e := &enc{b: make([]byte, 0, 128)}
	e.b = append(e.b, 'R', 'K', 'D', wireVersion, byte(t))
	e.u64(id)
	return e
}
func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) str(s string) { e.u32(uint32(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) region(r fabric.Remote) { e.b, _ = r.AppendBinary(e.b) }

// dec reads wire fields; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrFormat}, a...)...)
	}
}
func (d *dec) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail("%s: %d bytes left, need %d", what, len(d.b), n)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}
func (d *dec) u8(w string) uint8 {
	if p := d.take(1, w); p != nil {
		return p[0]
	}
	return 0
}
func (d *dec) u16(w string) uint16 {
	if p := d.take(2, w); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
func (d *dec) u32(w string) uint32 {
	if p := d.take(4, w); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (d *dec) u64(w string) uint64 {
	if p := d.take(8, w); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}
func (d *dec) str(w string, max int) string {
	n := d.u32(w)
	if d.err == nil && int64(n) > int64(max) {
		d.fail("%s: %d bytes, max %d", w, n, max)
		return ""
	}
	return string(d.take(int(n), w))
}
func (d *dec) blob(w string, max int) []byte {
	n := d.u32(w)
	if d.err == nil && int64(n) > int64(max) {
		d.fail("%s: %d bytes, max %d", w, n, max)
		return nil
	}
	return append([]byte(nil), d.take(int(n), w)...)
}
func (d *dec) region(w string) fabric.Remote {
	var r fabric.Remote
	p := d.take(28, w)
	if p == nil {
		return r
	}
	if err := r.UnmarshalBinary(p); err != nil {
		d.fail("%s: %v", w, err)
	}
	return r
}
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// parseHeader splits a message into type, id and body.
func parseHeader(b []byte) (msgType, uint64, *dec, error) {
	if len(b) < headerLen {
		return 0, 0, nil, fmt.Errorf("%w: %d-byte message, header is %d", ErrFormat, len(b), headerLen)
	}
	if b[0] != 'R' || b[1] != 'K' || b[2] != 'D' {
		return 0, 0, nil, fmt.Errorf("%w: bad magic %q", ErrFormat, b[:3])
	}
	if b[3] != wireVersion {
		return 0, 0, nil, fmt.Errorf("%w: wire version %d, want %d", ErrFormat, b[3], wireVersion)
	}
	t := msgType(b[4])
	if t == 0 || t >= numMsgTypes {
		return 0, 0, nil, fmt.Errorf("%w: message type %d", ErrFormat, t)
	}
	return t, binary.LittleEndian.Uint64(b[5:]), &dec{b: b[headerLen:]}, nil
}

// hello opens every connection to a controller or a target.
type hello struct {
	Session uint64 // host session (0 from a controller)
	Role    uint8  // roleControl, roleData
}

const (
	roleControl uint8 = 1 // host's request connection to the controller
	roleData    uint8 = 2 // host's connection the peer does RDMA on
)

func (h hello) marshal(id uint64) []byte {
	e := newMsg(msgHostHello, id)
	e.u64(h.Session)
	e.u8(h.Role)
	return e.b
}

func parseHello(d *dec) (hello, error) {
	h := hello{Session: d.u64("session"), Role: d.u8("role")}
	if d.err == nil && h.Role != roleControl && h.Role != roleData {
		d.fail("role %d", h.Role)
	}
	if d.err == nil && h.Session == 0 {
		d.fail("session 0")
	}
	return h, d.end()
}

// VolumeInfo is what a host learns of the volume.
type VolumeInfo struct {
	ID      [16]byte
	Layout  Layout
	Size    int64    // bytes
	Members []string // target addresses; empty for a failed member
}

func (v VolumeInfo) marshal(id uint64) []byte {
	e := newMsg(msgVolumeInfo, id)
	e.b = append(e.b, v.ID[:]...)
	e.str(v.Layout.Level)
	e.u32(uint32(v.Layout.K))
	e.u32(uint32(v.Layout.M))
	e.u32(uint32(v.Layout.Chunk))
	e.u64(uint64(v.Size))
	e.u32(uint32(len(v.Members)))
	for _, m := range v.Members {
		e.str(m)
	}
	return e.b
}

func parseVolumeInfo(d *dec) (VolumeInfo, error) {
	var v VolumeInfo
	copy(v.ID[:], d.take(16, "volume id"))
	v.Layout.Level = d.str("level", 16)
	v.Layout.K, v.Layout.M, v.Layout.Chunk = int(d.u32("k")), int(d.u32("m")), int(d.u32("chunk"))
	v.Size = int64(d.u64("size"))
	n := d.u32("members")
	if d.err == nil && (n > 64 || int(n) != v.Layout.K+v.Layout.M) {
		d.fail("%d members for %d+%d", n, v.Layout.K, v.Layout.M)
	}
	for i := 0; d.err == nil && i < int(n); i++ {
		v.Members = append(v.Members, d.str("member", 1024))
	}
	if err := d.end(); err != nil {
		return VolumeInfo{}, err
	}
	if err := v.Layout.Check(len(v.Members)); err != nil {
		return VolumeInfo{}, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if v.Size < 0 {
		return VolumeInfo{}, fmt.Errorf("%w: size %d", ErrFormat, v.Size)
	}
	return v, nil
}

// ioRequest is a host write or read: Length bytes at volume Offset from/to host memory Host at
// HostOff.
type ioRequest struct {
	Offset, Length uint64
	Host           fabric.Remote
	HostOff        uint64
	Flags          uint32
	Exclude        uint64 // members to treat as missing (verification)
}

// Request flags.
const (
	flagThroughController uint32 = 1 << iota // classic path: data via the controller (baseline)
	flagAllFlags                 = flagThroughController
)

func (r ioRequest) marshal(t msgType, id uint64) []byte {
	e := newMsg(t, id)
	e.u64(r.Offset)
	e.u64(r.Length)
	e.region(r.Host)
	e.u64(r.HostOff)
	e.u32(r.Flags)
	e.u64(r.Exclude)
	return e.b
}

func parseIORequest(d *dec) (ioRequest, error) {
	r := ioRequest{Offset: d.u64("offset"), Length: d.u64("length"), Host: d.region("host region"),
		HostOff: d.u64("host offset"), Flags: d.u32("flags"), Exclude: d.u64("exclude")}
	if d.err == nil && r.Flags&^flagAllFlags != 0 {
		d.fail("flags %#x", r.Flags)
	}
	return r, d.end()
}

// reply is the generic answer: a code and a text.
type reply struct {
	Code uint16
	Text string
}

func (r reply) marshal(id uint64) []byte {
	e := newMsg(msgReply, id)
	e.u16(r.Code)
	e.str(r.Text)
	return e.b
}

func parseReply(d *dec) (reply, error) {
	r := reply{Code: d.u16("code"), Text: d.str("text", maxStr)}
	return r, d.end()
}

func (r reply) err() error {
	if r.Code == codeOK {
		return nil
	}
	if e, ok := codeErrs[r.Code]; ok {
		if rest, ok := strings.CutPrefix(r.Text, e.Error()); ok {
			return fmt.Errorf("%w%s", e, rest)
		}
		return fmt.Errorf("%w: %s", e, r.Text)
	}
	return fmt.Errorf("%w: code %d: %s", ErrTarget, r.Code, r.Text)
}

func errReply(err error) reply { return reply{Code: codeOf(err), Text: err.Error()} }

// replaceReq asks the controller to rebuild member onto the target at Addr.
type replaceReq struct {
	Member uint32
	Addr   string
}

func (r replaceReq) marshal(id uint64) []byte {
	e := newMsg(msgReplace, id)
	e.u32(r.Member)
	e.str(r.Addr)
	return e.b
}

func parseReplace(d *dec) (replaceReq, error) {
	r := replaceReq{Member: d.u32("member"), Addr: d.str("address", 1024)}
	if d.err == nil && r.Member >= 64 {
		d.fail("member %d", r.Member)
	}
	return r, d.end()
}

// blobMsg carries one byte string (status JSON, superblocks).
func blobMsg(t msgType, id uint64, p []byte) []byte {
	e := newMsg(t, id)
	e.bytes(p)
	return e.b
}

func parseBlob(d *dec, max int) ([]byte, error) {
	p := d.blob("body", max)
	return p, d.end()
}

// targetInfo is a target's answer to a controller's hello.
type targetInfo struct {
	Capacity   uint64 // bytes of the data area
	Superblock []byte // empty when the store is blank
}

func (t targetInfo) marshal(id uint64) []byte {
	e := newMsg(msgTargetInfo, id)
	e.u64(t.Capacity)
	e.bytes(t.Superblock)
	return e.b
}

func parseTargetInfo(d *dec) (targetInfo, error) {
	t := targetInfo{Capacity: d.u64("capacity"), Superblock: d.blob("superblock", superblockLen)}
	return t, d.end()
}

// Command operations.
const (
	cmdPull uint8 = iota + 1 // RDMA READ remote → store
	cmdPush                  // store → RDMA WRITE remote
)

// Segment kinds, for the counters.
const (
	kindData     uint8 = iota + 1 // host data
	kindParity                    // parity from controller memory
	kindRebuild                   // reconstructed chunks from controller memory
	kindChunk                     // chunks into controller memory (RMW, degraded, rebuild)
	kindCtrlData                  // host data staged in controller memory (through-controller baseline)
)

// segment is one piece of a command: Len bytes at member offset MemberOff and RemoteOff into
// the command's remote region.
type segment struct {
	MemberOff uint64
	RemoteOff uint64
	Len       uint32
}

// command is a controller's order to a target.
type command struct {
	Op      uint8
	Kind    uint8
	Session uint64 // host session whose connection to use; 0 = the controller's connection
	Remote  fabric.Remote
	Sync    bool // make a pull durable before replying
	Segs    []segment
}

func (c command) marshal(id uint64) []byte {
	e := newMsg(msgCommand, id)
	e.b = append(e.b, c.Op, c.Kind)
	e.u64(c.Session)
	e.region(c.Remote)
	if c.Sync {
		e.u8(1)
	} else {
		e.u8(0)
	}
	e.u32(uint32(len(c.Segs)))
	for _, s := range c.Segs {
		e.u64(s.MemberOff)
		e.u64(s.RemoteOff)
		e.u32(s.Len)
	}
	return e.b
}

func parseCommand(d *dec) (command, error) {
	c := command{Op: d.u8("op"), Kind: d.u8("kind"), Session: d.u64("session"), Remote: d.region("remote")}
	switch sync := d.u8("sync"); sync {
	case 0, 1:
		c.Sync = sync == 1
	default:
		d.fail("sync flag %d", sync)
	}
	n := d.u32("segments")
	if d.err == nil && (c.Op != cmdPull && c.Op != cmdPush) {
		d.fail("op %d", c.Op)
	}
	if d.err == nil && (c.Kind < kindData || c.Kind > kindCtrlData) {
		d.fail("kind %d", c.Kind)
	}
	if d.err == nil && (n == 0 || n > maxSegs) {
		d.fail("%d segments (1..%d)", n, maxSegs)
	}
	if d.err == nil && len(d.b) != int(n)*20 {
		d.fail("%d segments in %d bytes", n, len(d.b))
	}
	for i := 0; d.err == nil && i < int(n); i++ {
		s := segment{MemberOff: d.u64("member offset"), RemoteOff: d.u64("remote offset"), Len: d.u32("length")}
		if s.Len == 0 {
			d.fail("segment %d of 0 bytes", i)
		}
		if s.MemberOff+uint64(s.Len) < s.MemberOff || !c.Remote.Contains(s.RemoteOff, uint64(s.Len)) {
			d.fail("segment %d [%d+%d) outside the remote region of %d bytes", i, s.RemoteOff, s.Len, c.Remote.Len)
		}
		c.Segs = append(c.Segs, s)
	}
	return c, d.end()
}

// cmdReply is a target's answer to a command.
type cmdReply struct {
	reply
	Bytes uint64
}

func (r cmdReply) marshal(id uint64) []byte {
	e := newMsg(msgCmdReply, id)
	e.u16(r.Code)
	e.str(r.Text)
	e.u64(r.Bytes)
	return e.b
}

func parseCmdReply(d *dec) (cmdReply, error) {
	r := cmdReply{reply: reply{Code: d.u16("code"), Text: d.str("text", maxStr)}, Bytes: d.u64("bytes")}
	return r, d.end()
}

func (t TargetCounters) marshal(id uint64) []byte {
	e := newMsg(msgStats, id)
	for _, v := range []uint64{t.PulledFromHost, t.PushedToHost, t.PulledFromController, t.PushedToController,
		t.Syncs, t.Commands} {
		e.u64(v)
	}
	return e.b
}

func parseTargetCounters(d *dec) (TargetCounters, error) {
	t := TargetCounters{d.u64("pulled"), d.u64("pushed"), d.u64("ctrl pulled"), d.u64("ctrl pushed"),
		d.u64("syncs"), d.u64("commands")}
	return t, d.end()
}
