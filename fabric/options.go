package fabric

import "time"

// Option tunes Open.
type Option func(*options)

type options struct {
	maxMessage  int
	recvDepth   int
	queueDepth  int
	spin        time.Duration
	linger      time.Duration
	dialTimeout time.Duration

	keepalive, keepaliveTimeout time.Duration
}

func defaultOptions() options {
	return options{maxMessage: 64 << 10, recvDepth: 8, queueDepth: 256, spin: 20 * time.Microsecond,
		dialTimeout: 15 * time.Second, keepalive: defaultKeepaliveInterval, keepaliveTimeout: defaultKeepaliveTimeout}
}

// WithMaxMessage sets the largest Send/Recv message (default 64 KiB).
func WithMaxMessage(n int) Option { return func(o *options) { o.maxMessage = n } }

// WithRecvDepth sets how many receive buffers each connection keeps posted (default 8).
func WithRecvDepth(n int) Option { return func(o *options) { o.recvDepth = n } }

// WithQueueDepth sets the most one-sided operations in flight per connection (default 256).
func WithQueueDepth(n int) Option { return func(o *options) { o.queueDepth = n } }

// WithSpin sets how long a waiting call polls its completion queue before it parks in Go's
// poller (default 20µs). Longer is busy polling: lower latency, a core spent.
func WithSpin(d time.Duration) Option { return func(o *options) { o.spin = d } }

// WithLinger sets how long, on the ofi backend, a connection's progress goroutine keeps
// polling after a peer's request woke it, and after each request it served in that time
// (default 100µs; negative: never), so that a peer's back-to-back RMA and atomics find this
// side awake rather than pay a wake-up each. It costs a core for up to d after the last
// request; a window ends at the latest 2d (10ms at least) after the request that opened it,
// since idle polls that happen to be slow look like served requests. Verbs targets are
// served by the NIC and need no polling.
func WithLinger(d time.Duration) Option { return func(o *options) { o.linger = d } }

// WithDialTimeout bounds how long Dial may take, connection and handshake together, whatever
// its context allows (default 15s; 0 leaves only the context).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithKeepalive sets how the ofi backend tells that the peer of an RDM connection over a
// network (tcp, sockets, verbs;ofi_rxm) is lost, since libfabric does not: every interval
// each side reads a word the other registered for it (an 8-byte RMA read), and a read that
// fails or takes longer than timeout loses the connection; its calls then end in
// ErrConnReset (default every 2s, lost after 6s). Interval 0 reads nothing (the peer may
// still read this side's word): calls to a dead peer can then wait as long as their contexts
// allow. A shm peer in another process is watched through its pidfd instead, at no cost.
// Verbs and MSG endpoints have connections of their own that report a lost peer.
func WithKeepalive(interval, timeout time.Duration) Option {
	return func(o *options) { o.keepalive, o.keepaliveTimeout = interval, timeout }
}
