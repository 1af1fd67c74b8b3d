package shmem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// member is one member's portion as seen from here: the connection that carries our operations
// to it, its descriptor, and our local copy of it.
type member struct {
	s    *Segment
	idx  int
	addr string
	copy *fabric.Memory // local copy, registered for our reads

	link atomic.Pointer[link] // nil while broken or down

	proc *process // the member's process if it is on this host (shm, loopback) and not ours, else nil

	mu     sync.Mutex // serializes redials and marks
	incarn uint64     // the member's incarnation when we first joined it
	down   error      // set once: the member is gone for good
}

// link is one working connection to a member.
type link struct {
	c      *fabric.Conn
	remote fabric.Remote
}

// join dials the member until it answers or ctx ends; members start in any order.
func (m *member) join(ctx context.Context) error {
	delay := 20 * time.Millisecond
	wait := 2 * time.Second // per attempt, doubling: a loaded host must not keep every handshake from finishing
	for {
		l, incarn, peer, err := m.dial(ctx, wait)
		if err == nil {
			m.mu.Lock()
			m.incarn, m.proc = incarn, watchProcess(peer.pid, peer.beacon)
			m.mu.Unlock()
			m.link.Store(l)
			return nil
		}
		if errors.Is(err, ErrMembership) || ctx.Err() != nil {
			return fmt.Errorf("shmem: join member %d (%s): %w", m.idx, m.addr, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("shmem: join member %d (%s): %w (last: %w)", m.idx, m.addr, ctx.Err(), err)
		}
		delay = min(2*delay, 500*time.Millisecond)
		wait = min(2*wait, 30*time.Second)
	}
}

// peerProc is the process a welcome names: its pid and beacon fd (-1: none), both only for a
// member on this host.
type peerProc struct{ pid, beacon int }

// dial connects to the member and runs the hello/welcome exchange. Each attempt is bounded so
// that a member that is not up yet costs a retry, not the whole deadline.
func (m *member) dial(ctx context.Context, wait time.Duration) (*link, uint64, peerProc, error) {
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := m.s.f.Dial(actx, m.addr)
	if err != nil {
		return nil, 0, peerProc{}, err
	}
	fail := func(err error) (*link, uint64, peerProc, error) {
		c.Close()
		return nil, 0, peerProc{}, err
	}
	if err := c.Send(actx, m.s.header(kindHello).marshal()); err != nil {
		return fail(err)
	}
	buf := make([]byte, maxMsgLen+1)
	n, err := c.Recv(actx, buf)
	if err != nil {
		return fail(err)
	}
	w, err := parseMsg(buf[:n])
	switch {
	case err != nil:
		return fail(fmt.Errorf("%w: %w", ErrMembership, err))
	case w.kind != kindWelcome:
		return fail(fmt.Errorf("%w: answer of kind %d to a hello", ErrMembership, w.kind))
	case w.status != statusOK:
		return fail(fmt.Errorf("%w: refused: %s", ErrMembership, statusText(w.status)))
	case int(w.from) != m.idx:
		return fail(fmt.Errorf("%w: %s answers as member %d, configured as %d", ErrMembership, m.addr, w.from, m.idx))
	case w.size != uint64(m.s.cfg.PortionSize) || w.segment != m.s.id:
		return fail(fmt.Errorf("%w: %s belongs to another segment", ErrMembership, m.addr))
	}
	return &link{c: c, remote: w.portion}, w.incarnation, peerProc{int(w.pid), int(w.beacon) - 1}, nil
}

// get returns a working link, redialing once if the last one broke for a reason other than
// the member's death (a canceled or timed-out operation closes its connection).
func (m *member) get(ctx context.Context) (*link, error) {
	if m.proc.exited() {
		// A same-host member whose process is gone (one in our own process is not). Checked
		// before every operation (a load, with the member's beacon): with libfabric 1.17 (shm,
		// and tcp;ofi_rxm when the reset is not seen in time) an operation posted to a dead
		// peer may never complete, and closing its connection at the deadline has left the
		// process's other connections stuck and then crashed in fi_cq_read. A process watch
		// that learns of the death later (a goroutine woken by the pidfd) lets that happen:
		// tried, it crashed TestMemberKilled on shm.
		m.mu.Lock()
		if m.down == nil {
			m.down = m.downErrLocked(fmt.Errorf("process %d exited", m.proc.pid))
		}
		down := m.down
		m.mu.Unlock()
		if l := m.link.Swap(nil); l != nil {
			l.c.Close()
		}
		return nil, down
	}
	if l := m.link.Load(); l != nil {
		return l, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return nil, m.down
	}
	if l := m.link.Load(); l != nil {
		return l, nil
	}
	if m.s.isClosed() {
		return nil, ErrClosed
	}
	l, incarn, _, err := m.dial(ctx, 5*time.Second)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("shmem: node %d (%s): %w", m.idx, m.addr, err) // the caller gave up: try again next time
		}
		m.down = m.downErr(err)
		return nil, m.down
	}
	if incarn != m.incarn {
		l.c.Close()
		m.down = m.downErr(errors.New("it restarted and its portion was lost"))
		return nil, m.down
	}
	m.link.Store(l)
	return l, nil
}

