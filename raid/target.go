package raid

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// TargetConfig configures a Target.
type TargetConfig struct {
	Listen  string // fabric address to listen on, e.g. ofi+tcp://127.0.0.1:7101
	Store   string // file or block device path
	Size    int64  // store size in bytes (a file is created sparse and grown to it)
	Timeout time.Duration
	Logf    func(format string, a ...any) // nil: quiet
	Options []fabric.Option
}

const (
	targetBufSize = 2 << 20
	targetBufs    = 4
)

// Target serves one member of a volume from a file-backed store.
type Target struct {
	cfg  TargetConfig
	f    *fabric.Fabric
	l    *fabric.Listener
	st   *store
	bufs chan *fabric.Memory
	// direct is the store's data area registered with the fabric (providers that register
	// without pinning): members' data moves between it and peers' memory with no copy
	// through bufs. nil: staged through bufs with pread/pwrite.
	direct *fabric.Memory

	mu       sync.Mutex
	sessions map[uint64]*fabric.Conn
	sbMu     sync.Mutex

	stats  [6]atomic.Uint64
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewTarget opens the store and starts serving on cfg.Listen. A store with a superblock keeps
// it: a restarted target serves its member again.
func NewTarget(ctx context.Context, cfg TargetConfig) (*Target, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	st, err := openStore(cfg.Store, cfg.Size)
	if err != nil {
		return nil, fmt.Errorf("raid target: store %s: %w", cfg.Store, err)
	}
	if _, err := st.superblock(); err != nil {
		st.close()
		return nil, fmt.Errorf("raid target: store %s: %w", cfg.Store, err)
	}
	f, l, err := fabric.Listen(ctx, cfg.Listen, cfg.Options...)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("raid target: %w", err)
	}
	t := &Target{cfg: cfg, f: f, l: l, st: st, sessions: map[uint64]*fabric.Conn{},
		bufs: make(chan *fabric.Memory, targetBufs)}
	for range targetBufs {
		m, err := f.Alloc(targetBufSize, 0)
		if err != nil {
			f.Close()
			st.close()
			return nil, fmt.Errorf("raid target: %w", err)
		}
		t.bufs <- m
	}
	if data, err := st.mapData(); err == nil {
		// Local access only: the target's own reads and writes move the data.
		if t.direct, err = f.Register(data, 0); err != nil {
			t.logf("store %s moves data through staging buffers: %v", cfg.Store, err)
			st.unmapData()
		}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

// Addr is the address controllers and hosts dial.
func (t *Target) Addr() string { return t.l.Addr() }

// Counters are the target's data-path counters.
func (t *Target) Counters() TargetCounters {
	g := func(i int) uint64 { return t.stats[i].Load() }
	return TargetCounters{g(0), g(1), g(2), g(3), g(4), g(5)}
}

// Close stops serving and closes the store. Idempotent.
func (t *Target) Close() error {
	var err error
	t.once.Do(func() {
		t.cancel()
		err = t.f.Close()
		t.wg.Wait()
		err = errors.Join(err, t.st.close())
	})
	return err
}

func (t *Target) logf(format string, a ...any) {
	if t.cfg.Logf != nil {
		t.cfg.Logf(format, a...)
	}
}

func (t *Target) serve() {
	defer t.wg.Done()
	for {
		c, err := t.l.Accept(t.ctx)
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, fabric.ErrClosed) {
				return
			}
			t.logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.handle(c)
		}()
	}
}

// handle runs one connection: a host's data connection (registered under its session) or a
// controller's command connection.
func (t *Target) handle(c *fabric.Conn) {
	buf := make([]byte, c.Caps().MaxMessage)
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.Timeout)
	n, err := c.Recv(ctx, buf)
	cancel()
	if err != nil {
		c.Close()
		return
	}
	typ, id, d, err := parseHeader(buf[:n])
	if err != nil {
		t.logf("bad first message from %s: %v", c.RemoteAddr(), err)
		c.Close()
		return
	}
	switch typ {
	case msgHostHello:
		h, err := parseHello(d)
		if err != nil {
			c.Close()
			return
		}
		t.mu.Lock()
		if old := t.sessions[h.Session]; old != nil {
			old.Close()
		}
		t.sessions[h.Session] = c
		t.mu.Unlock()
		sctx, cancel := context.WithTimeout(t.ctx, t.cfg.Timeout)
		c.Send(sctx, reply{}.marshal(id))
		cancel()
		return // the connection stays registered until replaced or failed
	case msgCtrlHello:
		t.control(c, typ, id, d, buf)
	default:
		c.Close()
	}
}

