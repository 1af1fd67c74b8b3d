package ofi

import "context"

// The blocking helpers below each run one operation through Do. Peer is ignored on connected
// MSG endpoints. buf must lie in mr where the provider requires registered local memory.

// Send sends buf as one message.
func (e *Endpoint) Send(ctx context.Context, buf []byte, mr *MR, peer Addr) error {
	op := Op{Kind: OpSend, Buf: buf, MR: mr, Peer: peer}
	return e.Do(ctx, []Op{op})
}

// Recv receives one message into buf and returns its length.
func (e *Endpoint) Recv(ctx context.Context, buf []byte, mr *MR, from Addr) (int, error) {
	ops := []Op{{Kind: OpRecv, Buf: buf, MR: mr, Peer: from}}
	err := e.Do(ctx, ops)
	return ops[0].Len, err
}

// TSend sends buf as a tagged message.
func (e *Endpoint) TSend(ctx context.Context, buf []byte, mr *MR, peer Addr, tag uint64) error {
	return e.Do(ctx, []Op{{Kind: OpTSend, Buf: buf, MR: mr, Peer: peer, Tag: tag}})
}

// TRecv receives a tagged message whose tag matches tag outside the ignore bits; it returns
// the length and the sender's tag. libfabric 1.17's shm honours ignore bits only for a
// message that arrives after the receive is posted (Post it first): one that arrived before
// is compared under a stale mask, and a receive that should take it may wait forever.
func (e *Endpoint) TRecv(ctx context.Context, buf []byte, mr *MR, from Addr, tag, ignore uint64) (int, uint64, error) {
	ops := []Op{{Kind: OpTRecv, Buf: buf, MR: mr, Peer: from, Tag: tag, Ignore: ignore}}
	err := e.Do(ctx, ops)
	return ops[0].Len, ops[0].RecvTag, err
}

// Inject sends a small message that is copied at once; there is no completion to wait for.
func (e *Endpoint) Inject(buf []byte, peer Addr) error {
	return e.Do(context.Background(), []Op{{Kind: OpInject, Buf: buf, Peer: peer}})
}

// Write writes buf to remote memory at raddr (Region.Addr + offset) with key.
func (e *Endpoint) Write(ctx context.Context, buf []byte, mr *MR, peer Addr, raddr, key uint64) error {
	return e.Do(ctx, []Op{{Kind: OpWrite, Buf: buf, MR: mr, Peer: peer, RemoteAddr: raddr, Key: key}})
}

// WriteData writes like Write and delivers data to the target's receive CQ.
func (e *Endpoint) WriteData(ctx context.Context, buf []byte, mr *MR, peer Addr, raddr, key, data uint64) error {
	return e.Do(ctx, []Op{{Kind: OpWrite, Buf: buf, MR: mr, Peer: peer, RemoteAddr: raddr, Key: key,
		Data: data, WithData: true}})
}

// Read reads remote memory at raddr with key into buf.
func (e *Endpoint) Read(ctx context.Context, buf []byte, mr *MR, peer Addr, raddr, key uint64) error {
	return e.Do(ctx, []Op{{Kind: OpRead, Buf: buf, MR: mr, Peer: peer, RemoteAddr: raddr, Key: key}})
}

// Atomic applies op with operand to one dt element at raddr (fi_atomic).
func (e *Endpoint) Atomic(ctx context.Context, op AtomicOp, dt Datatype, peer Addr, raddr, key, operand uint64) error {
	return e.Do(ctx, []Op{{Kind: OpAtomic, AtomicOp: op, Datatype: dt, Peer: peer, RemoteAddr: raddr,
		Key: key, Operand: operand}})
}

// FetchAtomic applies op and returns the element's previous value (fi_fetch_atomic); with
// OpAtomicRead it just reads.
func (e *Endpoint) FetchAtomic(ctx context.Context, op AtomicOp, dt Datatype, peer Addr, raddr, key, operand uint64) (uint64, error) {
	ops := []Op{{Kind: OpFetchAtomic, AtomicOp: op, Datatype: dt, Peer: peer, RemoteAddr: raddr,
		Key: key, Operand: operand}}
	err := e.Do(ctx, ops)
	return ops[0].Result, err
}

// CompareAtomic runs a compare op (CSWAP*, MSWAP) and returns the previous value. For CSWAP
// the element becomes swap if it equals compare; for MSWAP, compare is the mask of bits of
// swap to write.
func (e *Endpoint) CompareAtomic(ctx context.Context, op AtomicOp, dt Datatype, peer Addr, raddr, key, swap, compare uint64) (uint64, error) {
	ops := []Op{{Kind: OpCompareAtomic, AtomicOp: op, Datatype: dt, Peer: peer, RemoteAddr: raddr,
		Key: key, Operand: swap, Compare: compare}}
	err := e.Do(ctx, ops)
	return ops[0].Result, err
}
