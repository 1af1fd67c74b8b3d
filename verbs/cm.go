package verbs

/*
#include "shim.h"

static int rk_make_addr(struct sockaddr_storage *ss, const uint8_t *ip, int iplen, int port) {
	memset(ss, 0, sizeof(*ss));
	if (iplen == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, ip, 4);
		return 0;
	}
	if (iplen == 16) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		memcpy(&s->sin6_addr, ip, 16);
		return 0;
	}
	return EINVAL;
}

static int rk_resolve_addr(struct rdma_cm_id *id, const uint8_t *ip, int iplen, int port, int ms) {
	struct sockaddr_storage ss;
	if (rk_make_addr(&ss, ip, iplen, port))
		return EINVAL;
	return rdma_resolve_addr(id, NULL, (struct sockaddr *)&ss, ms) ? errno : 0;
}

static int rk_bind_addr(struct rdma_cm_id *id, const uint8_t *ip, int iplen, int port) {
	struct sockaddr_storage ss;
	if (rk_make_addr(&ss, ip, iplen, port))
		return EINVAL;
	return rdma_bind_addr(id, (struct sockaddr *)&ss) ? errno : 0;
}

// rk_addr copies the local (peer == 0) or remote address of id: returns the IP length.
static int rk_addr(struct rdma_cm_id *id, int peer, uint8_t *ip, int *port) {
	struct sockaddr *sa = peer ? rdma_get_peer_addr(id) : rdma_get_local_addr(id);
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)sa;
		memcpy(ip, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)sa;
		memcpy(ip, &s->sin6_addr, 16);
		*port = ntohs(s->sin6_port);
		return 16;
	}
	return 0;
}

static int rk_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id, int ud) {
	return rdma_create_id(ch, id, NULL, ud ? RDMA_PS_UDP : RDMA_PS_TCP) ? errno : 0;
}

static int rk_conn(struct rdma_cm_id *id, int accept, const uint8_t *priv, int privlen,
		   int resp, int init, int retry, int rnr, uint32_t qpn, int srq) {
	struct rdma_conn_param p;
	memset(&p, 0, sizeof(p));
	p.qp_num = qpn;
	p.srq = (uint8_t)srq;
	p.private_data = privlen ? priv : NULL;
	p.private_data_len = (uint8_t)privlen;
	p.responder_resources = (uint8_t)resp;
	p.initiator_depth = (uint8_t)init;
	p.retry_count = (uint8_t)retry;
	p.rnr_retry_count = (uint8_t)rnr;
	int rc = accept ? rdma_accept(id, &p) : rdma_connect(id, &p);
	return rc ? errno : 0;
}

static int rk_reject(struct rdma_cm_id *id, const uint8_t *priv, int privlen) {
	return rdma_reject(id, privlen ? priv : NULL, (uint8_t)privlen) ? errno : 0;
}

// rk_cm_modify moves a QP the application owns to state with the attributes the rdma_cm
// computed for id (rdma_init_qp_attr), overriding the read/atomic depth when depth >= 0 and
// granting remote read/write/atomic access.
static int rk_cm_modify(struct rdma_cm_id *id, struct ibv_qp *qp, int state, int depth) {
	struct ibv_qp_attr a;
	int mask = 0;
	memset(&a, 0, sizeof(a));
	a.qp_state = state;
	if (rdma_init_qp_attr(id, &a, &mask))
		return errno;
	if (mask & IBV_QP_ACCESS_FLAGS)
		a.qp_access_flags |= IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
				     IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
	if (state == IBV_QPS_RTR && depth >= 0)
		a.max_dest_rd_atomic = depth;
	if (state == IBV_QPS_RTS && depth >= 0)
		a.max_rd_atomic = depth;
	return ibv_modify_qp(qp, &a, mask);
}

static const char *rk_id_devname(struct rdma_cm_id *id) {
	return id->verbs ? ibv_get_device_name(id->verbs->device) : "";
}

static struct rdma_cm_id *rk_event_new_id(rk_cm_event *e) { return (struct rdma_cm_id *)(uintptr_t)e->new_id; }
*/
import "C"

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// CMEventType is enum rdma_cm_event_type.
type CMEventType int

