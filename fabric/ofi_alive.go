package fabric

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/ofi"
)

// The liveness of an RDM connection's peer. An RDM endpoint has no connection for the provider
// to report lost, and libfabric 1.17 does not tell a peer process that died from a slow one:
// tcp;ofi_rxm leaves the operations aimed at it in flight for ever and a posted receive waits
// for ever; sockets fails the operations but not the receive; shm notices nothing (and a post
// spins on a lock in the dead peer's region if it died holding it). So each established RDM
// connection watches its peer itself, in a goroutine of its own:
//
//   - A shm peer in another process: its pidfd, in Go's poller (readable once the process has
//     exited, even as an unreaped zombie; a recycled pid cannot fool it). Where pidfds are
//     missing (Linux before 5.3), kill(pid, 0) every keepalive interval.
//   - A shm peer in this process needs nothing: it cannot die alone, and its goodbye says when
//     it closes.
//   - Any other peer: a keepalive. Each side keeps a tagged receive posted for the other's
//     pings and answers them; every interval it pings the other (a word, injected).
//     A ping unanswered after the timeout, or a keepalive message that fails, loses the peer.
//
// A lost connection fails the calls in flight and those that follow with ErrConnReset (its
// endpoint closes at once: that is what wakes a call waiting for a completion that will never
// come), a waiting Recv returns, and Close says no goodbye. A connection the peer closed (its
// goodbye came) is not watched any more.
const (
	pingTag = 0x726b2d70696e // "rk-pin"

	// Defaults of WithKeepalive.
	defaultKeepaliveInterval = 2 * time.Second
	defaultKeepaliveTimeout  = 6 * time.Second
)

// watchPeer starts the goroutine that watches the peer of an established RDM connection, if
// it needs one (see above). close waits for it (c.peerDone).
func (c *ofiConn) watchPeer() {
	interval, timeout := c.b.opt.keepalive, c.b.opt.keepaliveTimeout
	if timeout <= 0 {
		timeout = defaultKeepaliveTimeout // for the answers
	}
	switch {
	case c.shmPeerPID == os.Getpid():
		return
	case c.shmPeerPID != 0:
		fd, err := pidfdOpen(c.shmPeerPID)
		if err != nil {
			if interval <= 0 {
				return
			}
			c.peerDone = make(chan struct{})
			go c.pollProcess(interval)
			return
		}
		c.pidfd = os.NewFile(uintptr(fd), "pidfd")
		c.peerDone = make(chan struct{})
		go c.watchProcess()
	case c.b.addr.Provider == "shm":
		return // the peer's name did not say its process: nothing to watch it by
	default: // answers the peer's pings even if it sends none itself
		c.peerDone = make(chan struct{})
		go c.keepAlive(interval, timeout)
	}
}

// pidfdOpen is openPidfd; a variable for the tests of the fallback.
var pidfdOpen = openPidfd

// openPidfd opens a non-blocking pidfd of pid (Linux 5.10+).
func openPidfd(pid int) (int, error) { return unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK) }

// watchProcess waits until the peer's process exits, or the connection closes (close closes
// the pidfd).
func (c *ofiConn) watchProcess() {
	defer close(c.peerDone)
	rc, err := c.pidfd.SyscallConn()
	if err != nil {
		return
	}
	err = rc.Read(func(fd uintptr) bool {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds[:], 0)
		return n > 0 // readable: the process has exited
	})
	if err == nil {
		c.lose(fmt.Errorf("peer process %d exited", c.shmPeerPID))
	}
}

// pollProcess is watchProcess without a pidfd.
func (c *ofiConn) pollProcess(interval time.Duration) {
	defer close(c.peerDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.closedCh:
			return
		case <-t.C:
			if syscall.Kill(c.shmPeerPID, 0) == syscall.ESRCH {
				c.lose(fmt.Errorf("peer process %d exited", c.shmPeerPID))
				return
			}
		}
	}
}

