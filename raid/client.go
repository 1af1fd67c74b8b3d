package raid

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// Client is the host side: it registers memory, sends requests to the controller and keeps a
// data connection to every target, on which the targets move its data.
type Client struct {
	f       *fabric.Fabric
	addr    string
	session uint64
	timeout time.Duration

	mu      sync.Mutex
	ctrl    *rpc
	data    *passive
	info    VolumeInfo
	targets map[string]*passive

	stageMu sync.Mutex
	stage   *fabric.Memory
}

const stageSize = 8 << 20

var hostSeq atomic.Uint64

// localAddr is an address of controller's transport for this host to open its fabric on.
func localAddr(controller string) (string, error) {
	a, err := fabric.ParseAddr(controller)
	if err != nil {
		return "", err
	}
	if a.Provider == "shm" {
		a.Host = fmt.Sprintf("rk-raid-host-%d-%d", os.Getpid(), hostSeq.Add(1))
	} else {
		if a.Host != "localhost" && a.Host != "::1" && (len(a.Host) < 4 || a.Host[:4] != "127.") {
			a.Host = "0.0.0.0"
		}
		a.Port = "0"
	}
	return a.String(), nil
}

// Dial connects to the controller at addr and to every live member of its volume.
func Dial(ctx context.Context, addr string, opts ...fabric.Option) (*Client, error) {
	local, err := localAddr(addr)
	if err != nil {
		return nil, err
	}
	f, err := fabric.Open(local, opts...)
	if err != nil {
		return nil, err
	}
	var sb [8]byte
	rand.Read(sb[:])
	c := &Client{f: f, addr: addr, session: binary.LittleEndian.Uint64(sb[:]) | 1, timeout: 10 * time.Second,
		targets: map[string]*passive{}}
	conn, err := f.Dial(ctx, addr)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.ctrl = newRPC(conn)
	if err := c.refresh(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if c.stage, err = f.Alloc(stageSize, fabric.RemoteRead|fabric.RemoteWrite); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// refresh asks for the volume again and (re)connects the data connections.
func (c *Client) refresh(ctx context.Context) error {
	t, d, err := c.ctrl.call(ctx, func(id uint64) []byte { return hello{Session: c.session, Role: roleControl}.marshal(id) })
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.addr, err)
	}
	var info VolumeInfo
	switch t {
	case msgVolumeInfo:
		info, err = parseVolumeInfo(d)
	case msgReply:
		var r reply
		if r, err = parseReply(d); err == nil {
			err = r.err()
		}
	default:
		err = fmt.Errorf("%w: answer of type %d to hello", ErrFormat, t)
	}
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.addr, err)
	}
	data, err := c.dialData(ctx, c.addr)
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.addr, err)
	}
	targets := map[string]*passive{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range info.Members {
		if m == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc, err := c.dialData(ctx, m)
			if err != nil {
				return // the controller finds out for itself
			}
			mu.Lock()
			targets[m] = newPassive(tc)
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.mu.Lock()
	oldData, oldTargets := c.data, c.targets
	c.info, c.data, c.targets = info, newPassive(data), targets
	c.mu.Unlock()
	if oldData != nil {
		oldData.close()
	}
	for _, tc := range oldTargets {
		tc.close()
	}
	return nil
}

// dialData opens a data connection to a controller or target under the client's session.
func (c *Client) dialData(ctx context.Context, addr string) (*fabric.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.f.Dial(dctx, addr)
	if err != nil {
		return nil, err
	}
	err = conn.Send(dctx, hello{Session: c.session, Role: roleData}.marshal(1))
	var n int
	buf := make([]byte, conn.Caps().MaxMessage)
	if err == nil {
		n, err = conn.Recv(dctx, buf)
	}
	if err == nil {
		var t msgType
		var d *dec
		if t, _, d, err = parseHeader(buf[:n]); err == nil && t != msgReply {
			err = fmt.Errorf("%w: answer of type %d to hello", ErrFormat, t)
		}
		if err == nil {
			var r reply
			if r, err = parseReply(d); err == nil {
				err = r.err()
			}
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Info is the volume as the controller last described it.
func (c *Client) Info() VolumeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Size is the volume size in bytes.
func (c *Client) Size() int64 { return c.Info().Size }

// Alloc allocates host memory the targets can read and write: use it with Write and Read.
func (c *Client) Alloc(n int) (*fabric.Memory, error) {
	return c.f.Alloc(n, fabric.RemoteRead|fabric.RemoteWrite)
}

// Write stores n bytes of m at off at volume offset volOff; the targets pull them from m.
func (c *Client) Write(ctx context.Context, m *fabric.Memory, off int, volOff int64, n int) error {
	return c.io(ctx, msgWrite, m.Remote(), uint64(off), volOff, int64(n), 0, 0)
}

// WriteThroughController is Write over the classic path: the controller reads all the data
// and the targets fetch it from the controller. It exists as a baseline for benchmarks.
func (c *Client) WriteThroughController(ctx context.Context, m *fabric.Memory, off int, volOff int64, n int) error {
	return c.io(ctx, msgWrite, m.Remote(), uint64(off), volOff, int64(n), flagThroughController, 0)
}

// Read fills n bytes of m at off from volume offset volOff; the targets write them into m.
func (c *Client) Read(ctx context.Context, m *fabric.Memory, off int, volOff int64, n int) error {
	return c.io(ctx, msgRead, m.Remote(), uint64(off), volOff, int64(n), 0, 0)
}

// ReadExcluding is Read as if the members in the bit mask exclude were missing: their chunks
// are reconstructed from the others. It verifies redundancy.
func (c *Client) ReadExcluding(ctx context.Context, m *fabric.Memory, off int, volOff int64, n int, exclude uint64) error {
	return c.io(ctx, msgRead, m.Remote(), uint64(off), volOff, int64(n), 0, exclude)
}

// WriteRemote and ReadRemote take a raw host descriptor (as a host in another process would
// send it).
func (c *Client) WriteRemote(ctx context.Context, r fabric.Remote, roff uint64, volOff, n int64) error {
	return c.io(ctx, msgWrite, r, roff, volOff, n, 0, 0)
}

// ReadRemote: see WriteRemote.
func (c *Client) ReadRemote(ctx context.Context, r fabric.Remote, roff uint64, volOff, n int64) error {
	return c.io(ctx, msgRead, r, roff, volOff, n, 0, 0)
}

func (c *Client) io(ctx context.Context, t msgType, r fabric.Remote, roff uint64, volOff, n int64, flags uint32, exclude uint64) error {
	if volOff < 0 || n < 0 {
		return fmt.Errorf("%w: offset %d, length %d", ErrRange, volOff, n)
	}
	req := ioRequest{Offset: uint64(volOff), Length: uint64(n), Host: r, HostOff: roff, Flags: flags, Exclude: exclude}
	var err error
	hostAcc := 0
	for attempt := 0; attempt < 4; attempt++ {
		err = c.ctrl.callReply(ctx, func(id uint64) []byte { return req.marshal(t, id) })
		if errors.Is(err, ErrHostAcc) {
			hostAcc++
		}
		if !errors.Is(err, ErrStale) && !errors.Is(err, ErrHostAcc) || hostAcc > 1 {
			return err
		}
		// A member was replaced, or a connection carrying host data broke: reconnect, retry.
		if rerr := c.refresh(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// WriteAt writes p at volume offset off, staging it through registered memory.
func (c *Client) WriteAt(ctx context.Context, p []byte, off int64) error {
	c.stageMu.Lock()
	defer c.stageMu.Unlock()
	for len(p) > 0 {
		n := copy(c.stage.Bytes(), p)
		if err := c.Write(ctx, c.stage, 0, off, n); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// ReadAt reads len(p) bytes at volume offset off, staging them through registered memory.
func (c *Client) ReadAt(ctx context.Context, p []byte, off int64) error {
	c.stageMu.Lock()
	defer c.stageMu.Unlock()
	for len(p) > 0 {
		n := min(len(p), stageSize)
		if err := c.Read(ctx, c.stage, 0, off, n); err != nil {
			return err
		}
		copy(p, c.stage.Bytes()[:n])
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Status asks the controller for the volume's state and counters.
func (c *Client) Status(ctx context.Context) (Status, error) {
	t, d, err := c.ctrl.call(ctx, func(id uint64) []byte { return newMsg(msgStatusReq, id).b })
	if err != nil {
		return Status{}, err
	}
	switch t {
	case msgStatus:
		b, err := parseBlob(d, 1<<20)
		if err != nil {
			return Status{}, err
		}
		var st Status
		if err := json.Unmarshal(b, &st); err != nil {
			return Status{}, fmt.Errorf("%w: status: %v", ErrFormat, err)
		}
		return st, nil
	case msgReply:
		r, err := parseReply(d)
		if err == nil {
			err = r.err()
		}
		return Status{}, err
	}
	return Status{}, fmt.Errorf("%w: answer of type %d to status", ErrFormat, t)
}

// Replace asks the controller to rebuild member i onto the target at addr; it returns once
// the rebuild has started (Status shows progress).
func (c *Client) Replace(ctx context.Context, i int, addr string) error {
	if i < 0 || i >= 64 {
		return fmt.Errorf("%w: member %d", ErrInvalid, i)
	}
	return c.ctrl.callReply(ctx, func(id uint64) []byte { return replaceReq{Member: uint32(i), Addr: addr}.marshal(id) })
}

// Fabric is the client's fabric (memory for Write and Read comes from Alloc or from here).
func (c *Client) Fabric() *fabric.Fabric { return c.f }

// Close closes every connection and the client's fabric. Idempotent.
func (c *Client) Close() error {
	if c.ctrl != nil {
		c.ctrl.cancel()
		<-c.ctrl.done
	}
	c.mu.Lock()
	data, targets := c.data, c.targets
	c.data, c.targets = nil, nil
	c.mu.Unlock()
	if data != nil {
		data.close()
	}
	for _, p := range targets {
		p.close()
	}
	return c.f.Close()
}

// passive is a connection on which only the peer acts (it reads and writes this side's
// memory). It keeps a receive pending so that its endpoint is progressed: libfabric shm
// completes a peer's RMA only while this side's endpoint is being polled.
type passive struct {
	c      *fabric.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func newPassive(c *fabric.Conn) *passive {
	ctx, cancel := context.WithCancel(context.Background())
	p := &passive{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 64)
		for ctx.Err() == nil {
			if _, err := c.Recv(ctx, buf); err != nil && !errors.Is(err, fabric.ErrTimeout) &&
				!errors.Is(err, fabric.ErrTooLarge) && !errors.Is(err, fabric.ErrCanceled) {
				return
			}
		}
	}()
	return p
}

func (p *passive) close() error {
	p.cancel()
	<-p.done
	return p.c.Close()
}
