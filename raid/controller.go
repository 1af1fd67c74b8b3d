package raid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/rdmakit/rdmakit/fabric"
)

// ControllerConfig configures a Controller. Level, Chunk and Members create a volume when
// StateDir holds none; a state directory that holds one wins and they must then match it or be
// empty.
type ControllerConfig struct {
	Listen   string
	Level    string
	Chunk    int
	Members  []string
	StateDir string
	Timeout  time.Duration // per member command (default 5s); a restart tries a member for 3 of them
	Logf     func(format string, a ...any)
	Options  []fabric.Option
}

const ctrlBufs = 4

// Controller owns a volume and serves hosts.
type Controller struct {
	cfg    ControllerConfig
	f      *fabric.Fabric
	l      *fabric.Listener
	layout Layout
	id     [16]byte
	enc    reedsolomon.Encoder
	intent *intentLog

	mu      sync.Mutex // members, vol, sessions
	saveMu  sync.Mutex // one writer of the state directory at a time
	vol     volumeState
	members []*member

	locks    [1024]sync.Mutex
	bufs     chan *fabric.Memory
	bufSlots int // stripes per buffer
	probe    *fabric.Memory

	smu      sync.Mutex
	sessions map[uint64]*fabric.Conn // host data connections

	ctr     counters
	rebuild rebuildProgress

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewController opens (or creates) the volume and starts serving hosts on cfg.Listen.
func NewController(ctx context.Context, cfg ControllerConfig) (_ *Controller, err error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: no state directory", ErrInvalid)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, sessions: map[uint64]*fabric.Conn{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	f, err := fabric.Open(cfg.Listen, cfg.Options...)
	if err != nil {
		return nil, fmt.Errorf("raid controller: %w", err)
	}
	c.f = f
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	vol, ok, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := c.reopen(ctx, vol); err != nil {
			return nil, err
		}
	} else if err := c.create(ctx); err != nil {
		return nil, err
	}
	if c.enc, err = newCodec(c.layout); err != nil {
		return nil, err
	}
	if c.intent, err = openIntent(filepath.Join(cfg.StateDir, "intent.log"), c.vol.Stripes); err != nil {
		return nil, err
	}
	per := (c.layout.N() + c.layout.K) * c.layout.Chunk
	c.bufSlots = max(1, (8<<20)/per)
	c.bufs = make(chan *fabric.Memory, ctrlBufs)
	for range ctrlBufs {
		m, err := f.Alloc(c.bufSlots*per, fabric.RemoteRead|fabric.RemoteWrite)
		if err != nil {
			return nil, err
		}
		c.bufs <- m
	}
	if c.probe, err = f.Alloc(4096, 0); err != nil {
		return nil, err
	}
	if err := c.resync(ctx); err != nil {
		return nil, fmt.Errorf("raid controller: resync: %w", err)
	}
	for i, m := range c.members {
		if m.state == stateRebuilding {
			c.startRebuild(i)
		}
	}
	if c.l, err = f.Listen(ctx); err != nil {
		return nil, fmt.Errorf("raid controller: %w", err)
	}
	c.wg.Add(1)
	go c.serve()
	return c, nil
}

func (c *Controller) logf(format string, a ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, a...)
	}
}

// create makes a new volume on blank members.
func (c *Controller) create(ctx context.Context) error {
	l, err := ParseLayout(c.cfg.Level, len(c.cfg.Members), c.cfg.Chunk)
	if err != nil {
		return err
	}
	c.layout = l
	if _, err := rand.Read(c.id[:]); err != nil {
		return err
	}
	infos := make([]targetInfo, l.N())
	c.members = make([]*member, l.N())
	for i, addr := range c.cfg.Members {
		r, info, err := dialMember(ctx, c.f, addr)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		c.members[i] = &member{idx: i, addr: addr, state: stateOK, r: r}
		if len(info.Superblock) > 0 {
			var sb Superblock
			sb.UnmarshalBinary(info.Superblock)
			return fmt.Errorf("member %d (%s): %w: it is member %d of volume %x; give a blank store", i, addr,
				ErrForeign, sb.Index, sb.ID)
		}
		infos[i] = info
	}
	stripes := int64(-1)
	for _, in := range infos {
		if s := int64(in.Capacity) / int64(l.Chunk); stripes < 0 || s < stripes {
			stripes = s
		}
	}
	if stripes < 1 {
		return fmt.Errorf("%w: members too small for one %d-byte chunk", ErrLayout, l.Chunk)
	}
	c.vol = volumeState{ID: hex.EncodeToString(c.id[:]), Level: l.Level, K: l.K, M: l.M, Chunk: l.Chunk,
		Stripes: stripes, Generation: 1}
	for i, m := range c.members {
		if err := formatMember(ctx, m.r, c.superblock(i)); err != nil {
			return fmt.Errorf("member %d: format: %w", i, err)
		}
		c.vol.Members = append(c.vol.Members, memberState{Addr: m.addr, State: stateOK})
	}
	c.logf("created volume %x: %s, %d stripes, %d bytes", c.id, l, stripes, c.Size())
	return c.save()
}