// keepAlive answers the peer's pings and, every interval (none if 0), pings the peer and
// waits up to timeout for the answer. A ping and its answer are one tagged message each way
// (pingTag), a word: the ping's sequence number, with pongBit set in the answer, injected (no
// completion to wait for). A completed send would prove nothing (tcp;ofi_rxm completes a
// small send to a stopped peer at once); only the answer does.
func (c *ofiConn) keepAlive(interval, timeout time.Duration) {
	defer close(c.peerDone)
	in := &ofi.Op{Kind: ofi.OpTRecv, Buf: c.ctl(4), MR: c.smr, Peer: ofi.AddrUnspec, Tag: pingTag}
	t, err := c.ep.Post(context.Background(), in)
	if err != nil {
		return // closing
	}
	out := c.ctl(5)
	send := func(word uint64) error {
		binary.LittleEndian.PutUint64(out, word)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return c.ep.Do(ctx, []ofi.Op{{Kind: ofi.OpTInject, Buf: out, Peer: c.peer, Tag: pingTag}})
	}
	var seq uint64
	var sent time.Time // of the ping awaiting its answer (zero: none)
	next := time.Now().Add(interval)
	for {
		wctx, cancel := context.Background(), context.CancelFunc(func() {})
		switch {
		case !sent.IsZero():
			wctx, cancel = context.WithDeadline(wctx, sent.Add(timeout))
		case interval > 0:
			wctx, cancel = context.WithDeadline(wctx, next)
		}
		// Watch, not Wait: see watchBye. With its context ended the receive stays posted.
		err := c.ep.Watch(wctx, in, t)
		cancel()
		if err == nil {
			n, pong, merr := readKeepalive(in.Buf[:in.Len])
			if merr != nil {
				c.lose(merr)
				return
			}
			if t, err = c.ep.Post(context.Background(), in); err != nil {
				return
			}
			if !pong {
				err = send(keepaliveWord(n, true)) // the answer
			} else if !sent.IsZero() && n == seq {
				c.pings.Add(1)
				sent, next = time.Time{}, sent.Add(interval)
			}
		} else if ctxEnded(err) {
			if c.dead.Load() || c.gone.Load() {
				return // closing, or the peer said goodbye
			}
			if !sent.IsZero() {
				c.lose(fmt.Errorf("no answer to a keepalive ping in %v", timeout))
				return
			}
			seq = (seq + 1) &^ pongBit
			sent = time.Now()
			err = send(keepaliveWord(seq, false))
		}
		switch {
		case err == nil:
		case errors.Is(err, ofi.ErrClosed):
			return
		case ctxEnded(err):
			c.lose(fmt.Errorf("a keepalive message did not complete in %v", timeout))
			return
		default:
			// Text only: the provider's error is not the caller's (say, ENOENT).
			c.lose(fmt.Errorf("keepalive message failed: %v", err))
			return
		}
	}
}

// pongBit marks a keepalive answer (see keepAlive).
const pongBit = 1 << 63

// keepaliveWord is the keepalive message for ping seq (seq < 2^63), or its answer.
func keepaliveWord(seq uint64, pong bool) uint64 {
	if pong {
		return seq | pongBit
	}
	return seq
}

// readKeepalive decodes a keepalive message: the sequence number of a ping, or of the ping
// it answers.
func readKeepalive(msg []byte) (seq uint64, pong bool, err error) {
	if len(msg) != 8 {
		return 0, false, fmt.Errorf("keepalive message of %d bytes, want 8", len(msg))
	}
	w := binary.LittleEndian.Uint64(msg)
	return w &^ pongBit, w&pongBit != 0, nil
}

// lose marks the connection lost for why and closes its endpoint, unless it is closing or
// its peer said goodbye (the goodbye's answer still needs the endpoint).
func (c *ofiConn) lose(why error) {
	if c.use() != nil {
		return // closing
	}
	defer c.life.RUnlock()
	if c.gone.Load() || !c.lost.CompareAndSwap(nil, &why) {
		return
	}
	c.broken.Store(true) // no goodbye
	// What has arrived stays readable: the queue is read once before the endpoint closes, so
	// that a message the peer sent just before it died is not flushed with the endpoint.
	if c.byeOp != nil {
		c.ep.Ready(c.byeOp, c.byeTicket)
	}
	c.gone.Store(true) // no call starts from now on
	if c.goneCancel != nil {
		c.goneCancel() // Recv stops waiting
	}
	c.closeEP() // calls in flight end
}

// goneErr is the error of a call that starts after the peer closed the connection or was lost.
func (c *ofiConn) goneErr() error {
	if why := c.lost.Load(); why != nil {
		return fmt.Errorf("%w: peer lost: %v", ErrConnReset, *why)
	}
	return errPeerGone
}
