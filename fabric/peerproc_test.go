package fabric

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// EnvPeer makes the test binary a peer process (runPeer in peer_test.go): it listens on the
// address, accepts one connection, registers 8 MiB, sends its descriptor, prints its address
// and waits to be killed.
const EnvPeer = "RDMAKIT_FABRIC_TEST_PEER"

// EnvPeerSend makes the peer then send that many messages ("m0", "m1", ...) and exit at once.
const EnvPeerSend = "RDMAKIT_FABRIC_TEST_PEER_SEND"

// StartPeer starts the test binary as a peer process listening on listen, with env added to
// its environment, and returns it and the address it printed. The process is killed when the
// test ends.
func StartPeer(t *testing.T, listen string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=NONE")
	cmd.Env = append(append(os.Environ(), EnvPeer+"="+listen), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "addr ") {
		t.Fatalf("peer said %q", sc.Text())
	}
	return cmd, strings.TrimPrefix(sc.Text(), "addr ")
}

// RecvEnds runs a Recv on c without deadline and returns its error; the test fails if the Recv
// is still waiting after limit (after says what happened before it, for the message).
func RecvEnds(t *testing.T, c *Conn, limit time.Duration, after string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background(), make([]byte, 64))
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("recv still waiting %v after %s", limit, after)
		return nil
	}
}