func (c *Controller) superblock(i int) Superblock {
	return Superblock{ID: c.id, Index: i, Layout: c.layout, Generation: c.vol.Generation, Stripes: c.vol.Stripes}
}

// reopen serves the volume of a state directory: members that cannot be reached (reach), or
// hold another superblock, are failed.
func (c *Controller) reopen(ctx context.Context, vol volumeState) error {
	c.vol = vol
	c.layout = vol.layout()
	c.id, _ = vol.id()
	if c.cfg.Level != "" && c.cfg.Level != vol.Level || len(c.cfg.Members) > 0 && len(c.cfg.Members) != len(vol.Members) {
		return fmt.Errorf("%w: state directory holds %s over %d members; flags ask for level %s over %d",
			ErrLayout, c.layout, len(vol.Members), c.cfg.Level, len(c.cfg.Members))
	}
	c.members = make([]*member, len(vol.Members))
	for i, ms := range vol.Members {
		m := &member{idx: i, addr: ms.Addr, state: ms.State}
		c.members[i] = m
		if ms.State == stateFailed {
			continue
		}
		// One at a time: a dial opens an endpoint on each side, which is mostly CPU, so dials
		// at once each take about as long as all of them one after another (on a 2-core VM,
		// five at once took 1.7-2 s each against 0.55 s alone), and each is bounded by Timeout.
		r, err := c.reach(ctx, i, ms.Addr)
		if err != nil {
			c.logf("member %d (%s) failed: %v", i, ms.Addr, err)
			m.state = stateFailed
			c.vol.Members[i].State = stateFailed
			continue
		}
		m.r = r
	}
	c.logf("reopened volume %x: %s, %d failed members", c.id, c.layout, c.failedCount())
	return c.save()
}

// reach connects to member i's target at reopen and checks that it still holds that member.
// A member found failed here stays failed until it is rebuilt, and a restarted controller
// often finds its targets busy (a dial sets up endpoints on both sides, a fraction of a second
// on a loaded host), so a failed dial is tried again until reachTries times Timeout have
// passed. A target that answers with another volume's superblock fails at once.
func (c *Controller) reach(ctx context.Context, i int, addr string) (*rpc, error) {
	deadline := time.Now().Add(reachTries * c.cfg.Timeout)
	for {
		until := time.Now().Add(c.cfg.Timeout)
		if until.After(deadline) {
			until = deadline
		}
		dctx, cancel := context.WithDeadline(ctx, until)
		r, info, err := dialMember(dctx, c.f, addr)
		cancel()
		if err == nil {
			var sb Superblock
			if err = sb.UnmarshalBinary(info.Superblock); err == nil && (sb.ID != c.id || sb.Index != i) {
				err = fmt.Errorf("%w: holds member %d of volume %x", ErrForeign, sb.Index, sb.ID)
			}
			if err != nil {
				r.close()
				return nil, err
			}
			return r, nil
		}
		pause := c.cfg.Timeout / 10
		if ctx.Err() != nil || time.Until(deadline) < pause {
			return nil, err
		}
		c.logf("member %d (%s): %v; trying again", i, addr, err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
	}
}

// reachTries bounds reach: a member is failed at reopen when it could not be reached for
// this many command timeouts.
const reachTries = 3

// Addr is the address hosts dial.
func (c *Controller) Addr() string { return c.l.Addr() }

// Size is the volume's size in bytes.
func (c *Controller) Size() int64 { return c.vol.Stripes * c.layout.StripeData() }

// Layout is the volume's layout.
func (c *Controller) Layout() Layout { return c.layout }

// Counters are the controller's data-path counters.
func (c *Controller) Counters() ControllerCounters { return c.ctr.snapshot() }

// Close stops serving. Idempotent.
func (c *Controller) Close() error {
	var err error
	c.once.Do(func() {
		c.cancel()
		c.mu.Lock()
		for _, m := range c.members {
			if m != nil && m.r != nil {
				m.r.cancel()
			}
		}
		c.mu.Unlock()
		err = c.f.Close()
		c.wg.Wait()
		if c.intent != nil {
			c.intent.close()
		}
	})
	return err
}

func (c *Controller) failedCount() int {
	n := 0
	for _, m := range c.members {
		if m.state == stateFailed {
			n++
		}
	}
	return n
}

// view is a snapshot of the members for one operation.
type view struct {
	rpcs     []*rpc
	readable []bool // ok and not excluded
	writable []bool // ok or rebuilding
}

func (c *Controller) view(exclude uint64) (view, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.members)
	v := view{rpcs: make([]*rpc, n), readable: make([]bool, n), writable: make([]bool, n)}
	failed := 0
	for i, m := range c.members {
		v.rpcs[i] = m.r
		v.writable[i] = m.state != stateFailed && m.r != nil
		v.readable[i] = m.state == stateOK && m.r != nil && exclude&(1<<i) == 0
		if !v.readable[i] {
			failed++
		}
	}
	if failed > c.layout.M {
		return v, fmt.Errorf("%w: %d of %d members unavailable, %d parity", ErrFailed, failed, n, c.layout.M)
	}
	return v, nil
}