// rdma_cm events.
const (
	CMAddrResolved    CMEventType = C.RDMA_CM_EVENT_ADDR_RESOLVED
	CMAddrError       CMEventType = C.RDMA_CM_EVENT_ADDR_ERROR
	CMRouteResolved   CMEventType = C.RDMA_CM_EVENT_ROUTE_RESOLVED
	CMRouteError      CMEventType = C.RDMA_CM_EVENT_ROUTE_ERROR
	CMConnectRequest  CMEventType = C.RDMA_CM_EVENT_CONNECT_REQUEST
	CMConnectResponse CMEventType = C.RDMA_CM_EVENT_CONNECT_RESPONSE
	CMConnectError    CMEventType = C.RDMA_CM_EVENT_CONNECT_ERROR
	CMUnreachable     CMEventType = C.RDMA_CM_EVENT_UNREACHABLE
	CMRejected        CMEventType = C.RDMA_CM_EVENT_REJECTED
	CMEstablished     CMEventType = C.RDMA_CM_EVENT_ESTABLISHED
	CMDisconnected    CMEventType = C.RDMA_CM_EVENT_DISCONNECTED
	CMDeviceRemoval   CMEventType = C.RDMA_CM_EVENT_DEVICE_REMOVAL
	CMTimewaitExit    CMEventType = C.RDMA_CM_EVENT_TIMEWAIT_EXIT
	CMAddrChange      CMEventType = C.RDMA_CM_EVENT_ADDR_CHANGE
)

func (t CMEventType) String() string { return C.GoString(C.rdma_event_str(uint32(t))) }

// MaxConnectPrivateData and MaxAcceptPrivateData are the private-data limits of RC
// connection setup through the IB CM (also used by RoCE).
const (
	MaxConnectPrivateData = 56
	MaxAcceptPrivateData  = 196
	MaxRejectPrivateData  = 148
)

type cmEvent struct {
	typ       CMEventType
	status    int
	priv      []byte
	respRes   int
	initDepth int
	child     *cmID
}

// cmChannel is an rdma_cm event channel read by one goroutine parked in the netpoller,
// which acknowledges every event at once and routes it to the cmID it names.
type cmChannel struct {
	ch   *C.struct_rdma_event_channel
	pfd  *pollFD
	refs atomic.Int32
	done chan struct{}
}

func newCMChannel() (*cmChannel, error) {
	if err := ensureForkSafe(); err != nil {
		return nil, err
	}
	ch, err := C.rdma_create_event_channel()
	if ch == nil {
		return nil, callError("rdma_create_event_channel", errnoOf(-1, err))
	}
	pfd, perr := newPollFD(ch.fd, "rdma-cm")
	if perr != nil {
		C.rdma_destroy_event_channel(ch)
		return nil, perr
	}
	c := &cmChannel{ch: ch, pfd: pfd, done: make(chan struct{})}
	c.refs.Store(1)
	go c.run()
	return c, nil
}

func (c *cmChannel) run() {
	defer close(c.done)
	const max = 8
	buf := (*C.rk_cm_event)(C.calloc(max, C.sizeof_rk_cm_event))
	defer C.free(unsafe.Pointer(buf))
	raw := unsafe.Slice(buf, max)
	for {
		var evs []C.rk_cm_event
		err := c.pfd.wait(context.Background(), func() (bool, error) {
			n := C.rk_get_cm_events(c.ch, buf, max)
			if n < 0 {
				return false, callError("rdma_get_cm_event", syscall.Errno(-n))
			}
			evs = append(evs, raw[:n]...)
			return n > 0, nil
		})
		for i := range evs {
			c.dispatch(&evs[i])
		}
		if err != nil {
			return
		}
	}
}

func (c *cmChannel) dispatch(e *C.rk_cm_event) {
	ev := cmEvent{typ: CMEventType(e._type), status: int(e.status), respRes: int(e.responder_resources),
		initDepth: int(e.initiator_depth)}
	if e.private_len > 0 {
		ev.priv = C.GoBytes(unsafe.Pointer(&e.private_data[0]), C.int(e.private_len))
	}
	if ev.typ == CMConnectRequest {
		id := C.rk_event_new_id(e)
		l, ok := lookupHandle(uint64(e.listen)).(*cmID)
		if !ok {
			C.rk_reject(id, nil, 0)
			C.rdma_destroy_id(id)
			return
		}
		ev.child = newCMID(id, c)
		l.push(ev)
		return
	}
	if x, ok := lookupHandle(uint64(e.handle)).(*cmID); ok {
		x.push(ev)
	}
}

