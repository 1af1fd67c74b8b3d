package fabric

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Conn is a connection to one peer. Its methods are safe for concurrent use.
type Conn struct {
	f          *Fabric
	impl       connImpl
	caps       Caps
	ownsFabric bool

	closed    atomic.Bool
	closeOnce sync.Once
	err       error
}

// Caps is what the connection's transport can do.
func (c *Conn) Caps() Caps { return c.caps }

// Fabric is the fabric the connection belongs to: allocate the memory used with it there.
func (c *Conn) Fabric() *Fabric { return c.f }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() string { return c.impl.remoteAddr() }

// Close closes the connection; operations in flight end with an error. If the connection was
// made by the package-level Dial, its fabric is closed too. Idempotent.
// Calls waiting on the connection (a Recv, a batch in flight) return ErrClosed at once.
//
// The peer learns of it: its calls then fail with ErrConnReset (messages sent before the
// close are still received). A connected transport (verbs, libfabric MSG) tells it by
// disconnecting; on a libfabric RDM transport Close sends a goodbye and waits up to half a
// second for the answer, which the peer gives once the calls it has in flight on the
// connection have finished.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.err = c.impl.close() // the backend wakes its waiters
		c.f.forget(c)
		if c.ownsFabric {
			if err := c.f.Close(); c.err == nil {
				c.err = err
			}
		}
	})
	return c.err
}

