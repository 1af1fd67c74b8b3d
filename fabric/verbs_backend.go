package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/rdmakit/rdmakit/verbs"
)

// verbsBackend is the rdma-core backend: one device context and protection domain per Fabric,
// one RC queue pair (set up through the rdma_cm) with its own completion queue per connection.
type verbsBackend struct {
	addr Addr
	opt  options
	ip   net.IP // nil: the unspecified address
	dev  string
	ctx  *verbs.Context
	pd   *verbs.PD
	c    Caps
}

// sendSlots is how many Sends a verbs connection has in flight at most.
const verbsSendSlots = 4

func openVerbs(a Addr, o options) (backend, error) {
	b := &verbsBackend{addr: a, opt: o}
	ip, err := lookupIP(a.Host)
	if err != nil {
		return nil, err
	}
	if !ip.IsUnspecified() {
		b.ip = ip
	}
	if b.dev, err = deviceFor(b.ip); err != nil {
		return nil, verbsError(err)
	}
	if b.ctx, err = verbs.Open(b.dev); err != nil {
		return nil, verbsError(err)
	}
	fail := func(err error) (backend, error) {
		b.ctx.Close()
		return nil, verbsError(err)
	}
	port, err := b.ctx.QueryPort(1)
	if err != nil {
		return fail(err)
	}
	if o.maxMessage > int(port.MaxMsgSize) {
		return fail(fmt.Errorf("%w: message size %d, %s carries at most %d", ErrTooLarge, o.maxMessage, b.dev,
			port.MaxMsgSize))
	}
	attr := b.ctx.Attr()
	if need := o.queueDepth + verbsSendSlots; need > attr.MaxQPWR || o.recvDepth > attr.MaxQPWR ||
		need+o.recvDepth > attr.MaxCQE {
		return fail(fmt.Errorf("%w: queue depth %d and receive depth %d exceed %s's queues (%d work requests, %d completions)",
			ErrInvalid, o.queueDepth, o.recvDepth, b.dev, attr.MaxQPWR, attr.MaxCQE))
	}
	if b.pd, err = b.ctx.AllocPD(); err != nil {
		return fail(err)
	}
	b.c = Caps{Backend: "verbs", Provider: b.dev, Endpoint: "rc", MaxMessage: o.maxMessage,
		MaxTransfer: uint64(port.MaxMsgSize)}
	if attr.AtomicCap != 0 {
		b.c.Atomics = b.c.Atomics.With(FetchAdd).With(CompareSwap)
	}
	return b, nil
}

// lookupIP resolves a fabric host to one IP address.
func lookupIP(host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: resolve %q: %v", ErrBadAddress, host, err)
	}
	return ips[0], nil
}

// deviceFor finds the RDMA device whose network device owns ip; for the unspecified address
// (nil), the only RDMA device of the host.
func deviceFor(ip net.IP) (string, error) {
	if ip == nil {
		devs, err := verbs.Devices()
		if err != nil {
			return "", err
		}
		switch len(devs) {
		case 0:
			return "", fmt.Errorf("%w: this host has no RDMA device", verbs.ErrNoDevice)
		case 1:
			return devs[0].Name, nil
		}
		return "", fmt.Errorf("%w: %d RDMA devices: open the fabric on the local address of the one to use",
			ErrBadAddress, len(devs))
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network interfaces: %w", err)
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				dev, err := verbs.DeviceForNetdev(ifc.Name)
				if err != nil {
					return "", fmt.Errorf("%v is on %s: %w", ip, ifc.Name, err)
				}
				return dev, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no network interface of this host has address %v", ErrBadAddress, ip)
}

func (b *verbsBackend) caps() Caps { return b.c }

func (b *verbsBackend) close() error {
	return verbsError(errors.Join(b.pd.Close(), b.ctx.Close()))
}

// hostPort is the fabric's address as the rdma_cm takes it.
func (b *verbsBackend) hostPort(port string) string {
	host := "0.0.0.0"
	if b.ip != nil {
		host = b.ip.String()
	}
	if port == "" {
		port = "0"
	}
	return net.JoinHostPort(host, port)
}

type verbsMemory struct {
	mem *verbs.Memory
	mr  *verbs.MR
}

// register refuses: ibv_reg_mr pins every page of what it registers (and the kernel refuses
// long-term pins of most file mappings), so only memory allocated for the purpose is
// registered here.
func (b *verbsBackend) register(mem []byte, acc Access) (memoryImpl, error) {
	return nil, fmt.Errorf("%w: verbs pins registered memory: use Alloc", ErrNotSupported)
}

func (b *verbsBackend) alloc(size int, acc Access) (memoryImpl, error) {
	mem, err := verbs.Alloc(size)
	if err != nil {
		return nil, verbsError(err)
	}
	access := verbs.AccessLocalWrite
	if acc&RemoteRead != 0 {
		access |= verbs.AccessRemoteRead
	}
	if acc&RemoteWrite != 0 {
		access |= verbs.AccessRemoteWrite
	}
	if acc&RemoteAtomic != 0 {
		access |= verbs.AccessRemoteAtomic
	}
	mr, err := b.pd.Register(mem, access)
	if err != nil {
		mem.Close()
		return nil, verbsError(err)
	}
	return &verbsMemory{mem: mem, mr: mr}, nil
}

func (m *verbsMemory) bytes() []byte { return m.mr.Bytes() }

func (m *verbsMemory) remote() Remote {
	return Remote{Addr: m.mr.Addr(), Key: uint64(m.mr.RKey()), Len: m.mr.Len()}
}

func (m *verbsMemory) close() error {
	return verbsError(errors.Join(m.mr.Close(), m.mem.Close()))
}

// verbsClasses maps verbs sentinels (and context errors) to fabric sentinels.
var verbsClasses = []struct{ from, to error }{
	{verbs.ErrClosed, ErrClosed},
	{verbs.ErrTimeout, ErrTimeout},
	{context.DeadlineExceeded, ErrTimeout},
	{verbs.ErrCanceled, ErrCanceled},
	{context.Canceled, ErrCanceled},
	{verbs.ErrRemoteAccess, ErrAccess},
	{verbs.ErrNotSupported, ErrNotSupported},
	{verbs.ErrNoDevice, ErrNotSupported},
	{verbs.ErrRejected, ErrConnRefused},
	{verbs.ErrUnreachable, ErrConnRefused},
	{verbs.ErrFlushed, ErrConnReset},
	{verbs.ErrDisconnected, ErrConnReset},
	{verbs.ErrRetryExceeded, ErrConnReset},
	{verbs.ErrRNRRetryExceeded, ErrConnReset},
	{verbs.ErrQPFatal, ErrConnReset},
	{verbs.ErrCQOverrun, ErrConnReset},
	{verbs.ErrLocalLength, ErrTooLarge},
	{verbs.ErrRemoteInvalidRequest, ErrInvalid},
	{verbs.ErrInvalid, ErrInvalid},
}

// verbsError returns err annotated with the fabric sentinel of its class.
func verbsError(err error) error { return wrapClass(err, verbsClasses) }