// fail marks a member failed after an error of its own.
func (c *Controller) fail(i int, why error) {
	c.mu.Lock()
	m := c.members[i]
	if m.state == stateFailed {
		c.mu.Unlock()
		return
	}
	m.state = stateFailed
	r := m.r
	m.r = nil
	c.vol.Members[i].State = stateFailed
	c.mu.Unlock()
	c.ctr.add(cMemberFailures, 1)
	c.logf("member %d (%s) failed: %v", i, m.addr, why)
	if r != nil {
		go r.close()
	}
	if err := c.save(); err != nil {
		c.logf("save state: %v", err)
	}
}

// save writes the current volume state to the state directory.
func (c *Controller) save() error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	vol := c.vol
	vol.Members = append([]memberState(nil), c.vol.Members...)
	c.mu.Unlock()
	return saveState(c.cfg.StateDir, vol)
}

// lockStripes locks the stripe locks of stripes (ascending) and returns the unlock.
func (c *Controller) lockStripes(stripes []int64) func() {
	idx := make([]int, 0, len(stripes))
	for _, s := range stripes {
		idx = append(idx, int(s%int64(len(c.locks))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		c.locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			c.locks[i].Unlock()
		}
	}
}

func (c *Controller) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.l.Accept(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, fabric.ErrClosed) {
				return
			}
			c.logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(conn)
		}()
	}
}

func (c *Controller) info() VolumeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := VolumeInfo{ID: c.id, Layout: c.layout, Size: c.Size()}
	for _, m := range c.members {
		a := m.addr
		if m.state == stateFailed {
			a = ""
		}
		v.Members = append(v.Members, a)
	}
	return v
}

// handle serves one host connection.
func (c *Controller) handle(conn *fabric.Conn) {
	buf := make([]byte, conn.Caps().MaxMessage)
	hctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	n, err := conn.Recv(hctx, buf)
	cancel()
	var h hello
	var id uint64
	if err == nil {
		var t msgType
		var d *dec
		if t, id, d, err = parseHeader(buf[:n]); err == nil {
			if t != msgHostHello {
				err = fmt.Errorf("%w: first message of type %d, want a hello", ErrFormat, t)
			} else {
				h, err = parseHello(d)
			}
		}
	}
	var sendMu sync.Mutex
	send := func(msg []byte) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
		defer cancel()
		return conn.Send(ctx, msg)
	}
	if err != nil {
		send(errReply(err).marshal(id))
		conn.Close()
		return
	}
	if h.Role == roleData {
		c.smu.Lock()
		if old := c.sessions[h.Session]; old != nil {
			old.Close()
		}
		c.sessions[h.Session] = conn
		c.smu.Unlock()
		send(reply{}.marshal(id))
		return
	}
	defer conn.Close()
	if send(c.info().marshal(id)) != nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 8)
	for {
		n, err := conn.Recv(c.ctx, buf)
		if err != nil {
			if errors.Is(err, fabric.ErrTooLarge) {
				send(errReply(fmt.Errorf("%w: message too large", ErrFormat)).marshal(0))
				continue
			}
			return
		}
		t, id, d, err := parseHeader(buf[:n])
		if err != nil {
			send(errReply(err).marshal(id))
			continue
		}
		body := &dec{b: append([]byte(nil), d.b...)}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := send(c.request(h.Session, t, id, body)); err != nil {
				conn.Close()
			}
		}()
	}
}