// control serves a controller's connection until it fails.
func (t *Target) control(c *fabric.Conn, typ msgType, id uint64, d *dec, buf []byte) {
	defer c.Close()
	var sendMu sync.Mutex
	send := func(msg []byte) {
		sendMu.Lock()
		defer sendMu.Unlock()
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.Timeout)
		defer cancel()
		if err := c.Send(ctx, msg); err != nil {
			t.logf("send to controller: %v", err)
			c.Close()
		}
	}
	sem := make(chan struct{}, targetBufs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		switch typ {
		case msgCtrlHello:
			if err := d.end(); err != nil {
				send(errReply(err).marshal(id))
				break
			}
			sb, err := t.st.superblock()
			if err != nil {
				send(errReply(fmt.Errorf("%w: %w", ErrSuperblk, err)).marshal(id))
				break
			}
			send(targetInfo{Capacity: uint64(t.st.capacity), Superblock: sb}.marshal(id))
		case msgFormat:
			sb, err := parseBlob(d, superblockLen)
			var s Superblock
			if err == nil {
				err = s.UnmarshalBinary(sb)
			}
			if err == nil && s.Stripes*int64(s.Layout.Chunk) > t.st.capacity {
				err = fmt.Errorf("%w: %d stripes of %d bytes exceed the store's %d bytes", ErrRange, s.Stripes,
					s.Layout.Chunk, t.st.capacity)
			}
			if err == nil {
				t.sbMu.Lock()
				err = t.st.writeSuperblock(sb)
				t.sbMu.Unlock()
			}
			if err != nil {
				send(errReply(err).marshal(id))
			} else {
				t.logf("formatted as member %d of %x generation %d", s.Index, s.ID[:4], s.Generation)
				send(reply{}.marshal(id))
			}
		case msgStatsReq:
			if err := d.end(); err != nil {
				send(errReply(err).marshal(id))
				break
			}
			send(t.Counters().marshal(id))
		case msgCommand:
			cmd, err := parseCommand(d)
			if err != nil {
				send(cmdReply{reply: errReply(err)}.marshal(id))
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(id uint64) {
				defer func() { <-sem; wg.Done() }()
				n, err := t.execute(c, cmd)
				r := cmdReply{Bytes: n}
				if err != nil {
					r.reply = errReply(err)
				}
				send(r.marshal(id))
			}(id)
		default:
			send(errReply(fmt.Errorf("%w: message type %d on a controller connection", ErrFormat, typ)).marshal(id))
		}
		n, err := c.Recv(t.ctx, buf)
		if err != nil {
			if !errors.Is(err, fabric.ErrTooLarge) {
				return
			}
		}
		var perr error
		typ, id, d, perr = parseHeader(buf[:n])
		if perr != nil {
			t.logf("controller message: %v", perr)
			send(errReply(perr).marshal(id))
			typ = 0
			n, err = 0, nil
			// wait for the next message
			for typ == 0 {
				if n, err = c.Recv(t.ctx, buf); err != nil {
					return
				}
				typ, id, d, perr = parseHeader(buf[:n])
				if perr != nil {
					send(errReply(perr).marshal(id))
					typ = 0
				}
			}
		}
	}
}

