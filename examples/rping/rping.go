// Package rping is rdma-core's rping (librdmacm/examples/rping.c) over rdmakit's fabric API
// on the verbs backend, wire-compatible with the C program in both roles.
//
// One ping, as the C program does it over an RC connection:
//
//	client: send Adv{start buffer}      server: RDMA READ the start buffer into its own
//	client: wait for "go ahead"         server: send "go ahead"
//	client: send Adv{sink buffer}       server: RDMA WRITE the data back into the sink
//	client: wait for "go ahead"         server: send "go ahead"
//	client: compare sink and start
//
// The client disconnects after the last ping; the server ends when its peer disconnects.
package rping

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/rdmakit/rdmakit/fabric"
)

// AdvSize is the size of an Adv on the wire (struct rping_rdma_info).
const AdvSize = 16

// Sizes accepted for ping data, as the C program checks them: room for the longest
// "rdma-ping-%d: " prefix, below its 64 KiB buffer.
const (
	MinSize = len("2147483647") + 1 + len("rdma-ping-%d: ") + 1
	MaxSize = 64*1024 - 1
)

// ErrFormat reports a malformed message from the peer.
var ErrFormat = errors.New("rping: malformed message")

// Adv advertises a buffer to the peer: its address, rkey and size. On the wire it is 16 bytes
// in network byte order: addr u64, rkey u32, size u32.
type Adv struct {
	Addr uint64
	RKey uint32
	Size uint32
}

// MarshalBinary returns the 16-byte wire form.
func (a Adv) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, AdvSize)
	b = binary.BigEndian.AppendUint64(b, a.Addr)
	b = binary.BigEndian.AppendUint32(b, a.RKey)
	return binary.BigEndian.AppendUint32(b, a.Size), nil
}

// UnmarshalBinary decodes the wire form; anything but 16 bytes is ErrFormat.
func (a *Adv) UnmarshalBinary(b []byte) error {
	if len(b) != AdvSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrFormat, len(b), AdvSize)
	}
	a.Addr = binary.BigEndian.Uint64(b)
	a.RKey = binary.BigEndian.Uint32(b[8:])
	a.Size = binary.BigEndian.Uint32(b[12:])
	return nil
}

// remote turns an advertisement into a fabric descriptor of the peer's buffer.
func (a Adv) remote() fabric.Remote {
	return fabric.Remote{Addr: a.Addr, Key: uint64(a.RKey), Len: uint64(a.Size)}
}

func advOf(m *fabric.Memory, size int) Adv {
	r := m.Remote()
	return Adv{Addr: r.Addr, RKey: uint32(r.Key), Size: uint32(size)}
}

// Fill writes ping number ping into buf the way the C client does: "rdma-ping-N: " and then
// letters cycling from A..z, starting at start (65 to 122), with a final NUL. It returns the
// start letter of the next ping.
func Fill(buf []byte, ping int, start int) int {
	prefix := "rdma-ping-" + strconv.Itoa(ping) + ": "
	copy(buf[:len(buf)-1], prefix) // snprintf stops at size-1
	c := byte(start)
	for i := len(prefix); i < len(buf); i++ {
		buf[i] = c
		if c++; c > 122 {
			c = 65
		}
	}
	if start++; start > 122 {
		start = 65
	}
	buf[len(buf)-1] = 0
	return start
}

// cstring is buf up to its first NUL.
func cstring(buf []byte) []byte {
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		return buf[:i]
	}
	return buf
}

// Options tune a run.
type Options struct {
	Count    int       // pings (client; 0: until canceled)
	Size     int       // ping data size (client)
	Validate bool      // compare what came back with what was sent (client)
	Verbose  io.Writer // prints the ping data like rping -v (nil: quiet)
}

// goAhead is the server's "go ahead": the C server sends its never-filled 16-byte send buffer.
var goAhead = make([]byte, AdvSize)

func recvAdvSized(ctx context.Context, c *fabric.Conn) ([]byte, error) {
	buf := make([]byte, AdvSize)
	n, err := c.Recv(ctx, buf)
	if err != nil {
		return nil, err
	}
	if n != AdvSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrFormat, n, AdvSize)
	}
	return buf, nil
}

