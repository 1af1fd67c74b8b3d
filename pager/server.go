package pager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// ServerOptions tune a memory server.
type ServerOptions struct {
	// Quota is the most bytes one client may hold; 0 means the whole pool.
	Quota int64
	// Lease is how long a client may stay silent (its runtime pings every Keepalive) before
	// its slabs are released; 0 means 10 s.
	Lease time.Duration
	// Logger receives client arrivals, departures and errors; nil means slog.Default().
	Logger *slog.Logger
	// Fabric options for opening the listening fabric.
	Fabric []fabric.Option
}

// Server is a memory server: it owns one large registered pool and hands out slabs of it to
// clients on request, within a per-client quota. A client's slabs are released when it frees
// them, says goodbye, disconnects or lets its lease expire.
type Server struct {
	f    *fabric.Fabric
	l    *fabric.Listener
	pool *fabric.Memory
	opt  ServerOptions
	log  *slog.Logger

	mu      sync.Mutex
	free    []span // sorted by offset, coalesced
	used    int64
	clients map[*serverClient]struct{}
	nextID  uint64
	closed  bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

type span struct{ off, n int64 }

type serverClient struct {
	c     *fabric.Conn
	slabs map[uint64]span
	held  int64
}

// ServerStats is a snapshot of a server's pool.
type ServerStats struct {
	Pool, Used int64 // bytes
	Clients    int
	Slabs      int
}

// NewServer allocates and registers a pool of size bytes and listens on addr (a fabric
// address; port 0 picks one). Call Serve to accept clients.
func NewServer(ctx context.Context, addr string, size int64, opt ServerOptions) (*Server, error) {
	if size <= 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("%w: pool size %d is not a positive multiple of %d", ErrInvalid, size, PageSize)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%w: pool size %d", ErrInvalid, size)
	}
	if opt.Quota < 0 {
		return nil, fmt.Errorf("%w: negative quota", ErrInvalid)
	}
	if opt.Quota == 0 {
		opt.Quota = size
	}
	if opt.Lease <= 0 {
		opt.Lease = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	f, l, err := fabric.Listen(ctx, addr, opt.Fabric...)
	if err != nil {
		return nil, err
	}
	pool, err := f.Alloc(int(size), fabric.RemoteRead|fabric.RemoteWrite)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pager: pool of %d bytes: %w", size, err)
	}
	return &Server{f: f, l: l, pool: pool, opt: opt, log: opt.Logger, free: []span{{0, size}},
		clients: map[*serverClient]struct{}{}}, nil
}

// Addr is the address clients dial.
func (s *Server) Addr() string { return s.l.Addr() }

// Stats reports the pool's use.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStats{Pool: int64(s.pool.Len()), Used: s.used, Clients: len(s.clients)}
	for c := range s.clients {
		st.Slabs += len(c.slabs)
	}
	return st
}

// Serve accepts clients until ctx ends or the server is closed, serving each on its own
// goroutine. It returns nil after Close.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil
	}
	s.cancel = cancel
	s.mu.Unlock()
	defer cancel()
	for {
		c, err := s.l.Accept(ctx)
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, fabric.ErrClosed) {
				return err
			}
			s.log.Warn("pager server: accept", "err", err)
			continue
		}
		sc := &serverClient{c: c, slabs: map[uint64]span{}}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.clients[sc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveClient(ctx, sc)
	}
}

