package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/rdmakit/rdmakit/verbs"
)

// verbsListener accepts RC connections through the rdma_cm.
type verbsListener struct {
	b    *verbsBackend
	l    *verbs.Listener
	mu   sync.Mutex // one Accept at a time
	name string
}

func (b *verbsBackend) listen(ctx context.Context) (listenerImpl, error) {
	l, err := verbs.Listen(b.hostPort(b.addr.Port), 64)
	if err != nil {
		return nil, verbsError(err)
	}
	a := b.addr
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		a.Port = strconv.Itoa(ta.Port)
	}
	return &verbsListener{b: b, l: l, name: a.String()}, nil
}

func (l *verbsListener) addr() string { return l.name }

func (l *verbsListener) accept(ctx context.Context) (connImpl, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		req, err := l.l.Accept(ctx)
		if err != nil {
			return nil, verbsError(err)
		}
		if dev := req.Device(); dev != l.b.dev {
			req.Reject(nil) // arrived on another device: this fabric's memory is not there
			continue
		}
		c, err := l.b.newConn()
		if err != nil {
			req.Reject(nil)
			return nil, err
		}
		conn, err := req.Accept(ctx, c.config())
		if err == nil {
			if err = c.start(conn); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			c.close()
			if ctx.Err() != nil {
				return nil, verbsError(err)
			}
			continue // the dialer went away
		}
		return c, nil
	}
}

func (l *verbsListener) close() error { return verbsError(l.l.Close()) }

func (b *verbsBackend) dial(ctx context.Context, to Addr) (connImpl, error) {
	ip, err := lookupIP(to.Host)
	if err != nil {
		return nil, err
	}
	if to.Port == "" || to.Port == "0" {
		return nil, fmt.Errorf("%w: %s: dialing needs a port", ErrBadAddress, to)
	}
	c, err := b.newConn()
	if err != nil {
		return nil, err
	}
	conn, err := verbs.Dial(ctx, net.JoinHostPort(ip.String(), to.Port), c.config())
	if err == nil {
		if err = c.start(conn); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		c.close()
		if errors.Is(err, verbs.ErrRejected) {
			return nil, fmt.Errorf("%w: %w", ErrConnRefused, err)
		}
		return nil, verbsError(err)
	}
	c.remote = to.String()
	return c, nil
}
