package shmem

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// Config describes a segment. Every member uses the same Name, Members and PortionSize; only
// Self differs.
type Config struct {
	// Name identifies the segment: members of differently named segments refuse each other.
	Name string
	// Members are the fabric addresses of all members in index order, e.g.
	// "ofi+tcp://127.0.0.1:7600" or "ofi+shm://seg-0". Members[Self] is where this member
	// listens: it must name a fixed port (or shm name) that the others can dial.
	Members []string
	// Self is this member's index in Members.
	Self int
	// PortionSize is the number of bytes each member contributes: a positive multiple of 8.
	PortionSize int
	// OpTimeout bounds operations whose context has no deadline (default 10s): a dead member
	// ends in ErrMemberDown after at most this long.
	OpTimeout time.Duration
	// FabricOptions are passed to fabric.Open (e.g. fabric.WithSpin for busy polling).
	FabricOptions []fabric.Option
}

// Segment is this member's view of a segment: its own portion and a connection to every
// member's portion (its own included, so that its own operations are fabric atomics too). Its
// methods are safe for concurrent use.
type Segment struct {
	cfg     Config
	id      uint64 // hash of the name
	incarn  uint64
	f       *fabric.Fabric
	l       *fabric.Listener
	portion *fabric.Memory
	members []*member

	ctx    context.Context // ends at Close: stops the serving goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	served map[*fabric.Conn]struct{}

	without fabric.AtomicSet // atomics treated as missing (tests of the CAS-loop fallback)
}

