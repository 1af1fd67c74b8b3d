package fabric

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
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
