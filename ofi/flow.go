package ofi

import "sync/atomic"

// socketsInFlight is how many bytes a sockets endpoint has in flight at most (an operation
// larger than that goes alone).
//
// libfabric's sockets provider (1.17) reads a message's 24-byte header only once all of it
// sits in the socket (it peeks, and peeks again later). Over loopback a segment is up to 64 KiB
// and the kernel charges the receive buffer for a whole segment while a byte of it is unread,
// so when a burst fills the receiver's window and the sender stops inside a header, the
// receiver holds a few bytes of that header in a segment big enough to keep its window shut:
// the kernel waits for the provider to read, the provider for the rest of the header, and the
// operations in flight never finish. 512 writes or reads of 4 KiB at once hung about one
// batch in 70 (256 KiB in flight: one in 130; 128 KiB: none in 2200). Keeping a connection's
// bytes in flight under the receive buffer a new connection starts with (tcp_rmem's 128 KiB
// default) keeps the window open: each side limits its own operations to half of that.
const socketsInFlight = 64 << 10

// flow limits the bytes an endpoint's operations have in flight.
type flow struct {
	limit int64
	used  atomic.Int64
}

// newFlow is the limit for an endpoint of provider prov, or nil for none.
func newFlow(prov string) *flow {
	if prov == "sockets" {
		return &flow{limit: socketsInFlight}
	}
	return nil
}

// take reserves n bytes and reports whether it could: within the limit, or anything when
// nothing is in flight.
func (f *flow) take(n int64) bool {
	for {
		u := f.used.Load()
		if u > 0 && u+n > f.limit {
			return false
		}
		if f.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes reserved with take.
func (f *flow) give(n int64) { f.used.Add(-n) }

// wireBytes is what op moves over the connection, as the flow limit counts it: the data of a
// send, write or read, a word or two for an atomic. Receives move nothing of their own.
func (op *Op) wireBytes() int64 {
	switch {
	case op.Kind.isRecv():
		return 0
	case op.Kind.isAtomic():
		return 16
	}
	return int64(len(op.Buf))
}