// request runs one host request and returns the reply message.
func (c *Controller) request(session uint64, t msgType, id uint64, d *dec) []byte {
	switch t {
	case msgHostHello:
		if _, err := parseHello(d); err != nil {
			return errReply(err).marshal(id)
		}
		return c.info().marshal(id)
	case msgWrite, msgRead:
		req, err := parseIORequest(d)
		if err == nil {
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Minute)
			if t == msgWrite {
				err = c.write(ctx, session, req)
			} else {
				err = c.read(ctx, session, req)
			}
			cancel()
		}
		if err != nil {
			return errReply(err).marshal(id)
		}
		return reply{}.marshal(id)
	case msgStatusReq:
		if err := d.end(); err != nil {
			return errReply(err).marshal(id)
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
		st := c.Status(ctx)
		cancel()
		b, _ := json.Marshal(st)
		return blobMsg(msgStatus, id, b)
	case msgReplace:
		r, err := parseReplace(d)
		if err == nil {
			ctx, cancel := context.WithTimeout(c.ctx, 4*c.cfg.Timeout)
			err = c.Replace(ctx, int(r.Member), r.Addr)
			cancel()
		}
		if err != nil {
			return errReply(err).marshal(id)
		}
		return reply{}.marshal(id)
	}
	return errReply(fmt.Errorf("%w: message type %d from a host", ErrFormat, t)).marshal(id)
}

// hostConn is the session's data connection, on which the controller reads and writes host
// memory.
func (c *Controller) hostConn(session uint64) (*fabric.Conn, error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if conn := c.sessions[session]; conn != nil {
		return conn, nil
	}
	return nil, fmt.Errorf("%w: host session %x has no data connection", ErrStale, session)
}

func (c *Controller) dropSession(session uint64, conn *fabric.Conn) {
	c.smu.Lock()
	if c.sessions[session] == conn {
		delete(c.sessions, session)
	}
	c.smu.Unlock()
	conn.Close()
}

// hostDo runs RDMA operations on host memory; a failure drops the host's data connection.
func (c *Controller) hostDo(ctx context.Context, session uint64, ops []fabric.Op) error {
	conn, err := c.hostConn(session)
	if err != nil {
		return err
	}
	ops = coalesce(ops, conn.Caps().MaxTransfer)
	for len(ops) > 0 {
		n := min(len(ops), 256)
		dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := conn.Do(dctx, ops[:n])
		cancel()
		if err != nil {
			c.dropSession(session, conn)
			return fmt.Errorf("%w: %w", ErrHostAcc, err)
		}
		ops = ops[n:]
	}
	return nil
}

// coalesce merges consecutive reads or writes that are contiguous on both sides into
// operations of at most limit bytes, in place.
func coalesce(ops []fabric.Op, limit uint64) []fabric.Op {
	out := ops[:0]
	for _, op := range ops {
		if n := len(out); n > 0 {
			p := &out[n-1]
			if p.Kind == op.Kind && (op.Kind == fabric.OpRead || op.Kind == fabric.OpWrite) && p.Mem == op.Mem &&
				p.Remote == op.Remote && p.Off+p.Len == op.Off && p.RemoteOff+uint64(p.Len) == op.RemoteOff &&
				uint64(p.Len+op.Len) <= limit {
				p.Len += op.Len
				continue
			}
		}
		out = append(out, op)
	}
	return out
}

// Status is a snapshot of the volume for `raid status`.
type Status struct {
	ID         string             `json:"id"`
	Layout     string             `json:"layout"`
	Size       int64              `json:"size"`
	Generation uint64             `json:"generation"`
	Members    []MemberStatus     `json:"members"`
	Counters   ControllerCounters `json:"counters"`
	Rebuild    *RebuildStatus     `json:"rebuild,omitempty"`
}

// MemberStatus is one member's health and counters.
type MemberStatus struct {
	Index    int             `json:"index"`
	Addr     string          `json:"addr"`
	State    string          `json:"state"`
	Counters *TargetCounters `json:"counters,omitempty"`
}

// Status collects the volume's state and every reachable target's counters.
func (c *Controller) Status(ctx context.Context) Status {
	c.mu.Lock()
	st := Status{ID: hex.EncodeToString(c.id[:]), Layout: c.layout.String(), Size: c.Size(),
		Generation: c.vol.Generation, Counters: c.ctr.snapshot()}
	rpcs := make([]*rpc, len(c.members))
	for i, m := range c.members {
		st.Members = append(st.Members, MemberStatus{Index: i, Addr: m.addr, State: m.state})
		rpcs[i] = m.r
	}
	c.mu.Unlock()
	for i, r := range rpcs {
		if r == nil {
			continue
		}
		if tc, err := targetStats(ctx, r); err == nil {
			st.Members[i].Counters = &tc
		}
	}
	st.Rebuild = c.rebuild.status()
	return st
}