func (c *cmChannel) unref() {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.pfd.close()
	<-c.done
	C.rdma_destroy_event_channel(c.ch)
}

// cmID is an rdma_cm_id with its queue of events.
type cmID struct {
	id     *C.struct_rdma_cm_id
	h      uint64
	ch     *cmChannel
	mu     sync.Mutex
	q      []cmEvent
	notify chan struct{}
	gone   chan struct{} // closed by destroy
	onDisc atomic.Pointer[func()]
}

func newCMID(id *C.struct_rdma_cm_id, ch *cmChannel) *cmID {
	x := &cmID{id: id, ch: ch, notify: make(chan struct{}, 1), gone: make(chan struct{})}
	ch.refs.Add(1)
	x.h = newHandle(x)
	C.rk_set_id_context(id, C.uint64_t(x.h))
	return x
}

func (x *cmID) push(ev cmEvent) {
	if ev.typ == CMDisconnected || ev.typ == CMDeviceRemoval {
		if f := x.onDisc.Load(); f != nil {
			(*f)()
		}
	}
	x.mu.Lock()
	x.q = append(x.q, ev)
	x.mu.Unlock()
	select {
	case x.notify <- struct{}{}:
	default:
	}
}

// next returns the next event, waiting for it with ctx.
func (x *cmID) next(ctx context.Context) (cmEvent, error) {
	for {
		x.mu.Lock()
		if len(x.q) > 0 {
			ev := x.q[0]
			x.q = x.q[1:]
			x.mu.Unlock()
			return ev, nil
		}
		x.mu.Unlock()
		select {
		case <-x.notify:
		case <-x.gone:
			return cmEvent{}, ErrClosed
		case <-ctx.Done():
			return cmEvent{}, ctxError(ctx)
		}
	}
}

// expect waits for event want; any other event is an error.
func (x *cmID) expect(ctx context.Context, want CMEventType, op string) (cmEvent, error) {
	ev, err := x.next(ctx)
	if err != nil {
		return ev, fmt.Errorf("verbs: %s: %w", op, err)
	}
	if ev.typ == want {
		return ev, nil
	}
	return ev, eventError(op, ev)
}

func eventError(op string, ev cmEvent) error {
	status := syscall.Errno(0)
	if ev.status < 0 {
		status = syscall.Errno(-ev.status)
	}
	switch ev.typ {
	case CMRejected:
		return &RejectError{Status: ev.status, PrivateData: ev.priv}
	case CMAddrError, CMRouteError, CMUnreachable:
		return fmt.Errorf("verbs: %s: %s (status %d, %v): %w", op, ev.typ, ev.status, status, ErrUnreachable)
	case CMDisconnected:
		return fmt.Errorf("verbs: %s: %w", op, ErrDisconnected)
	}
	if status == syscall.ETIMEDOUT {
		return fmt.Errorf("verbs: %s: %s: %w", op, ev.typ, ErrTimeout)
	}
	return fmt.Errorf("verbs: %s: unexpected %s (status %d)", op, ev.typ, ev.status)
}

// RejectError is a connection refused by the peer; it matches ErrRejected.
type RejectError struct {
	Status      int
	PrivateData []byte // what the peer passed to Reject
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("verbs: connection rejected (status %d, %d bytes of private data)", e.Status, len(e.PrivateData))
}

// Unwrap returns ErrRejected.
func (e *RejectError) Unwrap() error { return ErrRejected }

func (x *cmID) addr(peer bool) *net.TCPAddr {
	var ip [16]C.uint8_t
	var port C.int
	p := C.int(0)
	if peer {
		p = 1
	}
	n := C.rk_addr(x.id, p, &ip[0], &port)
	b := C.GoBytes(unsafe.Pointer(&ip[0]), n)
	return &net.TCPAddr{IP: net.IP(b), Port: int(port)}
}

func (x *cmID) destroy() {
	close(x.gone)
	C.rdma_destroy_id(x.id)
	dropHandle(x.h)
	x.ch.unref()
}