// Join creates this member's portion, listens at Members[Self] for the other members, and
// connects to every member, waiting (until ctx ends) for those that are not up yet. It returns
// once every member's portion is reachable.
func Join(ctx context.Context, cfg Config) (*Segment, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.Name))
	s := &Segment{cfg: cfg, id: h.Sum64(), served: map[*fabric.Conn]struct{}{}}
	var rb [8]byte
	rand.Read(rb[:])
	s.incarn = binary.LittleEndian.Uint64(rb[:]) | 1
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var err error
	fail := func(err error) (*Segment, error) {
		s.Close()
		return nil, err
	}
	if s.f, err = fabric.Open(cfg.Members[cfg.Self], cfg.FabricOptions...); err != nil {
		s.cancel()
		return nil, fmt.Errorf("shmem: member %d: %w", cfg.Self, err)
	}
	if s.portion, err = s.f.Alloc(cfg.PortionSize, fabric.RemoteAll); err != nil {
		return fail(fmt.Errorf("shmem: portion of %d bytes: %w", cfg.PortionSize, err))
	}
	if s.l, err = s.f.Listen(ctx); err != nil {
		return fail(fmt.Errorf("shmem: member %d: %w", cfg.Self, err))
	}
	s.wg.Add(1)
	go s.acceptLoop()
	s.members = make([]*member, len(cfg.Members))
	for i, a := range cfg.Members {
		if i == cfg.Self {
			a = s.l.Addr()
		}
		s.members[i] = &member{s: s, idx: i, addr: a}
		if s.members[i].copy, err = s.f.Alloc(cfg.PortionSize, 0); err != nil {
			return fail(fmt.Errorf("shmem: local copy of member %d: %w", i, err))
		}
	}
	errs := make([]error, len(s.members))
	var wg sync.WaitGroup
	for i, m := range s.members {
		wg.Go(func() { errs[i] = m.join(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return s, nil
}

func (c *Config) check() error {
	if len(c.Members) == 0 || len(c.Members) > maxMembers {
		return fmt.Errorf("%w: %d members (1 to %d)", ErrConfig, len(c.Members), maxMembers)
	}
	if c.Self < 0 || c.Self >= len(c.Members) {
		return fmt.Errorf("%w: self %d of %d members", ErrConfig, c.Self, len(c.Members))
	}
	if c.PortionSize <= 0 || c.PortionSize%8 != 0 {
		return fmt.Errorf("%w: portion size %d is not a positive multiple of 8", ErrConfig, c.PortionSize)
	}
	seen := map[string]int{}
	for i, a := range c.Members {
		if _, err := fabric.ParseAddr(a); err != nil {
			return fmt.Errorf("%w: member %d: %w", ErrConfig, i, err)
		}
		if j, dup := seen[a]; dup {
			return fmt.Errorf("%w: members %d and %d are both %s", ErrConfig, j, i, a)
		}
		seen[a] = i
	}
	return nil
}

// Self is this member's index.
func (s *Segment) Self() int { return s.cfg.Self }

// Members is the number of members.
func (s *Segment) Members() int { return len(s.members) }

// PortionSize is the size in bytes of every member's portion.
func (s *Segment) PortionSize() int { return s.cfg.PortionSize }

// Addr is the address other members dial to reach this member.
func (s *Segment) Addr() string { return s.l.Addr() }

// Caps is the transport's capabilities.
func (s *Segment) Caps() fabric.Caps { return s.f.Caps() }

// Native reports whether op runs as a single native fabric atomic on this transport; if not,
// it runs as a compare-and-swap loop (lock-free, but several round trips under contention).
func (s *Segment) Native(k OpKind) bool {
	return k.known() && (s.f.Caps().Atomics &^ s.without).Has(specs[k].atomic)
}

// Portion is this member's own portion. Its words are changed by other members' atomics at any
// time: read them with sync/atomic, or better through the segment's operations (which go
// through the fabric, so that they are atomic with respect to everyone else's).
func (s *Segment) Portion() []byte { return s.portion.Bytes() }

// Descriptor is the remote descriptor of node's portion as published by that member.
func (s *Segment) Descriptor(node int) (fabric.Remote, error) {
	m, err := s.member(node)
	if err != nil {
		return fabric.Remote{}, err
	}
	l := m.link.Load()
	if l == nil {
		return fabric.Remote{}, m.downErr(nil)
	}
	return l.remote, nil
}

// Close leaves the segment: it stops serving its portion, closes its connections and releases
// everything. Members still operating on its portion get ErrMemberDown.
// Idempotent.
func (s *Segment) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// Stop our goroutines first, so that none is inside the fabric while it closes.
	s.cancel()
	s.wg.Wait()
	for _, m := range s.members {
		if m != nil {
			m.leave()
		}
	}
	var err error
	if s.f != nil {
		err = s.f.Close()
	}
	return err
}

func (s *Segment) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Segment) member(node int) (*member, error) {
	if node < 0 || node >= len(s.members) {
		return nil, fmt.Errorf("%w: node %d of %d members", ErrUnknownNode, node, len(s.members))
	}
	return s.members[node], nil
}

// header is this member's greeting.
func (s *Segment) header(kind byte) msg {
	m := msg{kind: kind, from: uint16(s.cfg.Self), members: uint16(len(s.cfg.Members)), segment: s.id,
		size: uint64(s.cfg.PortionSize), incarnation: s.incarn}
	if sameHost(s.cfg.Members[s.cfg.Self]) {
		m.pid = uint32(os.Getpid())
		if fd, err := localBeacon(); err == nil && fd < 0xffff {
			m.beacon = uint16(fd + 1)
		}
	}
	return m
}

// acceptLoop serves the membership protocol: each member that dials gets this member's
// descriptor. After that the connection carries only that member's one-sided operations, which
// the transport executes without us.
func (s *Segment) acceptLoop() {
	defer s.wg.Done()
	for {
		// Bounded: accepting answers a hello, and a dialer that gave up must not stall the
		// members that come after it.
		actx, cancel := context.WithTimeout(s.ctx, time.Second)
		c, err := s.l.Accept(actx)
		cancel()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, fabric.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.served[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *Segment) serve(c *fabric.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.served, c)
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, maxMsgLen)
	hctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	n, err := c.Recv(hctx, buf)
	cancel()
	if err != nil {
		return
	}
	h, err := parseMsg(buf[:n])
	if err != nil || h.kind != kindHello {
		return
	}
	w := s.header(kindWelcome)
	switch {
	case h.segment != s.id || int(h.members) != len(s.cfg.Members) || h.size != uint64(s.cfg.PortionSize):
		w.status = statusMismatch
	case int(h.from) >= len(s.cfg.Members):
		w.status = statusBadIndex
	case s.ctx.Err() != nil:
		w.status = statusClosing
	default:
		w.portion = s.portion.Remote()
	}
	sctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	err = c.Send(sctx, w.marshal())
	cancel()
	if err != nil || w.status != statusOK {
		return
	}
	// Keep the connection, the target of the peer's operations, until we close. (No receive
	// stays posted on it meanwhile: with libfabric 1.17 shm, a receive pending on an accepted
	// connection whose dialer lives in the same process crashed fi_cq_read.)
	<-s.ctx.Done()
}

// sameHost reports whether a member address can only be on this host: shm, or loopback.
func sameHost(addr string) bool {
	a, err := fabric.ParseAddr(addr)
	if err != nil {
		return false
	}
	if a.Provider == "shm" {
		return true
	}
	ip := net.ParseIP(a.Host)
	return a.Host == "localhost" || ip != nil && ip.IsLoopback()
}