// enter refuses calls on a closed connection. Backends make the calls they let through safe
// against a concurrent close.
func (c *Conn) enter() error {
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Do runs a batch of one-sided operations: they are posted together, as many in flight as the
// queue allows, and Do returns when all have finished, with each op's Result and Err set; the
// error returned is the first failure. Every op is validated before any is posted, so a bad op
// changes nothing. If ctx ends while operations are in flight the connection is closed (the
// only way to take buffers back from the hardware) and Do returns ErrTimeout or ErrCanceled.
func (c *Conn) Do(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	if err := c.enter(); err != nil {
		return err
	}
	var mems []*Memory
	for i := range ops {
		if err := c.validate(&ops[i]); err != nil {
			for _, m := range mems {
				m.mu.RUnlock()
			}
			if len(ops) > 1 {
				return fmt.Errorf("op %d: %w", i, err)
			}
			return err
		}
		if m := ops[i].Mem; m != nil && (len(mems) == 0 || mems[len(mems)-1] != m) {
			m.mu.RLock() // Memory.Close waits for us
			if m.closed {
				m.mu.RUnlock()
				for _, m := range mems {
					m.mu.RUnlock()
				}
				return fmt.Errorf("op %d: memory: %w", i, ErrClosed)
			}
			mems = append(mems, m)
		}
	}
	defer func() {
		for _, m := range mems {
			m.mu.RUnlock()
		}
	}()
	return c.impl.do(ctx, ops)
}

func (c *Conn) validate(op *Op) error {
	op.Result, op.Err = 0, nil
	switch op.Kind {
	case OpRead, OpWrite:
		if op.Mem == nil {
			return fmt.Errorf("%w: %s without local memory", ErrInvalid, op.Kind)
		}
		if op.Mem.f != c.f {
			return fmt.Errorf("%w: %s: memory belongs to another fabric", ErrInvalid, op.Kind)
		}
		if op.Len <= 0 {
			return fmt.Errorf("%w: %s of %d bytes", ErrInvalid, op.Kind, op.Len)
		}
		if uint64(op.Len) > c.caps.MaxTransfer {
			return fmt.Errorf("%w: %s of %d bytes, transport max %d", ErrTooLarge, op.Kind, op.Len, c.caps.MaxTransfer)
		}
		if err := op.Mem.check(op.Off, op.Len); err != nil {
			return err
		}
		if !op.Remote.Contains(op.RemoteOff, uint64(op.Len)) {
			return fmt.Errorf("%w: remote [%d, %d+%d) of a %d-byte region", ErrOutOfRange, op.RemoteOff,
				op.RemoteOff, op.Len, op.Remote.Len)
		}
	case OpAtomic:
		if op.Atomic == 0 || op.Atomic >= numAtomicOps {
			return fmt.Errorf("%w: atomic op %d", ErrInvalid, op.Atomic)
		}
		if !c.caps.Atomics.Has(op.Atomic) {
			return fmt.Errorf("%w: %s on %s", ErrNotSupported, op.Atomic, c.caps.Provider)
		}
		if op.RemoteOff%8 != 0 {
			return fmt.Errorf("%w: %s at offset %d is not 8-byte aligned", ErrInvalid, op.Atomic, op.RemoteOff)
		}
		if !op.Remote.Contains(op.RemoteOff, 8) {
			return fmt.Errorf("%w: %s at offset %d of a %d-byte region", ErrOutOfRange, op.Atomic, op.RemoteOff,
				op.Remote.Len)
		}
	default:
		return fmt.Errorf("%w: op kind %d", ErrInvalid, op.Kind)
	}
	return nil
}

// Read copies n bytes from the peer's region at roff into local memory at off.
func (c *Conn) Read(ctx context.Context, m *Memory, off int, r Remote, roff uint64, n int) error {
	_, err := c.doOne(ctx, Op{Kind: OpRead, Mem: m, Off: off, Len: n, Remote: r, RemoteOff: roff})
	return err
}

// Write copies n bytes of local memory at off into the peer's region at roff.
func (c *Conn) Write(ctx context.Context, m *Memory, off int, r Remote, roff uint64, n int) error {
	_, err := c.doOne(ctx, Op{Kind: OpWrite, Mem: m, Off: off, Len: n, Remote: r, RemoteOff: roff})
	return err
}

// Atomic runs one atomic on the 8-byte word at roff and returns the word's previous value.
func (c *Conn) Atomic(ctx context.Context, a AtomicOp, r Remote, roff, operand, compare uint64) (uint64, error) {
	return c.doOne(ctx, Op{Kind: OpAtomic, Atomic: a, Remote: r, RemoteOff: roff, Operand: operand, Compare: compare})
}

// oneOps holds the op of the one-op calls (Read, Write, Atomic): a one-op slice handed to the
// backend escapes, an allocation per call. Do keeps no reference to its ops once it returns.
var oneOps = sync.Pool{New: func() any { return new([1]Op) }}

// doOne runs op alone and returns its Result.
func (c *Conn) doOne(ctx context.Context, op Op) (uint64, error) {
	p := oneOps.Get().(*[1]Op)
	p[0] = op
	err := c.Do(ctx, p[:])
	res := p[0].Result
	*p = [1]Op{}
	oneOps.Put(p)
	return res, err
}

// FetchAdd adds delta to the word at roff and returns its previous value.
func (c *Conn) FetchAdd(ctx context.Context, r Remote, roff, delta uint64) (uint64, error) {
	return c.Atomic(ctx, FetchAdd, r, roff, delta, 0)
}

// CompareSwap stores new at roff if the word equals old; it returns the previous value
// (equal to old when the swap happened).
func (c *Conn) CompareSwap(ctx context.Context, r Remote, roff, old, new uint64) (uint64, error) {
	return c.Atomic(ctx, CompareSwap, r, roff, new, old)
}

// Send sends one message of at most Caps().MaxMessage bytes.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > c.caps.MaxMessage {
		return fmt.Errorf("%w: message of %d bytes, max %d", ErrTooLarge, len(msg), c.caps.MaxMessage)
	}
	if err := c.enter(); err != nil {
		return err
	}
	return c.impl.send(ctx, msg)
}

// Recv receives the next message into buf and returns its length. A message longer than buf
// is an error that keeps the message's first len(buf) bytes in buf.
func (c *Conn) Recv(ctx context.Context, buf []byte) (int, error) {
	if err := c.enter(); err != nil {
		return 0, err
	}
	return c.impl.recv(ctx, buf)
}
