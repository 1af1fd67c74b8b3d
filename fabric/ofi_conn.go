package fabric

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rdmakit/rdmakit/internal/scratch"
	"github.com/rdmakit/rdmakit/ofi"
)

// ofiConn is one connection: an endpoint with its own completion queue, a ring of posted
// receive buffers and a pool of registered send buffers for messages.
type ofiConn struct {
	b      *ofiBackend
	ep     *ofi.Endpoint
	cq     *ofi.CQ
	av     *ofi.AV // RDM
	eq     *ofi.EQ // MSG
	peer   ofi.Addr
	remote string

	rmu      sync.Mutex // receivers take turns, in ring order
	rbuf     *ofi.Buffer
	rmr      *ofi.MR
	rops     []ofi.Op
	rtickets []ofi.Ticket
	rhead    int
	rdead    []bool // receive i could not be posted again (the endpoint closed): Recv fails there
	rerr     error  // why the first of them could not

	sbuf   *ofi.Buffer
	smr    *ofi.MR
	sslots chan int

	gone      atomic.Bool   // the peer shut the connection down
	broken    atomic.Bool   // the provider reported the connection lost (no goodbye then)
	life      sync.RWMutex  // shared by calls using the conn's buffers, exclusive by close
	dead      atomic.Bool   // close has begun
	closedCh  chan struct{} // closed when close begins
	closeOnce sync.Once
	closeErr  error
	stopEQ    context.CancelFunc

	// RDM, the goodbye (ofi_bye.go): watchDone is set once the peer's per-connection
	// endpoint is known (established), and closes when the goroutine watching for the peer's
	// goodbye has returned; goneCtx ends when the goodbye came (wakes Recv).
	watchDone  chan struct{}
	goneCtx    context.Context
	goneCancel context.CancelFunc
	shmSelf    string     // shm: this endpoint's name in shmOpen
	shmPeer    string     // shm: the peer endpoint's name (rdmakit-PID-N)
	shmPeerPID int        // and the process it belongs to
	byeOp      *ofi.Op    // the standing receive for the goodbye
	byeTicket  ofi.Ticket // and its ticket

	// The peer's liveness (ofi_alive.go): peerDone closes when the goroutine watching the
	// peer has returned (nil: none); lost says why the peer was lost (nil: it was not).
	peerDone chan struct{}
	pidfd    *os.File    // a shm peer's process
	abuf     *ofi.Buffer // the keepalive word the peer reads (RDM)
	amr      *ofi.MR     // its registration, remote read only
	peerWord ofi.Region  // the peer's keepalive word
	lost     atomic.Pointer[error]
	reads    atomic.Uint64 // keepalive reads that completed
	epMu     sync.Mutex    // held across closing the endpoint: a second closer waits for it
}

// established reports whether the connection's RDM handshake is done: close says goodbye.
func (c *ofiConn) established() bool { return c.watchDone != nil }

const sendSlots = 4

