package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// probeListener finds out, before a dial over an RDM transport whose listeners are TCP ports
// (tcp;ofi_rxm, sockets), whether anything listens at the address: a TCP connection, closed at
// once. libfabric 1.17 tells an RDM dialer nothing of a refused connection: rxm retries it
// until the dial's context ends (15 s by default) and sockets fails the hello with ENOENT, a
// lost connection. A refused or unreachable address is ErrConnRefused now; any other outcome
// leaves the answer to the dial. The listening provider takes the bare connection as one that
// failed its handshake (TestListenerSurvivesProbes).
func probeListener(ctx context.Context, to Addr) error {
	if to.Backend != "ofi" || to.Provider != "tcp" && to.Provider != "sockets" {
		return nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(to.Host, to.Port))
	if err == nil {
		c.Close()
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.ECONNREFUSED || errno == syscall.EHOSTUNREACH ||
		errno == syscall.ENETUNREACH) {
		return fmt.Errorf("%w: nothing listens there (%w)", ErrConnRefused, errno)
	}
	if ctx.Err() != nil {
		return ofiError(ctx.Err())
	}
	return nil
}
