package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/ofi"
)

// ofiListener accepts connections. RDM: a well-known endpoint receives hellos and each
// connection gets an endpoint of its own. MSG: a passive endpoint and connection requests.
type ofiListener struct {
	b     *ofiBackend
	mu    sync.Mutex // one Accept at a time
	hello *ofiConn   // RDM
	pep   *ofi.PassiveEndpoint
	eq    *ofi.EQ
	name  string
	once  sync.Once
}

func (b *ofiBackend) listen(ctx context.Context) (listenerImpl, error) {
	l := &ofiListener{b: b}
	var err error
	if b.epType == ofi.EPRDM {
		if l.hello, err = b.newConn(b.info); err != nil {
			return nil, err
		}
	} else {
		if l.pep, err = b.fab.NewPassiveEndpoint(b.info); err == nil {
			if l.eq, err = b.fab.OpenEQ(64); err == nil {
				if err = l.pep.BindEQ(l.eq); err == nil {
					err = l.pep.Listen()
				}
			}
		}
		if err != nil {
			l.close()
			return nil, ofiError(err)
		}
	}
	a := b.addr
	if b.addr.Provider != "shm" && (a.Port == "" || a.Port == "0") {
		if a.Port, err = l.boundPort(); err != nil {
			l.close()
			return nil, err
		}
	}
	l.name = a.String()
	return l, nil
}

// boundPort reads the port the provider picked from the endpoint's sockaddr.
func (l *ofiListener) boundPort() (string, error) {
	var name []byte
	var err error
	if l.hello != nil {
		name, err = l.hello.name()
	} else {
		name, err = l.pep.Name()
	}
	if err != nil {
		return "", ofiError(err)
	}
	if len(name) < 4 {
		return "", fmt.Errorf("%w: endpoint name of %d bytes", ErrNotSupported, len(name))
	}
	return fmt.Sprint(int(name[2])<<8 | int(name[3])), nil // sockaddr_in/in6: port at 2, big endian
}

func (l *ofiListener) addr() string { return l.name }

func (l *ofiListener) accept(ctx context.Context) (connImpl, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hello != nil {
		return l.acceptRDM(ctx)
	}
	return l.acceptMSG(ctx)
}

func (l *ofiListener) acceptRDM(ctx context.Context) (connImpl, error) {
	buf := make([]byte, 8+maxNameLen)
	for {
		n, err := l.hello.recv(ctx, buf)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				continue // not a hello
			}
			return nil, err
		}
		h, err := parseHandshake(buf[:n])
		if err != nil || h.kind != helloKind {
			continue // garbage from someone else: ignore it
		}
		info, err := l.b.endpointInfo()
		if err != nil {
			return nil, ofiError(err)
		}
		c, err := l.b.newConn(info)
		if err != nil {
			return nil, err
		}
		if c.peer, err = c.av.Insert(h.name); err != nil {
			c.close()
			continue
		}
		name, err := c.name()
		if err == nil {
			// A dialer that gave up never takes its welcome: do not let it hold up the
			// hellos queued behind it.
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err = c.send(wctx, handshake{kind: welcomeKind, name: name}.marshal())
			cancel()
		}
		if err != nil {
			c.close()
			if ctx.Err() != nil {
				return nil, ofiError(err)
			}
			continue // the dialer went away
		}
		c.remote = c.av.String(h.name)
		return c, nil
	}
}

func (l *ofiListener) acceptMSG(ctx context.Context) (connImpl, error) {
	for {
		ev, err := l.eq.Read(ctx)
		if err != nil {
			return nil, ofiError(err)
		}
		if ev.Kind != ofi.EventConnReq {
			continue
		}
		c, err := l.b.newConn(ev.Info)
		if err != nil {
			l.pep.Reject(ev, nil)
			return nil, err
		}
		if err = c.ep.Accept(nil); err == nil {
			err = c.waitConnected(ctx)
		}
		if err != nil {
			c.close()
			if ctx.Err() != nil {
				return nil, ofiError(err)
			}
			continue
		}
		c.remote = sockaddrString(ev.Info.DestAddr())
		c.watchEQ()
		return c, nil
	}
}

func (l *ofiListener) close() error {
	var err error
	l.once.Do(func() {
		if l.hello != nil {
			err = l.hello.close()
		}
		if l.pep != nil {
			err = errors.Join(l.pep.Close(), l.eq.Close())
		}
	})
	return ofiError(err)
}

func (b *ofiBackend) dial(ctx context.Context, to Addr) (connImpl, error) {
	if b.epType == ofi.EPMsg {
		infos, err := b.getinfo(to, false)
		if err != nil {
			return nil, ofiError(err)
		}
		c, err := b.newConn(infos[0])
		if err != nil {
			return nil, err
		}
		if err = c.ep.Connect(nil, nil); err == nil {
			err = c.waitConnected(ctx)
		}
		if err != nil {
			c.close()
			return nil, ofiError(err)
		}
		c.remote = to.String()
		c.watchEQ()
		return c, nil
	}
	if to.Provider == "shm" {
		name, err := shmEndpointName(to.Host)
		if err != nil {
			return nil, err
		}
		to.Host = name
	}
	infos, err := b.getinfo(to, false)
	if err != nil {
		return nil, ofiError(err)
	}
	info, err := b.endpointInfo()
	if err != nil {
		return nil, ofiError(err)
	}
	c, err := b.newConn(info)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (connImpl, error) {
		c.close()
		return nil, err
	}
	if c.peer, err = c.av.Insert(infos[0].DestAddr()); err != nil {
		return fail(ofiError(err))
	}
	name, err := c.name()
	if err != nil {
		return fail(ofiError(err))
	}
	if err := c.send(ctx, handshake{kind: helloKind, name: name}.marshal()); err != nil {
		return fail(err)
	}
	buf := make([]byte, 8+maxNameLen)
	n, err := c.recv(ctx, buf)
	if err != nil {
		return fail(err)
	}
	h, err := parseHandshake(buf[:n])
	if err == nil && (h.kind != welcomeKind || h.status != 0) {
		err = fmt.Errorf("%w: refused by %s", ErrConnRefused, to)
	}
	if err != nil {
		return fail(err)
	}
	if c.peer, err = c.av.Insert(h.name); err != nil {
		return fail(ofiError(err))
	}
	c.remote = to.String()
	return c, nil
}

// sockaddrString renders a sockaddr_in(6) as host:port, or hex for other formats.
func sockaddrString(b []byte) string {
	switch {
	case len(b) >= 8 && b[0] == 2 && b[1] == 0: // AF_INET, little-endian family
		return net.JoinHostPort(net.IP(b[4:8]).String(), fmt.Sprint(int(b[2])<<8|int(b[3])))
	case len(b) >= 24 && b[0] == 10 && b[1] == 0: // AF_INET6
		return net.JoinHostPort(net.IP(b[8:24]).String(), fmt.Sprint(int(b[2])<<8|int(b[3])))
	}
	return fmt.Sprintf("%x", b)
}

// shmEndpointName finds the full name of the shm endpoint a listener opened as name: the shm
// provider names endpoints "name:uid:index" in /dev/shm, and the index is not known to peers.
func shmEndpointName(name string) (string, error) {
	if strings.Count(name, ":") == 2 {
		return name, nil
	}
	matches, _ := filepath.Glob(filepath.Join("/dev/shm", name+":*:*"))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && (best == "" || st.ModTime().After(bestTime)) {
			best, bestTime = filepath.Base(m), st.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: no shm endpoint named %q on this host", ErrConnRefused, name)
	}
	return best, nil
}