// newConn creates the endpoint and queues of a connection and posts its receive ring.
func (b *ofiBackend) newConn(info *ofi.Info) (_ *ofiConn, err error) {
	c := &ofiConn{b: b, peer: ofi.AddrUnspec, closedCh: make(chan struct{})}
	defer func() {
		if err != nil {
			c.close() // c, not the result: a failed return has set that to nil
			err = ofiError(err)
		}
	}()
	if c.ep, err = b.dom.NewEndpoint(info); err != nil {
		return nil, err
	}
	if c.cq, err = b.dom.OpenCQ(ofi.CQAttr{Size: b.opt.queueDepth + b.opt.recvDepth + sendSlots,
		Spin: b.opt.spin, Linger: b.opt.linger}); err != nil {
		return nil, err
	}
	if err = c.ep.BindCQ(c.cq, ofi.BindTransmit|ofi.BindRecv); err != nil {
		return nil, err
	}
	if b.epType == ofi.EPRDM {
		if c.av, err = b.dom.OpenAV(ofi.AVTable, 4); err != nil {
			return nil, err
		}
		err = c.ep.BindAV(c.av)
	} else {
		if c.eq, err = b.fab.OpenEQ(16); err != nil {
			return nil, err
		}
		err = c.ep.BindEQ(c.eq)
	}
	if err != nil {
		return nil, err
	}
	if err = c.ep.Enable(); err != nil {
		return nil, err
	}
	n := b.opt.maxMessage
	if c.rbuf, err = ofi.Alloc(n * b.opt.recvDepth); err != nil {
		return nil, err
	}
	if c.rmr, err = b.dom.RegMR(c.rbuf.Bytes(), ofi.AccessLocal); err != nil {
		return nil, err
	}
	if c.sbuf, err = ofi.Alloc(n*sendSlots + ctlBytes); err != nil {
		return nil, err
	}
	if c.smr, err = b.dom.RegMR(c.sbuf.Bytes(), ofi.AccessLocal); err != nil {
		return nil, err
	}
	if b.epType == ofi.EPRDM {
		if c.abuf, err = ofi.Alloc(8); err != nil {
			return nil, err
		}
		if c.amr, err = b.dom.RegMR(c.abuf.Bytes()[:8], ofi.AccessRemoteRead); err != nil {
			return nil, err
		}
	}
	c.sslots = make(chan int, sendSlots)
	for i := range sendSlots {
		c.sslots <- i
	}
	c.rops = make([]ofi.Op, b.opt.recvDepth)
	c.rdead = make([]bool, b.opt.recvDepth)
	c.rtickets = make([]ofi.Ticket, b.opt.recvDepth)
	for i := range c.rops {
		if err = c.postRecv(context.Background(), i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *ofiConn) postRecv(ctx context.Context, i int) error {
	n := c.b.opt.maxMessage
	c.rops[i] = ofi.Op{Kind: ofi.OpRecv, Buf: c.rbuf.Bytes()[i*n : (i+1)*n], MR: c.rmr, Peer: ofi.AddrUnspec}
	t, err := c.ep.Post(ctx, &c.rops[i])
	c.rtickets[i] = t
	return err
}

// name is the endpoint's address for the handshake.
func (c *ofiConn) name() ([]byte, error) { return c.ep.Name() }

// watchEQ turns a MSG connection's shutdown event into a closed connection.
func (c *ofiConn) watchEQ() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stopEQ = cancel
	go func() {
		for {
			ev, err := c.eq.Read(ctx)
			if err != nil {
				return // closed or stopped
			}
			if ev.Kind == ofi.EventShutdown || ev.Err != nil {
				c.gone.Store(true)
				c.closeEP() // flush what is in flight
				return
			}
		}
	}()
}

// waitConnected waits for the MSG endpoint's FI_CONNECTED (or a refusal).
func (c *ofiConn) waitConnected(ctx context.Context) error {
	for {
		ev, err := c.eq.Read(ctx)
		if err != nil {
			return err
		}
		if ev.Err != nil {
			return ev.Err
		}
		switch ev.Kind {
		case ofi.EventConnected:
			return nil
		case ofi.EventShutdown:
			return fmt.Errorf("%w: peer shut down while connecting", ErrConnReset)
		}
	}
}

func (c *ofiConn) fail(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ofi.ErrCanceled) && !ctxEnded(err) {
		// The provider canceled the operation itself: rxm does when a protection fault or a
		// dead peer tears its connection down.
		c.broken.Store(true)
		return fmt.Errorf("%w: canceled by the provider: %w", ErrConnReset, err)
	}
	if errors.Is(err, syscall.ENOENT) {
		// sockets refuses a post for a peer it has no connection to any more (the peer
		// shut down; the shutdown event may not have been read yet).
		c.broken.Store(true)
		return fmt.Errorf("%w: no connection to the peer: %w", ErrConnReset, ofiError(err))
	}
	if errors.Is(err, ofi.ErrConnReset) && !errors.Is(err, ofi.ErrAccess) {
		c.broken.Store(true)
	}
	if c.gone.Load() && !errors.Is(err, ErrConnReset) {
		why := "peer shut down"
		if w := c.lost.Load(); w != nil {
			why = "peer lost: " + (*w).Error()
		}
		if errors.Is(err, ofi.ErrClosed) && !c.dead.Load() {
			// The endpoint closed because of that, not by Close: not ErrClosed.
			return fmt.Errorf("%w: %s", ErrConnReset, why)
		}
		return fmt.Errorf("%w: %s: %w", ErrConnReset, why, ofiError(err))
	}
	return ofiError(err)
}

