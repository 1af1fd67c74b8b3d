package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// Fabric is an opened transport: a libfabric domain or a verbs protection domain, with the
// local address its Listener listens on. Memory allocated from a fabric can be used by every
// connection of that fabric.
type Fabric struct {
	addr Addr
	opt  options
	b    backend

	mu        sync.Mutex
	closed    bool
	mems      map[*Memory]struct{}
	conns     map[*Conn]struct{}
	listeners map[*Listener]struct{}
}

// Open opens the transport named by addr's scheme (see the package doc). The host and port are
// the local address: where Listen listens, and the interface Dial uses. Port 0 or none picks
// one.
func Open(addr string, opts ...Option) (*Fabric, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, fn := range opts {
		fn(&o)
	}
	if o.maxMessage <= 0 || o.recvDepth <= 0 || o.queueDepth <= 0 {
		return nil, fmt.Errorf("%w: message size, receive depth and queue depth must be positive", ErrInvalid)
	}
	f := &Fabric{addr: a, opt: o, mems: map[*Memory]struct{}{}, conns: map[*Conn]struct{}{},
		listeners: map[*Listener]struct{}{}}
	switch a.Backend {
	case "ofi":
		f.b, err = openOFI(a, o)
	case "verbs":
		f.b, err = openVerbs(a, o)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", a, err)
	}
	return f, nil
}

// Addr is the fabric's local address.
func (f *Fabric) Addr() Addr { return f.addr }

// Caps is what the transport can do.
func (f *Fabric) Caps() Caps { return f.b.caps() }

// Alloc allocates size bytes of zeroed off-heap memory and registers it for local use and the
// remote access acc.
func (f *Fabric) Alloc(size int, acc Access) (*Memory, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: memory size %d", ErrInvalid, size)
	}
	return f.newMemory(acc, "alloc", size, func() (memoryImpl, error) { return f.b.alloc(size, acc) })
}

// newMemory makes memory with mk and keeps it for Close.
func (f *Fabric) newMemory(acc Access, what string, size int, mk func() (memoryImpl, error)) (*Memory, error) {
	if acc&^RemoteAll != 0 {
		return nil, fmt.Errorf("%w: access bits %#x", ErrInvalid, acc)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	impl, err := mk()
	if err != nil {
		return nil, fmt.Errorf("%s %d bytes: %w", what, size, err)
	}
	m := &Memory{f: f, impl: impl, acc: acc}
	f.mems[m] = struct{}{}
	return m, nil
}

// Register registers memory the caller owns and maps, such as a file mapped with mmap, so
// that operations can move data straight to or from it. b must stay mapped until the Memory
// is closed (Close deregisters it and leaves the mapping alone), and it must not be memory Go's
// garbage collector manages. Only providers that do not pin registered pages (libfabric's tcp,
// sockets and shm) take it; the others (verbs) say ErrNotSupported, since pinning a large
// mapping would hold all of it in memory: use Alloc there.
func (f *Fabric) Register(b []byte, acc Access) (*Memory, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty memory", ErrInvalid)
	}
	return f.newMemory(acc, "register", len(b), func() (memoryImpl, error) { return f.b.register(b, acc) })
}

// Listen listens on the fabric's address.
func (f *Fabric) Listen(ctx context.Context) (*Listener, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	impl, err := f.b.listen(ctx)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	l := &Listener{f: f, impl: impl}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		impl.close()
		return nil, ErrClosed
	}
	f.listeners[l] = struct{}{}
	return l, nil
}

// Dial connects to target: a full address of the same transport, or "host:port" (a name for
// shm). It gives up when ctx ends or after the dial timeout (WithDialTimeout, default 15s),
// whichever comes first: a peer that takes the connection but never answers the handshake ends
// in ErrTimeout, never a hang.
func (f *Fabric) Dial(ctx context.Context, target string) (*Conn, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	to, err := f.addr.resolve(target)
	if err != nil {
		return nil, err
	}
	if f.opt.dialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.opt.dialTimeout)
		defer cancel()
	}
	impl, err := f.b.dial(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", to, err)
	}
	return f.adopt(impl)
}

func (f *Fabric) adopt(impl connImpl) (*Conn, error) {
	c := &Conn{f: f, impl: impl, caps: f.b.caps()}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		impl.close()
		return nil, ErrClosed
	}
	f.conns[c] = struct{}{}
	return c, nil
}

func (f *Fabric) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	return nil
}

func (f *Fabric) forget(x any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch v := x.(type) {
	case *Memory:
		delete(f.mems, v)
	case *Conn:
		delete(f.conns, v)
	case *Listener:
		delete(f.listeners, v)
	}
}

// Close closes listeners and connections, then memory, then the transport. Idempotent.
func (f *Fabric) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	ls, cs, ms := keys(f.listeners), keys(f.conns), keys(f.mems)
	f.mu.Unlock()
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close())
	}
	// At once: a connection's close may wait for its peer's answer (Conn.Close).
	cerrs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { cerrs[i] = c.Close() })
	}
	wg.Wait()
	errs = append(errs, cerrs...)
	for _, m := range ms {
		errs = append(errs, m.Close())
	}
	errs = append(errs, f.b.close())
	return errors.Join(errs...)
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Listener accepts connections.
type Listener struct {
	f    *Fabric
	impl listenerImpl
	once sync.Once
	err  error
}

// Accept waits for the next connection until ctx ends.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	impl, err := l.impl.accept(ctx)
	if err != nil {
		return nil, err
	}
	return l.f.adopt(impl)
}

// Addr is the address peers dial, in full URL form.
func (l *Listener) Addr() string { return l.impl.addr() }

// Close stops listening; connections already accepted stay. Idempotent.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.f.forget(l)
		l.err = l.impl.close()
	})
	return l.err
}

// Listen opens a fabric for addr and listens on it; closing the listener's fabric (returned
// too) closes everything.
func Listen(ctx context.Context, addr string, opts ...Option) (*Fabric, *Listener, error) {
	f, err := Open(addr, opts...)
	if err != nil {
		return nil, nil, err
	}
	l, err := f.Listen(ctx)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, l, nil
}

// Dial opens a fabric of addr's transport on an ephemeral local address and connects to addr.
// Closing the returned connection also closes its fabric.
func Dial(ctx context.Context, addr string, opts ...Option) (*Conn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	local := a
	local.Options = a.Options
	if a.Provider == "shm" {
		local.Host = ""
	} else {
		local.Host, local.Port = localHostFor(a.Host), "0"
	}
	f, err := openLocal(local, opts...)
	if err != nil {
		return nil, err
	}
	c, err := f.Dial(ctx, addr)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.ownsFabric = true
	return c, nil
}

// openLocal is Open for an Addr that may have no host (an anonymous shm endpoint).
func openLocal(a Addr, opts ...Option) (*Fabric, error) {
	if a.Host == "" {
		a.Host = anonymousShmName()
	}
	return Open(a.String(), opts...)
}

// localHostFor picks the local address for reaching host: loopback stays loopback; otherwise
// the address the routing table would send from (a UDP "connect" sends nothing), so that
// endpoint names carry a reachable address and the right RDMA device is chosen. If there is
// no route, all interfaces.
func localHostFor(host string) string {
	if host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1" {
		return host
	}
	c, err := net.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return "0.0.0.0"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
