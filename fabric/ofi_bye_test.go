package fabric

import (
	"context"
	"os"
	"testing"
	"time"
)

// shmConnPair connects two shm connections of this process.
func shmConnPair(t *testing.T) (srv, cli *ofiConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, l, err := Listen(ctx, "ofi+shm://rk-bye-"+anonymousShmName())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	accepted := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept(ctx)
		accepted <- c
	}()
	c, err := Dial(ctx, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	return s.impl.(*ofiConn), c.impl.(*ofiConn)
}

// Two shm connections of one process know each other's endpoint as one of this process
// (shmPeer, shmPeerPID) and are in shmOpen while open; a closed one leaves it, so its peer's goodbye
// does not go to its freed region: closing the peer afterwards must not crash, and it does
// not wait for an answer that cannot come.
func TestShmByeSkipsClosedPeer(t *testing.T) {
	srv, cli := shmConnPair(t)
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
	// The client goes without a goodbye (as when its own goodbye could not be sent).
	cli.established = false
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