// Client runs pings over c, a connection to an rping server.
func Client(ctx context.Context, c *fabric.Conn, o Options) error {
	if o.Size < MinSize || o.Size > MaxSize {
		return fmt.Errorf("rping: size %d outside [%d, %d]", o.Size, MinSize, MaxSize)
	}
	f := c.Fabric()
	start, err := f.Alloc(o.Size, fabric.RemoteRead|fabric.RemoteWrite)
	if err != nil {
		return err
	}
	defer start.Close()
	sink, err := f.Alloc(o.Size, fabric.RemoteRead|fabric.RemoteWrite)
	if err != nil {
		return err
	}
	defer sink.Close()
	letter := 65
	for ping := 0; o.Count == 0 || ping < o.Count; ping++ {
		letter = Fill(start.Bytes(), ping, letter)
		for _, m := range []*fabric.Memory{start, sink} {
			adv, _ := advOf(m, o.Size).MarshalBinary()
			if err := c.Send(ctx, adv); err != nil {
				return fmt.Errorf("rping: ping %d: send advertisement: %w", ping, err)
			}
			if _, err := recvAdvSized(ctx, c); err != nil {
				return fmt.Errorf("rping: ping %d: wait for the server: %w", ping, err)
			}
		}
		if o.Validate && !bytes.Equal(start.Bytes(), sink.Bytes()) {
			return fmt.Errorf("rping: ping %d: data mismatch", ping)
		}
		if o.Verbose != nil {
			fmt.Fprintf(o.Verbose, "ping data: %s\n", cstring(sink.Bytes()))
		}
	}
	return nil
}

// Serve answers pings on c until the peer disconnects (a clean end, as for the C server).
func Serve(ctx context.Context, c *fabric.Conn, o Options) error {
	buf, err := c.Fabric().Alloc(MaxSize+1, 0)
	if err != nil {
		return err
	}
	defer buf.Close()
	for ping := 0; ; ping++ {
		var src, dst Adv
		b, err := recvAdvSized(ctx, c)
		if errors.Is(err, fabric.ErrConnReset) {
			return nil // the client is done
		}
		if err == nil {
			err = src.UnmarshalBinary(b)
		}
		if err == nil && (src.Size == 0 || src.Size > MaxSize) {
			err = fmt.Errorf("%w: advertised size %d (max %d)", ErrFormat, src.Size, MaxSize)
		}
		if err != nil {
			return fmt.Errorf("rping: ping %d: source advertisement: %w", ping, err)
		}
		if err := c.Read(ctx, buf, 0, src.remote(), 0, int(src.Size)); err != nil {
			return fmt.Errorf("rping: ping %d: RDMA read: %w", ping, err)
		}
		data := cstring(buf.Bytes()[:src.Size])
		if o.Verbose != nil {
			fmt.Fprintf(o.Verbose, "server ping data: %s\n", data)
		}
		if err := c.Send(ctx, goAhead); err != nil {
			return fmt.Errorf("rping: ping %d: go ahead: %w", ping, err)
		}
		if b, err = recvAdvSized(ctx, c); err == nil {
			err = dst.UnmarshalBinary(b)
		}
		if err != nil {
			return fmt.Errorf("rping: ping %d: sink advertisement: %w", ping, err)
		}
		n := len(data) + 1 // the C string and its NUL, as the C server writes it
		if n > int(src.Size) {
			n = int(src.Size)
		}
		if uint32(n) > dst.Size {
			return fmt.Errorf("rping: ping %d: %w: sink of %d bytes for %d", ping, ErrFormat, dst.Size, n)
		}
		if err := c.Write(ctx, buf, 0, dst.remote(), 0, n); err != nil {
			return fmt.Errorf("rping: ping %d: RDMA write: %w", ping, err)
		}
		if err := c.Send(ctx, goAhead); err != nil {
			return fmt.Errorf("rping: ping %d: go ahead: %w", ping, err)
		}
	}
}
