package fabric

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// connPair listens on addr and dials it; both ends close when the test ends.
func connPair(t *testing.T, addr string) (srv, cli *Conn) {
	t.Helper()
	return connPairWith(t, addr, nil, nil)
}

// Two shm connections of one process know each other's endpoint as one of this process
// (shmPeer, shmPeerPID) and are in shmOpen while open; a closed one leaves it, so its peer's goodbye
// does not go to its freed region: closing the peer afterwards must not crash, and it does
// not wait for an answer that cannot come.
func TestShmByeSkipsClosedPeer(t *testing.T) {
	s, c := connPair(t, "ofi+shm://rk-bye-"+anonymousShmName())
	srv, cli := s.impl.(*ofiConn), c.impl.(*ofiConn)
	for _, c := range []*ofiConn{srv, cli} {
		if c.shmSelf == "" || c.shmPeer == "" {
			t.Fatalf("shm connection without names: self %q, peer %q", c.shmSelf, c.shmPeer)
		}
	}
	if srv.shmPeer != cli.shmSelf || cli.shmPeer != srv.shmSelf || srv.shmPeerPID != os.Getpid() {
		t.Fatalf("peers %q and %q, endpoints %q and %q", srv.shmPeer, cli.shmPeer, srv.shmSelf, cli.shmSelf)
	}
	shmOpen.RLock()
	open := shmOpen.names[srv.shmSelf] && shmOpen.names[cli.shmSelf]
	shmOpen.RUnlock()
	if !open {
		t.Fatal("open connections missing from shmOpen")
	}
	// The client goes without a goodbye (as when the provider reported it lost).
	cli.broken.Store(true)
	cli.close()
	shmOpen.RLock()
	open = shmOpen.names[cli.shmSelf]
	shmOpen.RUnlock()
	if open {
		t.Fatal("a closed connection stays in shmOpen")
	}
	start := time.Now()
	srv.close() // would post into the client's freed region
	if d := time.Since(start); d >= byeTimeout {
		t.Errorf("close waited %v for an answer from a closed peer", d)
	}
}

// A peer that closes its end as soon as its Recv fails on the goodbye still answers it: the
// closing side does not wait out byeTimeout. (The Recv failed before the answer went out, and
// the peer's close cut it off: in the raid tests 7 of 10 closes waited the whole 500 ms.)
func TestByeAnsweredByClosingPeer(t *testing.T) {
	for i := range 5 {
		srv, cli := connPair(t, "ofi+tcp://127.0.0.1:0")
		recvFailed := make(chan error, 1)
		go func() {
			_, err := srv.Recv(context.Background(), make([]byte, 64))
			srv.Close()
			recvFailed <- err
		}()
		time.Sleep(10 * time.Millisecond) // the Recv waits
		start := time.Now()
		cli.Close()
		d := time.Since(start)
		if err := <-recvFailed; !errors.Is(err, ErrConnReset) {
			t.Fatalf("the peer's Recv: %v, want ErrConnReset", err)
		}
		if d >= byeTimeout {
			t.Fatalf("close %d waited %v: the goodbye was not answered", i, d)
		}
	}
}
