package fabric

import (
	"context"
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
//     missing (non-blocking ones came with Linux 5.10), kill(pid, 0) every keepalive interval.
//   - A shm peer in this process needs nothing: it cannot die alone, and its goodbye says when
//     it closes.
//   - Any other peer: a keepalive. Each side registers a word for remote reads and tells the
//     peer where it is in the handshake; every interval it reads the peer's word (8 bytes, an
//     RMA read, which only the peer's progress, or its NIC, completes). A read that fails, or
//     that has not completed when the timeout passes, loses the peer. (Tagged ping messages
//     did the same first, but rxm set up about 4.5 MB of buffers per endpoint at the first
//     tagged message: 9 MB more per connection.)
//
// A lost connection fails the calls in flight and those that follow with ErrConnReset (its
// endpoint closes at once: that is what wakes a call waiting for a completion that will never
// come), a waiting Recv returns, and Close says no goodbye. A connection the peer closed (its
// goodbye came) is not watched any more.
const (
	// Defaults of WithKeepalive.
	defaultKeepaliveInterval = 2 * time.Second
	defaultKeepaliveTimeout  = 6 * time.Second
)

// watchPeer starts the goroutine that watches the peer of an established RDM connection, if
// it needs one (see above). close waits for it (c.peerDone).
func (c *ofiConn) watchPeer() {
	interval, timeout := c.b.opt.keepalive, c.b.opt.keepaliveTimeout
	if timeout <= 0 {
		timeout = defaultKeepaliveTimeout // WithKeepalive(d, 0)
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
	case interval > 0:
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

// keepAlive reads the peer's keepalive word every interval and loses the peer when a read
// fails or takes longer than timeout.
func (c *ofiConn) keepAlive(interval, timeout time.Duration) {
	defer close(c.peerDone)
	read := []ofi.Op{{Kind: ofi.OpRead, Buf: c.ctl(4), MR: c.smr, Peer: c.peer,
		RemoteAddr: c.peerWord.Addr, Key: c.peerWord.Key}}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-c.closedCh:
			return
		case <-t.C:
		}
		if c.gone.Load() {
			return // the peer said goodbye
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.ep.Do(ctx, read)
		cancel()
		switch {
		case err == nil:
			c.reads.Add(1)
			t.Reset(interval)
		case errors.Is(err, ofi.ErrClosed):
			return
		case ctxEnded(err):
			c.lose(fmt.Errorf("no answer to a keepalive read in %v", timeout))
			return
		default:
			// Text only: the provider's error is not the caller's (say, ENOENT).
			c.lose(fmt.Errorf("keepalive read failed: %v", err))
			return
		}
	}
}

// aliveWord is the connection's keepalive word, for the handshake (zero without one).
func (c *ofiConn) aliveWord() ofi.Region {
	if c.amr == nil {
		return ofi.Region{}
	}
	return c.amr.Region()
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
