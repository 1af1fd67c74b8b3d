package fabric

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/ofi"
)

// The goodbye of an RDM connection. An RDM endpoint has no connection of its own for the
// provider to tear down, and libfabric 1.17's tcp;ofi_rxm leaves an operation aimed at a
// closed peer endpoint in flight for ever (shm in one process dereferences the peer's freed
// region). So a closing side tells its peer, and the peer stops using the connection before
// the endpoint goes away:
//
//   - Closing, a side posts a receive for the answer, sends byeTag and waits up to byeTimeout
//     for ackTag (a peer that is gone or hung does not hold the close up for longer), then
//     closes its endpoint.
//   - Each established connection keeps a tagged receive for byeTag posted, watched by a
//     goroutine. When the goodbye comes the connection is gone: no call starts any more (they
//     fail with ErrConnReset, as on a MSG connection whose peer shut down), a waiting Recv
//     returns (messages that came before the goodbye are still received), and once the
//     calls in flight have finished (at most byeTimeout) it answers ackTag. Its endpoint
//     stays open until Close: two shm endpoints of one process share their regions, and an
//     endpoint closed while its peer still handles the answer would have the peer write
//     into unmapped memory (see shmOpen for the other way round).
//
// The messages are tagged, so they never land in the ring of posted receives that carries
// Send and Recv, and 8 bytes each, in the control area at the end of the send buffer.
const (
	byeTag     = 0x726b2d627965 // "rk-bye"
	ackTag     = 0x726b2d61636b // "rk-ack"
	byeTimeout = 500 * time.Millisecond
	ctlBytes   = 6 * 8 // goodbye in, answer in, goodbye out, answer out, keepalive in and out (ofi_alive.go)
)

// ctl returns control word i of the send buffer (see ctlBytes).
func (c *ofiConn) ctl(i int) []byte {
	off := c.b.opt.maxMessage*sendSlots + 8*i
	return c.sbuf.Bytes()[off : off+8]
}

// watchBye marks the connection established, its peer's endpoint named peerName, and starts
// watching for the peer's goodbye.
func (c *ofiConn) watchBye(peerName []byte) {
	c.watchDone = make(chan struct{})
	c.shmOpened(peerName)
	c.goneCtx, c.goneCancel = context.WithCancel(context.Background())
	op := &ofi.Op{Kind: ofi.OpTRecv, Buf: c.ctl(0), MR: c.smr, Peer: ofi.AddrUnspec, Tag: byeTag}
	t, err := c.ep.Post(context.Background(), op)
	if err != nil {
		close(c.watchDone)
		return // the endpoint is closing; nothing to watch
	}
	c.byeOp, c.byeTicket = op, t
	c.watchPeer()
	go func() {
		defer close(c.watchDone)
		// Watch, not Wait: a waiter parked for the connection's whole life would keep its
		// queue's progress goroutine on the short safety tick.
		if c.ep.Watch(context.Background(), op, t) != nil {
			return // our endpoint closed
		}
		c.gone.Store(true) // no call starts from now on
		c.goneCancel()     // Recv stops waiting
		ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
		defer cancel()
		// The calls in flight finish first (the peer serves them until it has the answer),
		// for as long as the peer waits for it. A try, not Lock: a writer waiting would hold
		// up the calls that start meanwhile, which fail at once now.
		for ctx.Err() == nil {
			if c.life.TryLock() {
				c.life.Unlock()
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		// Closing too (the goodbyes crossed), it still answers while the endpoint is open;
		// close waits for this goroutine before it frees the buffers.
		c.toPeer(func() {
			c.ep.Do(ctx, []ofi.Op{{Kind: ofi.OpTSend, Buf: c.ctl(3), MR: c.smr, Peer: c.peer, Tag: ackTag}})
		})
	}()
}

// sayBye tells the peer the connection is closing and waits for its answer, at most
// byeTimeout, or until the endpoint closes (the peer's goodbye crossed ours). It waits for the
// answer, not for the goodbye's own completion: a shm endpoint left with an operation its peer
// refused never completes another send, although the peer gets it and answers.
func (c *ofiConn) sayBye() {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	ack := &ofi.Op{Kind: ofi.OpTRecv, Buf: c.ctl(1), MR: c.smr, Peer: ofi.AddrUnspec, Tag: ackTag}
	t, err := c.ep.Post(ctx, ack)
	if err != nil {
		return
	}
	// Both stay posted if they have not finished when the wait ends: closing the endpoint
	// ends them, and the buffers outlive it.
	bye := &ofi.Op{Kind: ofi.OpTSend, Buf: c.ctl(2), MR: c.smr, Peer: c.peer, Tag: byeTag}
	posted := false
	c.toPeer(func() {
		_, err := c.ep.Post(ctx, bye)
		posted = err == nil
	})
	if posted {
		c.ep.Wait(ctx, ack, t)
	}
}

// shmOpen holds the names (rdmakit-PID-N) of this process's open shm connection endpoints.
// libfabric 1.17's shm maps a peer endpoint of the same process by pointing at its region,
// which the peer frees when its endpoint closes: a post to it after that writes into unmapped
// memory. So the goodbye and its answer go to such a peer only while it is in the set, and a
// closing connection leaves the set (taking the lock exclusively) before its endpoint closes.
var shmOpen = struct {
	sync.RWMutex
	names map[string]bool
}{names: map[string]bool{}}

// shmName finds the endpoint name fabric gave a shm connection endpoint (anonymousShmName)
// in an address as the AV prints it, and the process it belongs to.
var shmName = regexp.MustCompile(`rdmakit-(\d+)-\d+`)

// shmOpened records a shm connection's own endpoint in shmOpen and its peer's name.
func (c *ofiConn) shmOpened(peerName []byte) {
	if c.b.addr.Provider != "shm" {
		return
	}
	self, err := c.name()
	if err != nil {
		return
	}
	if m := shmName.FindStringSubmatch(c.av.String(peerName)); m != nil {
		c.shmPeer = m[0]
		c.shmPeerPID, _ = strconv.Atoi(m[1])
	}
	if m := shmName.FindString(c.av.String(self)); m != "" {
		c.shmSelf = m
		shmOpen.Lock()
		shmOpen.names[m] = true
		shmOpen.Unlock()
	}
}

// shmClosing takes the connection's endpoint out of shmOpen; its endpoint may close then.
func (c *ofiConn) shmClosing() {
	if c.shmSelf != "" {
		shmOpen.Lock()
		delete(shmOpen.names, c.shmSelf)
		shmOpen.Unlock()
	}
}

// toPeer runs post, which posts to the peer, unless the peer is a shm endpoint of this process
// that has closed (see shmOpen; the peer cannot close meanwhile) or of a process that has
// died: a shm post spins on a lock in the peer's region, and a process killed in the middle
// of serving may have died holding it (the post never returned).
func (c *ofiConn) toPeer(post func()) {
	switch {
	case c.shmPeer == "":
		post()
	case c.shmPeerPID == os.Getpid():
		shmOpen.RLock()
		defer shmOpen.RUnlock()
		if shmOpen.names[c.shmPeer] {
			post()
		}
	case syscall.Kill(c.shmPeerPID, 0) != syscall.ESRCH:
		post()
	}
}