func splitAddr(addr string) (net.IP, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: address %q: %v", ErrInvalid, addr, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("%w: port in %q", ErrInvalid, addr)
	}
	var ip net.IP
	if host == "" {
		ip = net.IPv4zero.To4()
	} else if ip = net.ParseIP(host); ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, 0, fmt.Errorf("%w: resolve %q: %v", ErrUnreachable, host, err)
		}
		ip = ips[0]
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return ip, port, nil
}

func cbytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// ConnConfig describes the QP of an rdma_cm connection and its setup parameters.
type ConnConfig struct {
	// PD owns the QP; its Context must be the device the address resolves to.
	PD *PD
	// SendCQ and RecvCQ receive the completions. Nil: the Conn creates one CQ (with a private
	// completion channel) of Cap.MaxSendWR+Cap.MaxRecvWR entries and closes it with itself.
	SendCQ, RecvCQ *CQ
	SRQ            *SRQ
	Cap            QPCap
	// PrivateData is sent with the connect request (at most MaxConnectPrivateData bytes) or
	// the accept (MaxAcceptPrivateData).
	PrivateData []byte
	// InitiatorDepth and ResponderResources bound the outstanding RDMA reads/atomics; 0 means
	// the device maximum (max_qp_init_rd_atom / max_qp_rd_atom). The accepting side clamps
	// them to what the peer asked for.
	InitiatorDepth, ResponderResources int
	// RetryCount and RNRRetryCount (default 7 = infinite RNR retries) go to the peer.
	RetryCount, RNRRetryCount int
}

// Conn is a connected RC queue pair set up through the rdma_cm.
type Conn struct {
	g          guard
	id         *cmID
	qp         *QP
	pd         *PD
	ownCQ      *CQ
	peerPriv   []byte
	initDepth  int
	respRes    int
	down       chan struct{}
	downOnce   sync.Once
	disconnect sync.Once
}

func resolveTimeout(ctx context.Context) C.int {
	if d, ok := ctx.Deadline(); ok {
		ms := time.Until(d).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		if ms < 5000 {
			return C.int(ms)
		}
	}
	return 5000
}