func (s *Server) serveClient(ctx context.Context, sc *serverClient) {
	defer s.wg.Done()
	who := sc.c.RemoteAddr()
	s.log.Info("pager server: client connected", "peer", who)
	why := "closed"
	defer func() {
		n, bytes := s.release(sc)
		sc.c.Close()
		s.log.Info("pager server: client gone, slabs released", "peer", who, "why", why, "slabs", n, "bytes", bytes)
	}()
	buf := make([]byte, requestSize+1)
	for {
		rctx, cancel := context.WithTimeout(ctx, s.opt.Lease)
		n, err := sc.c.Recv(rctx, buf)
		cancel()
		if errors.Is(err, fabric.ErrTooLarge) {
			s.log.Warn("pager server: oversized request", "peer", who, "bytes", n)
			continue
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
				why = "server closing"
			case errors.Is(err, fabric.ErrTimeout):
				why = "lease expired"
			default:
				why = err.Error()
			}
			return
		}
		var req request
		if err := req.unmarshal(buf[:n]); err != nil {
			s.log.Warn("pager server: bad request", "peer", who, "err", err)
			continue
		}
		var rep reply
		switch req.op {
		case opPing:
			continue
		case opBye:
			why = "goodbye"
			n, bytes := s.release(sc)
			rep = reply{op: opBye, id: req.id, text: fmt.Sprintf("released %d slabs, %d bytes", n, bytes)}
		case opAlloc:
			rep = s.alloc(sc, req)
		case opFree:
			rep = s.freeSlab(sc, req)
		}
		sctx, cancel := context.WithTimeout(ctx, s.opt.Lease)
		err = sc.c.Send(sctx, rep.marshal())
		cancel()
		if err != nil {
			why = "send: " + err.Error()
			return
		}
		if req.op == opBye {
			return
		}
	}
}

func (s *Server) alloc(sc *serverClient, req request) reply {
	rep := reply{op: opAlloc, id: req.id}
	size := int64(req.arg)
	if req.arg == 0 || req.arg%PageSize != 0 || size <= 0 {
		rep.status, rep.text = statusInvalid, fmt.Sprintf("slab size %d is not a positive multiple of %d", req.arg, PageSize)
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc.held+size > s.opt.Quota || sc.held+size < 0 {
		rep.status, rep.text = statusQuota, fmt.Sprintf("%d bytes held + %d asked > quota %d", sc.held, size, s.opt.Quota)
		return rep
	}
	for i, sp := range s.free {
		if sp.n < size {
			continue
		}
		got := span{sp.off, size}
		if sp.n == size {
			s.free = append(s.free[:i], s.free[i+1:]...)
		} else {
			s.free[i] = span{sp.off + size, sp.n - size}
		}
		s.nextID++
		sc.slabs[s.nextID] = got
		sc.held += size
		s.used += size
		pool := s.pool.Remote()
		rep.slab = s.nextID
		// A slab is a window of the pool's registration: the descriptor's base moves by the
		// slab's offset (targets are base + offset on every backend).
		rep.remote = fabric.Remote{Addr: pool.Addr + uint64(got.off), Key: pool.Key, Len: uint64(size)}
		return rep
	}
	rep.status, rep.text = statusExhausted, fmt.Sprintf("no free range of %d bytes (%d of %d used)", size, s.used, s.pool.Len())
	return rep
}

func (s *Server) freeSlab(sc *serverClient, req request) reply {
	rep := reply{op: opFree, id: req.id, slab: req.arg}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := sc.slabs[req.arg]
	if !ok {
		rep.status, rep.text = statusNoSlab, fmt.Sprintf("slab %d", req.arg)
		return rep
	}
	delete(sc.slabs, req.arg)
	sc.held -= sp.n
	s.putLocked(sp)
	return rep
}

// putLocked returns a span to the free list, coalescing neighbours, and scrubs it so the next
// client never sees another client's pages.
func (s *Server) putLocked(sp span) {
	clear(s.pool.Bytes()[sp.off : sp.off+sp.n])
	s.used -= sp.n
	i := sort.Search(len(s.free), func(i int) bool { return s.free[i].off > sp.off })
	s.free = append(s.free, span{})
	copy(s.free[i+1:], s.free[i:])
	s.free[i] = sp
	if i+1 < len(s.free) && s.free[i].off+s.free[i].n == s.free[i+1].off {
		s.free[i].n += s.free[i+1].n
		s.free = append(s.free[:i+1], s.free[i+2:]...)
	}
	if i > 0 && s.free[i-1].off+s.free[i-1].n == s.free[i].off {
		s.free[i-1].n += s.free[i].n
		s.free = append(s.free[:i], s.free[i+1:]...)
	}
}

func (s *Server) release(sc *serverClient) (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, bytes := len(sc.slabs), sc.held
	for id, sp := range sc.slabs {
		s.putLocked(sp)
		delete(sc.slabs, id)
	}
	sc.held = 0
	delete(s.clients, sc)
	return n, bytes
}

// Close stops serving, disconnects every client, releases their slabs and frees the pool.
// Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	err := s.l.Close()
	s.wg.Wait()
	return errors.Join(err, s.f.Close())
}
