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
	b    *ofiBackend
	mu   sync.Mutex // MSG: one Accept at a time
	pep  *ofi.PassiveEndpoint
	eq   *ofi.EQ
	name string
	once sync.Once

	// RDM: hellos are taken as they come (helloLoop) and each is welcomed on a goroutine of
	// its own, so that a dialer that gave up (its welcome waits out welcomeTimeout) holds up
	// no other; welcomed connections wait in accepted, like a TCP backlog.
	hello    *ofiConn
	accepted chan accepted
	ctx      context.Context // ends at close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	failed   chan struct{} // closed when helloLoop stopped on an error (err)
	err      error
}

// accepted is a welcomed connection, or the error of a hello that could not be answered.
type accepted struct {
	c   *ofiConn
	err error
}

const (
	acceptBacklog  = 16              // welcomed connections waiting for Accept
	maxWelcoming   = 16              // hellos being answered at once
	welcomeTimeout = 3 * time.Second // a welcome not taken by then: the dialer went away
)

func (b *ofiBackend) listen(ctx context.Context) (listenerImpl, error) {
	l := &ofiListener{b: b}
	var err error
	if b.epType == ofi.EPRDM {
		if l.hello, err = b.newConn(b.info); err != nil {
			return nil, err
		}
		l.accepted = make(chan accepted, acceptBacklog)
		l.failed = make(chan struct{})
		l.ctx, l.cancel = context.WithCancel(context.Background())
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
	if l.hello != nil {
		l.wg.Add(1)
		go l.helloLoop()
	}
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
	if l.hello != nil {
		return l.acceptRDM(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acceptMSG(ctx)
}

func (l *ofiListener) acceptRDM(ctx context.Context) (connImpl, error) {
	select {
	case a := <-l.accepted:
		if a.err != nil {
			return nil, a.err
		}
		return a.c, nil
	case <-ctx.Done():
		return nil, ofiError(ctx.Err())
	case <-l.ctx.Done():
		return nil, ofiError(ofi.ErrClosed)
	case <-l.failed:
		return nil, l.err
	}
}

// helloLoop takes hellos off the listener's endpoint until it closes, and answers each on a
// goroutine of its own (at most maxWelcoming at once).
func (l *ofiListener) helloLoop() {
	defer l.wg.Done()
	buf := make([]byte, handshakeMax)
	slots := make(chan struct{}, maxWelcoming)
	for {
		n, err := l.hello.recv(l.ctx, buf)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				continue // not a hello
			}
			if l.ctx.Err() == nil {
				l.err = err
				close(l.failed)
			}
			return
		}
		h, err := parseHandshake(buf[:n])
		if err != nil || h.kind != helloKind {
			continue // garbage from someone else: ignore it
		}
		select {
		case slots <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-slots }()
			c, err := l.welcome(h)
			if c == nil && err == nil {
				return // the dialer went away
			}
			select {
			case l.accepted <- accepted{c, err}:
			case <-l.ctx.Done():
				if c != nil {
					c.close()
				}
			}
		}()
	}
}

// welcome gives the dialer of hello h a connection endpoint and tells it its name. It returns
// nil and no error when the dialer did not take the welcome.
func (l *ofiListener) welcome(h handshake) (*ofiConn, error) {
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
		return nil, nil // an address the provider cannot take: not a dialer of ours
	}
	name, err := c.name()
	if err == nil {
		wctx, cancel := context.WithTimeout(l.ctx, welcomeTimeout)
		err = c.send(wctx, handshake{kind: welcomeKind, name: name, alive: c.aliveWord()}.marshal())
		cancel()
	}
	if err != nil {
		c.close()
		return nil, nil
	}
	c.remote = c.av.String(h.name)
	c.peerWord = h.alive
	c.watchBye(h.name)
	return c, nil
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
			l.cancel() // helloLoop and the welcomes in flight stop
			l.wg.Wait()
			err = l.hello.close()
			for drained := false; !drained; {
				select {
				case a := <-l.accepted:
					if a.c != nil {
						a.c.close() // welcomed, never accepted
					}
				default:
					drained = true
				}
			}
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
	if err := probeListener(ctx, to); err != nil {
		return nil, err
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
	if err := c.send(ctx, handshake{kind: helloKind, name: name, alive: c.aliveWord()}.marshal()); err != nil {
		return fail(err)
	}
	buf := make([]byte, handshakeMax)
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
	c.peerWord = h.alive
	c.watchBye(h.name)
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