// closeEP closes the endpoint, which ends the calls waiting on it. Close, a lost peer and a
// MSG shutdown all close it; a second closer returns only once the first has finished
// (ofi's Close returns at once the second time), so that nothing the endpoint is bound to
// closes under it.
func (c *ofiConn) closeEP() error {
	if c.ep == nil {
		return nil
	}
	c.epMu.Lock()
	defer c.epMu.Unlock()
	return c.ep.Close()
}

// use starts a call that touches the connection's endpoint or buffers; c.life.RUnlock ends
// it. close waits for such calls (after waking them) before it frees anything.
func (c *ofiConn) use() error {
	c.life.RLock()
	if c.dead.Load() {
		c.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// errPeerGone fails the calls that start after the peer closed the connection.
var errPeerGone = fmt.Errorf("%w: the peer closed the connection", ErrConnReset)

// useLive is use for a call that posts operations: none start once the peer is gone.
func (c *ofiConn) useLive() error {
	if err := c.use(); err != nil {
		return err
	}
	if c.gone.Load() {
		c.life.RUnlock()
		return c.goneErr()
	}
	return nil
}

func (c *ofiConn) do(ctx context.Context, ops []Op) error {
	if err := c.useLive(); err != nil {
		return err
	}
	kill, err := c.doLive(ctx, ops)
	c.life.RUnlock()
	if kill {
		c.close() // operations may still be in flight: only closing takes the buffers back
	}
	return err
}

// ofiOps holds the libfabric ops of batches (more than one op).
var ofiOps scratch.Pool[ofi.Op]

func (c *ofiConn) doLive(ctx context.Context, ops []Op) (kill bool, err error) {
	var small [1]ofi.Op
	oops := small[:0]
	if len(ops) > 1 {
		p := ofiOps.Get(len(ops))
		defer ofiOps.Put(p)
		oops = (*p)[:0]
	}
	for i := range ops {
		op := &ops[i]
		o := ofi.Op{Peer: c.peer, RemoteAddr: op.Remote.Addr + op.RemoteOff, Key: op.Remote.Key}
		switch op.Kind {
		case OpRead, OpWrite:
			o.Kind = ofi.OpRead
			if op.Kind == OpWrite {
				o.Kind, o.Flags = ofi.OpWrite, c.b.hints.TxOpFlags
			}
			m := op.Mem.impl.(*ofiMemory)
			o.Buf, o.MR = m.mem[op.Off:op.Off+op.Len], m.mr
		case OpAtomic:
			a := atomicMap[op.Atomic]
			o.Kind, o.AtomicOp, o.Datatype = a.kind, a.op, ofi.Uint64
			o.Operand, o.Compare = op.Operand, op.Compare
		}
		oops = append(oops, o)
	}
	err = c.ep.Do(ctx, oops)
	for i := range ops {
		ops[i].Result = oops[i].Result
		ops[i].Err = c.fail(oops[i].Err)
	}
	if ctxEnded(err) {
		return true, fmt.Errorf("%w (connection closed)", c.fail(err))
	}
	return false, c.fail(err)
}

func (c *ofiConn) send(ctx context.Context, msg []byte) error {
	var slot int
	select {
	case slot = <-c.sslots:
	case <-c.closedCh:
		return ErrClosed
	case <-ctx.Done():
		return ofiError(ctx.Err())
	}
	if err := c.useLive(); err != nil {
		c.sslots <- slot
		return err
	}
	n := c.b.opt.maxMessage
	buf := c.sbuf.Bytes()[slot*n : slot*n+len(msg)]
	copy(buf, msg)
	ops := []ofi.Op{{Kind: ofi.OpSend, Buf: buf, MR: c.smr, Peer: c.peer}}
	err := c.ep.Do(ctx, ops)
	c.life.RUnlock()
	if ctxEnded(err) {
		c.close() // the buffer may still be in flight
		return fmt.Errorf("%w (connection closed)", c.fail(err))
	}
	c.sslots <- slot
	return c.fail(err)
}

func (c *ofiConn) recv(ctx context.Context, buf []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.use(); err != nil {
		return 0, err
	}
	defer c.life.RUnlock()
	i := c.rhead
	if c.rdead[i] {
		return 0, c.fail(c.rerr)
	}
	op := &c.rops[i]
	var gone <-chan struct{} // closes when the peer says goodbye or is lost
	if c.goneCtx != nil {
		// What came before the peer's goodbye is still received; then Recv fails.
		if c.gone.Load() && !c.ep.Ready(op, c.rtickets[i]) {
			return 0, c.goneErr()
		}
		gone = c.goneCtx.Done()
	}
	if err := c.ep.WaitOr(ctx, op, c.rtickets[i], gone); err != nil {
		if errors.Is(err, ofi.ErrStopped) {
			return 0, c.goneErr() // still posted: it stays unread
		}
		if ctxEnded(err) {
			return 0, ofiError(err) // still posted: the next Recv waits for it again
		}
		return 0, c.fail(err)
	}
	c.rhead = (i + 1) % len(c.rops)
	n := copy(buf, op.Buf[:op.Len])
	var err error
	if n < op.Len {
		err = fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrTooLarge, op.Len, len(buf))
	}
	if perr := c.postRecv(context.Background(), i); perr != nil {
		// The message is the caller's. The endpoint closed after it came (the peer said
		// goodbye, shut down or was lost): the receives still posted may hold messages that
		// came before, and a Recv reaching this one reports the failure.
		c.rdead[i] = true
		if c.rerr == nil {
			c.rerr = perr
		}
	}
	return n, err
}

func (c *ofiConn) remoteAddr() string { return c.remote }

// close closes the endpoint first, then its queues and buffers. Idempotent.
func (c *ofiConn) close() error {
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		close(c.closedCh)
		if c.stopEQ != nil {
			c.stopEQ()
		}
		switch {
		case c.established() && !c.gone.Load() && !c.broken.Load():
			c.sayBye()
		case c.established() && c.gone.Load():
			// The peer said goodbye: the watcher answers it while the endpoint is still
			// open (a caller that closes as soon as Recv fails would otherwise cut it off,
			// and the peer waited byeTimeout).
			<-c.watchDone
		}
		c.shmClosing()
		var errs []error
		errs = append(errs, c.closeEP()) // wakes calls waiting on it
		if c.pidfd != nil {
			c.pidfd.Close() // wakes the peer's watcher
		}
		if c.watchDone != nil {
			<-c.watchDone // it uses the control buffers without c.life
		}
		if c.peerDone != nil {
			<-c.peerDone // so may the keepalive
		}
		c.life.Lock() // the calls using the buffers have left
		defer c.life.Unlock()
		if c.cq != nil {
			errs = append(errs, c.cq.Close())
		}
		if c.av != nil {
			errs = append(errs, c.av.Close())
		}
		if c.eq != nil {
			errs = append(errs, c.eq.Close())
		}
		if c.rmr != nil {
			errs = append(errs, c.rmr.Close())
		}
		if c.smr != nil {
			errs = append(errs, c.smr.Close())
		}
		if c.amr != nil {
			errs = append(errs, c.amr.Close())
		}
		if c.abuf != nil {
			errs = append(errs, c.abuf.Free())
		}
		if c.rbuf != nil {
			errs = append(errs, c.rbuf.Free())
		}
		if c.sbuf != nil {
			errs = append(errs, c.sbuf.Free())
		}
		c.closeErr = ofiError(errors.Join(errs...))
	})
	return c.closeErr
}

// ctxEnded reports whether err comes from a context that ended (not from the provider).
func ctxEnded(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