func (m *member) downErrLocked(cause error) error {
	return fmt.Errorf("%w: node %d (%s): %w", ErrMemberDown, m.idx, m.addr, cause)
}

func (m *member) downErr(cause error) error {
	if cause == nil {
		m.mu.Lock()
		cause = m.down
		m.mu.Unlock()
		if cause != nil {
			return cause
		}
		cause = errors.New("no connection")
	}
	return fmt.Errorf("%w: node %d (%s): %w", ErrMemberDown, m.idx, m.addr, cause)
}

// failed looks at the error of an operation on l and returns the error to report. A lost
// connection marks the member down; a connection the fabric closed because the caller's
// context ended is dropped, to be redialed by the next operation.
func (m *member) failed(l *link, err error) error {
	switch {
	case errors.Is(err, fabric.ErrConnReset):
		m.mu.Lock()
		if m.down == nil {
			m.down = fmt.Errorf("%w: node %d (%s): %w", ErrMemberDown, m.idx, m.addr, err)
		}
		down := m.down
		m.mu.Unlock()
		m.link.CompareAndSwap(l, nil)
		l.c.Close()
		return down
	case errors.Is(err, fabric.ErrTimeout), errors.Is(err, fabric.ErrCanceled), errors.Is(err, fabric.ErrClosed):
		m.link.CompareAndSwap(l, nil)
		l.c.Close()
		if m.s.isClosed() {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		if errors.Is(err, fabric.ErrTimeout) {
			return fmt.Errorf("%w: node %d (%s) did not answer in time: %w", ErrMemberDown, m.idx, m.addr, err)
		}
		return fmt.Errorf("shmem: node %d: %w", m.idx, err)
	}
	if errors.Is(err, fabric.ErrInvalid) || errors.Is(err, fabric.ErrNotSupported) || errors.Is(err, fabric.ErrOutOfRange) ||
		errors.Is(err, fabric.ErrTooLarge) {
		return fmt.Errorf("shmem: node %d: %w", m.idx, err)
	}
	// Anything else is the member's connection failing (sockets, for one, reports a dead peer
	// as ENOENT when posting).
	m.mu.Lock()
	if m.down == nil {
		m.down = fmt.Errorf("%w: node %d (%s): %w", ErrMemberDown, m.idx, m.addr, err)
	}
	down := m.down
	m.mu.Unlock()
	m.link.CompareAndSwap(l, nil)
	l.c.Close()
	return down
}

// leave closes our link to the member.
func (m *member) leave() {
	if l := m.link.Swap(nil); l != nil {
		l.c.Close()
	}
	m.proc.close()
}