// execute runs one command: pulls into the store (durable before it returns) or pushes from
// it, through a staging buffer, in batches of segments.
func (t *Target) execute(ctrl *fabric.Conn, cmd command) (uint64, error) {
	if !t.st.formatted.Load() {
		if sb, _ := t.st.superblock(); sb == nil {
			return 0, fmt.Errorf("%w: store not formatted", ErrNoVolume)
		}
	}
	conn := ctrl
	if cmd.Session != 0 {
		t.mu.Lock()
		conn = t.sessions[cmd.Session]
		t.mu.Unlock()
		if conn == nil {
			return 0, fmt.Errorf("%w: no connection from host session %x", ErrStale, cmd.Session)
		}
	}
	for _, s := range cmd.Segs {
		if err := t.st.check(int64(s.MemberOff), int(s.Len)); err != nil {
			return 0, err
		}
	}
	if t.direct != nil {
		return t.executeDirect(conn, cmd)
	}
	buf := <-t.bufs
	defer func() { t.bufs <- buf }()
	maxOp := int(min(uint64(targetBufSize), conn.Caps().MaxTransfer))
	var total uint64
	var st staged
	var ops []fabric.Op
	flush := func() error {
		if len(st.pieces) == 0 {
			return nil
		}
		mem := buf.Bytes()
		if cmd.Op == cmdPush {
			for _, r := range st.runs(func(p piece) int64 { return p.moff }, targetBufSize) {
				if err := t.st.readAt(mem[r.boff:r.boff+r.n], r.moff); err != nil {
					return fmt.Errorf("%w: read store: %w", ErrTarget, err)
				}
			}
		}
		kind := fabric.OpRead
		if cmd.Op == cmdPush {
			kind = fabric.OpWrite
		}
		ops = ops[:0]
		for _, r := range st.runs(func(p piece) int64 { return int64(p.roff) }, maxOp) {
			ops = append(ops, fabric.Op{Kind: kind, Mem: buf, Off: r.boff, Len: r.n, Remote: cmd.Remote, RemoteOff: r.roff})
		}
		if err := t.do(conn, cmd, ops); err != nil {
			return err
		}
		if cmd.Op == cmdPull {
			for _, r := range st.runs(func(p piece) int64 { return p.moff }, targetBufSize) {
				if err := t.st.writeAt(mem[r.boff:r.boff+r.n], r.moff); err != nil {
					return fmt.Errorf("%w: write store: %w", ErrTarget, err)
				}
			}
		}
		t.count(cmd, uint64(st.used))
		total += uint64(st.used)
		st.reset()
		return nil
	}
	for _, s := range cmd.Segs {
		moff, roff, left := int64(s.MemberOff), s.RemoteOff, int(s.Len)
		for left > 0 {
			n := min(left, maxOp, targetBufSize-st.used)
			if n == 0 {
				if err := flush(); err != nil {
					return total, err
				}
				continue
			}
			st.add(piece{moff: moff, roff: roff, boff: st.used, n: n})
			moff, roff, left = moff+int64(n), roff+uint64(n), left-n
		}
	}
	if err := flush(); err != nil {
		return total, err
	}
	return total, t.finish(cmd)
}

// executeDirect runs a command on a store registered with the fabric: the RDMA READs of a
// pull land in the store's page cache, the RDMA WRITEs of a push leave from it.
func (t *Target) executeDirect(conn *fabric.Conn, cmd command) (uint64, error) {
	kind := fabric.OpRead
	if cmd.Op == cmdPush {
		kind = fabric.OpWrite
	}
	maxOp := int(min(uint64(targetBufSize), conn.Caps().MaxTransfer))
	var ops []fabric.Op
	var total uint64
	for _, s := range cmd.Segs {
		for off := 0; off < int(s.Len); off += maxOp {
			n := min(int(s.Len)-off, maxOp)
			ops = append(ops, fabric.Op{Kind: kind, Mem: t.direct, Off: int(s.MemberOff) + off, Len: n,
				Remote: cmd.Remote, RemoteOff: s.RemoteOff + uint64(off)})
			total += uint64(n)
		}
	}
	if err := t.do(conn, cmd, coalesce(ops, uint64(maxOp))); err != nil {
		return 0, err
	}
	t.count(cmd, total)
	return total, t.finish(cmd)
}

// do runs a command's transfers on conn and says whose memory failed them.
func (t *Target) do(conn *fabric.Conn, cmd command, ops []fabric.Op) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.Timeout)
	err := conn.Do(ctx, ops)
	cancel()
	if err != nil {
		if cmd.Session != 0 {
			t.dropSession(cmd.Session, conn)
			return fmt.Errorf("%w: %w", ErrHostAcc, err)
		}
		return fmt.Errorf("%w: controller memory: %w", ErrTarget, err)
	}
	return nil
}

// finish makes a pull durable if the command asks, and counts the command.
func (t *Target) finish(cmd command) error {
	if cmd.Op == cmdPull && cmd.Sync {
		if err := t.st.sync(); err != nil {
			return fmt.Errorf("%w: fdatasync: %w", ErrTarget, err)
		}
		t.stats[4].Add(1)
	}
	t.stats[5].Add(1)
	return nil
}

func (t *Target) count(cmd command, n uint64) {
	i := 0
	switch {
	case cmd.Op == cmdPull && cmd.Session != 0:
		i = 0
	case cmd.Op == cmdPush && cmd.Session != 0:
		i = 1
	case cmd.Op == cmdPull:
		i = 2
	default:
		i = 3
	}
	t.stats[i].Add(n)
}

func (t *Target) dropSession(s uint64, c *fabric.Conn) {
	t.mu.Lock()
	if t.sessions[s] == c {
		delete(t.sessions, s)
	}
	t.mu.Unlock()
	c.Close()
}

// LogTo returns a Logf that prints with a prefix to the standard logger.
func LogTo(prefix string) func(string, ...any) {
	return func(format string, a ...any) { log.Printf(prefix+format, a...) }
}