// Dial connects an RC QP to a listener at addr ("ip:port") through the rdma_cm: it resolves
// the address and route, creates the QP on cfg.PD and connects with cfg.PrivateData. ctx
// bounds the whole setup. The peer's accept private data is Conn.PrivateData.
func Dial(ctx context.Context, addr string, cfg ConnConfig) (*Conn, error) {
	if cfg.PD == nil {
		return nil, fmt.Errorf("%w: ConnConfig.PD is nil", ErrInvalid)
	}
	if len(cfg.PrivateData) > MaxConnectPrivateData {
		return nil, fmt.Errorf("%w: %d bytes of connect private data (max %d)", ErrInvalid, len(cfg.PrivateData), MaxConnectPrivateData)
	}
	ip, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	ch, err := newCMChannel()
	if err != nil {
		return nil, err
	}
	var cid *C.struct_rdma_cm_id
	if rc := C.rk_create_id(ch.ch, &cid, 0); rc != 0 {
		ch.unref()
		return nil, callError("rdma_create_id", syscall.Errno(rc))
	}
	x := newCMID(cid, ch)
	ch.unref() // the id holds the channel now
	fail := func(err error) (*Conn, error) {
		x.destroy()
		return nil, err
	}
	if rc := C.rk_resolve_addr(cid, cbytes(ip), C.int(len(ip)), C.int(port), resolveTimeout(ctx)); rc != 0 {
		return fail(callError("rdma_resolve_addr "+addr, syscall.Errno(rc)))
	}
	if _, err := x.expect(ctx, CMAddrResolved, "resolve address "+addr); err != nil {
		return fail(err)
	}
	if rc := C.rdma_resolve_route(cid, resolveTimeout(ctx)); rc != 0 {
		return fail(callError("rdma_resolve_route", errnoOf(-1, nil)))
	}
	if _, err := x.expect(ctx, CMRouteResolved, "resolve route to "+addr); err != nil {
		return fail(err)
	}
	attr := cfg.PD.c.attr
	init := clampDepth(cfg.InitiatorDepth, attr.MaxQPInitRdAtom)
	resp := clampDepth(cfg.ResponderResources, attr.MaxQPRdAtom)
	c, err := newConn(x, &cfg)
	if err != nil {
		return fail(err)
	}
	if err := c.modify(C.IBV_QPS_INIT, -1); err != nil {
		c.Close()
		return nil, err
	}
	retry, rnr := defaultRetry(cfg.RetryCount), defaultRetry(cfg.RNRRetryCount)
	if rc := C.rk_conn(cid, 0, cbytes(cfg.PrivateData), C.int(len(cfg.PrivateData)), C.int(resp), C.int(init),
		C.int(retry), C.int(rnr), C.uint32_t(c.qp.num), boolInt(cfg.SRQ != nil)); rc != 0 {
		c.Close()
		return nil, callError("rdma_connect", syscall.Errno(rc))
	}
	ev, err := x.next(ctx)
	if err == nil && ev.typ != CMConnectResponse && ev.typ != CMEstablished {
		err = eventError("connect to "+addr, ev)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	// The reply carries the peer's accepted depths: its responder resources bound what this
	// side may issue, its initiator depth what this side must serve.
	c.peerPriv = ev.priv
	c.initDepth, c.respRes = min(init, max(ev.respRes, 1)), min(resp, max(ev.initDepth, 1))
	if err := c.modify(C.IBV_QPS_RTR, c.respRes); err == nil {
		err = c.modify(C.IBV_QPS_RTS, c.initDepth)
	}
	if err != nil {
		C.rk_reject(cid, nil, 0)
		c.Close()
		return nil, err
	}
	if rc, e := C.rdma_establish(cid); rc != 0 {
		c.Close()
		return nil, callError("rdma_establish", errnoOf(rc, e))
	}
	return c, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// modify moves the QP to state with the rdma_cm's attributes.
func (c *Conn) modify(state C.int, depth int) error {
	if rc := C.rk_cm_modify(c.id.id, c.qp.qp, state, C.int(depth)); rc != 0 {
		return callError("rdma_init_qp_attr/ibv_modify_qp to "+QPState(state).String(), syscall.Errno(rc))
	}
	return nil
}

func clampDepth(want, max int) int {
	if want <= 0 || want > max {
		return max
	}
	return want
}

func defaultRetry(n int) int {
	if n <= 0 || n > 7 {
		return 7
	}
	return n
}

// newConn creates the QP on the resolved id.
func newConn(x *cmID, cfg *ConnConfig) (*Conn, error) {
	pd := cfg.PD
	if err := pd.g.enter(); err != nil {
		return nil, err
	}
	defer pd.g.leave()
	if dev := C.GoString(C.rk_id_devname(x.id)); dev != pd.c.name {
		return nil, fmt.Errorf("%w: the address resolves to device %q, the PD belongs to %s", ErrInvalid, dev, pd.c.name)
	}
	c := &Conn{id: x, pd: pd, down: make(chan struct{})}
	qc := QPConfig{Type: QPTypeRC, SendCQ: cfg.SendCQ, RecvCQ: cfg.RecvCQ, SRQ: cfg.SRQ, Cap: cfg.Cap}
	if qc.SendCQ == nil {
		n := qc.Cap.MaxSendWR + qc.Cap.MaxRecvWR
		if n <= 0 {
			n = 256
		}
		cq, err := pd.c.CreateCQ(n, nil)
		if err != nil {
			return nil, err
		}
		c.ownCQ, qc.SendCQ = cq, cq
		if qc.RecvCQ == nil {
			qc.RecvCQ = cq
		}
	}
	a, err := qc.initAttr()
	var qp *C.struct_ibv_qp
	if err == nil {
		var leave func()
		if leave, err = qc.enterDeps(); err == nil {
			var e error
			if qp, e = C.ibv_create_qp(pd.pd, &a); qp == nil {
				err = callError("ibv_create_qp", errnoOf(-1, e))
			}
			leave()
		}
	}
	if err != nil {
		if c.ownCQ != nil {
			c.ownCQ.Close()
		}
		return nil, err
	}
	c.qp = pd.wrapQP(qp, &qc, &a)
	c.qp.cm = c
	f := func() { c.peerGone() }
	x.onDisc.Store(&f)
	pd.c.kids.add(c)
	return c, nil
}

// peerGone runs (from the event goroutine) when the connection ends: the QP goes to ERR so
// that outstanding work requests complete with ErrFlushed instead of waiting forever.
func (c *Conn) peerGone() {
	c.downOnce.Do(func() {
		close(c.down)
		go func() {
			if c.g.enter() != nil {
				return
			}
			defer c.g.leave()
			_ = c.qp.ToError()
		}()
	})
}

// QP returns the connection's queue pair.
func (c *Conn) QP() *QP { return c.qp }

// PD returns the protection domain of the QP.
func (c *Conn) PD() *PD { return c.pd }

// PrivateData returns the private data the peer sent with its accept (client side) or connect
// request (server side).
func (c *Conn) PrivateData() []byte { return c.peerPriv }

// InitiatorDepth is the negotiated number of RDMA reads/atomics this side may have in flight.
func (c *Conn) InitiatorDepth() int { return c.initDepth }

// ResponderResources is the negotiated number of peer reads/atomics this side serves at once.
func (c *Conn) ResponderResources() int { return c.respRes }

// LocalAddr returns the local IP address and port.
func (c *Conn) LocalAddr() net.Addr { return c.id.addr(false) }

// RemoteAddr returns the peer's IP address and port.
func (c *Conn) RemoteAddr() net.Addr { return c.id.addr(true) }

// Done is closed when the peer disconnects (the QP is then in ERR).
func (c *Conn) Done() <-chan struct{} { return c.down }

// Disconnect sends a disconnect request (rdma_disconnect); the QP goes to ERR and outstanding
// work requests flush. Close disconnects too.
func (c *Conn) Disconnect() error {
	if err := c.g.enter(); err != nil {
		return err
	}
	defer c.g.leave()
	var err error
	c.disconnect.Do(func() {
		if rc, e := C.rdma_disconnect(c.id.id); rc != 0 {
			err = callError("rdma_disconnect", errnoOf(rc, e))
		}
		if qerr := c.qp.ToError(); err == nil {
			err = qerr
		}
	})
	return err
}

// Close disconnects, destroys the QP and the rdma_cm id (and the CQ the Conn created). It is
// idempotent.
func (c *Conn) Close() error {
	did := false
	err := c.g.shut(func() error {
		c.disconnect.Do(func() { C.rdma_disconnect(c.id.id) })
		c.qp.destroy()
		c.id.destroy()
		did = true
		return nil
	})
	if did {
		c.pd.c.kids.remove(c)
		c.downOnce.Do(func() { close(c.down) })
		if c.ownCQ != nil {
			return c.ownCQ.Close()
		}
	}
	return err
}

// Listener accepts RC connections through the rdma_cm.
type Listener struct {
	g  guard
	id *cmID
}

// Listen binds an rdma_cm id to addr ("ip:port"; port 0 picks one) and listens.
func Listen(addr string, backlog int) (*Listener, error) {
	ip, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	ch, err := newCMChannel()
	if err != nil {
		return nil, err
	}
	var cid *C.struct_rdma_cm_id
	if rc := C.rk_create_id(ch.ch, &cid, 0); rc != 0 {
		ch.unref()
		return nil, callError("rdma_create_id", syscall.Errno(rc))
	}
	x := newCMID(cid, ch)
	ch.unref()
	if rc := C.rk_bind_addr(cid, cbytes(ip), C.int(len(ip)), C.int(port)); rc != 0 {
		x.destroy()
		return nil, callError("rdma_bind_addr "+addr, syscall.Errno(rc))
	}
	if backlog <= 0 {
		backlog = 16
	}
	if rc, e := C.rdma_listen(cid, C.int(backlog)); rc != 0 {
		x.destroy()
		return nil, callError("rdma_listen", errnoOf(rc, e))
	}
	return &Listener{id: x}, nil
}

// Addr returns the bound address (with the chosen port).
func (l *Listener) Addr() net.Addr { return l.id.addr(false) }

// ConnRequest is an incoming connection request: Accept or Reject it.
type ConnRequest struct {
	id        *cmID
	priv      []byte
	initDepth int
	respRes   int
	done      atomic.Bool
}

// Accept waits for the next connection request.
func (l *Listener) Accept(ctx context.Context) (*ConnRequest, error) {
	if l.g.isClosed() {
		return nil, ErrClosed
	}
	for {
		ev, err := l.id.next(ctx)
		if err != nil {
			return nil, err
		}
		if ev.typ != CMConnectRequest || ev.child == nil {
			continue
		}
		return &ConnRequest{id: ev.child, priv: ev.priv, initDepth: ev.initDepth, respRes: ev.respRes}, nil
	}
}

// PrivateData returns the private data of the connect request.
func (r *ConnRequest) PrivateData() []byte { return r.priv }

// InitiatorDepth is the peer's requested number of outstanding reads/atomics it issues.
func (r *ConnRequest) InitiatorDepth() int { return r.initDepth }

// ResponderResources is the peer's requested number of reads/atomics it serves.
func (r *ConnRequest) ResponderResources() int { return r.respRes }

// RemoteAddr returns the requester's address.
func (r *ConnRequest) RemoteAddr() net.Addr { return r.id.addr(true) }

// Device returns the name of the RDMA device the request arrived on (open it to get the PD).
func (r *ConnRequest) Device() string {
	return C.GoString(C.rk_id_devname(r.id.id))
}

// Accept creates the QP on cfg.PD, accepts with cfg.PrivateData and waits (ctx) until the
// connection is established. The outstanding-read depths are the device maxima clamped to
// what the peer asked for.
func (r *ConnRequest) Accept(ctx context.Context, cfg ConnConfig) (*Conn, error) {
	if !r.done.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: connection request already answered", ErrInvalid)
	}
	if cfg.PD == nil || len(cfg.PrivateData) > MaxAcceptPrivateData {
		r.id.destroy()
		return nil, fmt.Errorf("%w: Accept needs a PD and at most %d bytes of private data", ErrInvalid, MaxAcceptPrivateData)
	}
	c, err := newConn(r.id, &cfg)
	if err != nil {
		C.rk_reject(r.id.id, nil, 0)
		r.id.destroy()
		return nil, err
	}
	attr := cfg.PD.c.attr
	resp := min(clampDepth(cfg.ResponderResources, attr.MaxQPRdAtom), max(r.initDepth, 1))
	init := min(clampDepth(cfg.InitiatorDepth, attr.MaxQPInitRdAtom), max(r.respRes, 1))
	c.peerPriv, c.initDepth, c.respRes = r.priv, init, resp
	err = c.modify(C.IBV_QPS_INIT, -1)
	if err == nil {
		err = c.modify(C.IBV_QPS_RTR, resp)
	}
	if err == nil {
		err = c.modify(C.IBV_QPS_RTS, init)
	}
	if err != nil {
		C.rk_reject(r.id.id, nil, 0)
		c.Close()
		return nil, err
	}
	if rc := C.rk_conn(r.id.id, 1, cbytes(cfg.PrivateData), C.int(len(cfg.PrivateData)), C.int(resp), C.int(init),
		C.int(defaultRetry(cfg.RetryCount)), C.int(defaultRetry(cfg.RNRRetryCount)), C.uint32_t(c.qp.num),
		boolInt(cfg.SRQ != nil)); rc != 0 {
		c.Close()
		return nil, callError("rdma_accept", syscall.Errno(rc))
	}
	if _, err := r.id.expect(ctx, CMEstablished, "accept"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Reject refuses the request, sending priv (at most MaxRejectPrivateData bytes) to the peer.
func (r *ConnRequest) Reject(priv []byte) error {
	if !r.done.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: connection request already answered", ErrInvalid)
	}
	if len(priv) > MaxRejectPrivateData {
		priv = priv[:MaxRejectPrivateData]
	}
	rc := C.rk_reject(r.id.id, cbytes(priv), C.int(len(priv)))
	r.id.destroy()
	if rc != 0 {
		return callError("rdma_reject", syscall.Errno(rc))
	}
	return nil
}

// Close stops listening. Connections already accepted stay up. It is idempotent.
func (l *Listener) Close() error {
	return l.g.shut(func() error {
		l.id.destroy()
		l.id.mu.Lock()
		pending := l.id.q
		l.id.q = nil
		l.id.mu.Unlock()
		for _, ev := range pending {
			if ev.child != nil {
				C.rk_reject(ev.child.id, nil, 0)
				ev.child.destroy()
			}
		}
		return nil
	})
}
