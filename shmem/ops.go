package shmem

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/internal/scratch"
)

// OpKind is an operation on one 64-bit word of a portion. Every kind fetches the word's value
// before the operation (Op.Result). Each runs as one fabric atomic where the transport has it
// natively (Segment.Native); otherwise — bitwise ops, swaps and masked swaps on verbs, which
// has only fetch-add and compare-and-swap — as a compare-and-swap loop starting from the local
// copy, which is lock-free but takes a round trip per retry under contention.
type OpKind uint8

// Operations. Value and Arg are Op's operands.
const (
	OpLoad        OpKind = iota + 1 // no change (atomic read)
	OpStore                         // word = Value (atomic write, swap)
	OpAdd                           // word += Value
	OpOr                            // word |= Value
	OpAnd                           // word &= Value
	OpXor                           // word ^= Value
	OpMaskedSwap                    // word = word&^Arg | Value&Arg (Arg is the mask)
	OpCompareSwap                   // if word == Arg { word = Value }
	OpCSwap                         // if word == our local copy of it { word = Value }
	numOpKinds
)

// spec is how a kind runs: its fabric atomic and its effect, for CAS loops and local copies.
type spec struct {
	name   string
	atomic fabric.AtomicOp
	apply  func(word, value, arg uint64) uint64
}

// specs is indexed by OpKind (an array: a map lookup per operation showed in profiles).
var specs = [numOpKinds]spec{
	OpLoad:        {"load", fabric.AtomicRead, func(w, v, a uint64) uint64 { return w }},
	OpStore:       {"store", fabric.Swap, func(w, v, a uint64) uint64 { return v }},
	OpAdd:         {"fetch-add", fabric.FetchAdd, func(w, v, a uint64) uint64 { return w + v }},
	OpOr:          {"or", fabric.FetchOr, func(w, v, a uint64) uint64 { return w | v }},
	OpAnd:         {"and", fabric.FetchAnd, func(w, v, a uint64) uint64 { return w & v }},
	OpXor:         {"xor", fabric.FetchXor, func(w, v, a uint64) uint64 { return w ^ v }},
	OpMaskedSwap:  {"masked-swap", fabric.MaskedSwap, func(w, v, a uint64) uint64 { return w&^a | v&a }},
	OpCompareSwap: {"compare-swap", fabric.CompareSwap, casApply},
	OpCSwap:       {"cswap", fabric.CompareSwap, casApply},
}

func casApply(w, v, a uint64) uint64 {
	if w == a {
		return v
	}
	return w
}

// known reports whether k is one of the operations.
func (k OpKind) known() bool { return k > 0 && k < numOpKinds }

// String is the operation's name.
func (k OpKind) String() string {
	if k.known() {
		return specs[k].name
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one operation for Segment.Do.
type Op struct {
	Kind OpKind
	// Node and Off address the word: Off bytes into node's portion, 8-byte aligned.
	Node int
	Off  uint64
	// Value and Arg are the operands (see OpKind).
	Value, Arg uint64

	// Result is the word's value before the operation.
	Result uint64
	// Err is the op's own outcome.
	Err error
}

// Swapped reports whether a finished OpCompareSwap or OpCSwap swapped.
func (o *Op) Swapped(expected uint64) bool { return o.Err == nil && o.Result == expected }

// check validates a word address.
func (s *Segment) check(node int, off uint64) (*member, error) {
	m, err := s.member(node)
	if err != nil {
		return nil, err
	}
	if off%8 != 0 {
		return nil, fmt.Errorf("%w: offset %d", ErrMisaligned, off)
	}
	if off >= uint64(s.cfg.PortionSize) {
		return nil, fmt.Errorf("%w: word at offset %d of a %d-byte portion", ErrOutOfRange, off, s.cfg.PortionSize)
	}
	return m, nil
}

// copyWord is our local copy of the word at off of m's portion.
func (m *member) copyWord(off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&m.copy.Bytes()[off]))
}

// opCtx gives ctx a deadline OpTimeout from now if it has none; release the wrapper (nil-safe)
// when done.
func (s *Segment) opCtx(ctx context.Context) (context.Context, *lazyDeadline) {
	return withLazyDeadline(ctx, s.cfg.OpTimeout)
}

// run runs one operation and returns the word's previous value.
func (s *Segment) run(ctx context.Context, k OpKind, node int, off, value, arg uint64) (uint64, error) {
	ops := [1]Op{{Kind: k, Node: node, Off: off, Value: value, Arg: arg}}
	err := s.doOne(ctx, ops[:])
	return ops[0].Result, err
}

// Do runs a batch of operations. Operations on the same node are posted together, as many in
// flight as the transport allows (the pipelined form: post many, reap many); batches for
// different nodes run concurrently. Each op gets its Result and Err; Do returns the first error.
// Every op is validated before any is posted. Ops the transport lacks natively run afterwards,
// one by one, as compare-and-swap loops.
func (s *Segment) Do(ctx context.Context, ops []Op) error {
	one := true
	for i := range ops {
		if ops[i].Node != ops[0].Node {
			one = false
			break
		}
	}
	if one {
		return s.doOne(ctx, ops)
	}
	return s.doMany(ctx, ops)
}

// doMany is Do for ops on several nodes. (A function of its own: the goroutines' closures
// would move Do's arguments to the heap on the one-node path too.)
func (s *Segment) doMany(ctx context.Context, ops []Op) error {
	if err := s.validate(ops); err != nil {
		return err
	}
	ctx, lz := s.opCtx(ctx)
	defer lz.release()
	byNode := map[int][]int{}
	for i := range ops {
		byNode[ops[i].Node] = append(byNode[ops[i].Node], i)
	}
	errs := make(chan error, len(byNode))
	for node, idx := range byNode {
		go func() { errs <- s.doNode(ctx, s.members[node], ops, idx) }()
	}
	var first error
	for range byNode {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// doOne is Do for ops all on one node. Unlike Do it keeps no reference to ops past the call
// (no goroutines), so the callers' one-op arrays stay on their stacks.
func (s *Segment) doOne(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	if err := s.validate(ops); err != nil {
		return err
	}
	ctx, lz := s.opCtx(ctx)
	defer lz.release()
	return s.doNode(ctx, s.members[ops[0].Node], ops, nil)
}

// validate checks every op and clears its outputs.
func (s *Segment) validate(ops []Op) error {
	if s.isClosed() {
		return ErrClosed
	}
	for i := range ops {
		op := &ops[i]
		op.Result, op.Err = 0, nil
		if !op.Kind.known() {
			return opErr(len(ops), i, fmt.Errorf("%w: unknown op kind %d", fabric.ErrInvalid, op.Kind))
		}
		if _, err := s.check(op.Node, op.Off); err != nil {
			return opErr(len(ops), i, err)
		}
	}
	return nil
}

func opErr(n, i int, err error) error {
	if n > 1 {
		return fmt.Errorf("op %d: %w", i, err)
	}
	return err
}

// oneOp holds the fabric op of single-op doNode calls.
var oneOp = sync.Pool{New: func() any { return new([1]fabric.Op) }}

// Scratch of doNode calls with more than one op: their fabric ops and index lists.
var (
	fabricOps scratch.Pool[fabric.Op]
	indexes   scratch.Pool[int]
)

// doNode runs the ops at idx (all of ops when idx is nil), all on member m.
func (s *Segment) doNode(ctx context.Context, m *member, ops []Op, idx []int) error {
	var one [1]int
	if idx == nil {
		if len(ops) == 1 {
			idx = one[:]
		} else {
			p := indexes.Get(len(ops))
			defer indexes.Put(p)
			idx = *p
			for i := range idx {
				idx[i] = i
			}
		}
	}
	l, err := m.get(ctx)
	if err != nil {
		for _, i := range idx {
			ops[i].Err = err
		}
		return err
	}
	caps := l.c.Caps().Atomics &^ s.without
	var smallIdx [1]int
	var fops []fabric.Op
	fidx := smallIdx[:0]
	var loops []int
	var pooled *[1]fabric.Op
	if len(idx) > 1 {
		pf, pi := fabricOps.Get(len(idx)), indexes.Get(len(idx))
		defer fabricOps.Put(pf)
		defer indexes.Put(pi)
		fops, fidx = (*pf)[:0], (*pi)[:0]
	} else {
		// Ops handed to Conn.Do escape (an interface call), so a one-op array would be an
		// allocation per operation: reuse one.
		pooled = oneOp.Get().(*[1]fabric.Op)
		fops = pooled[:0]
	}
	for _, i := range idx {
		op := &ops[i]
		sp := specs[op.Kind]
		if !caps.Has(sp.atomic) {
			if !(op.Kind == OpLoad && caps.Has(fabric.CompareSwap)) {
				loops = append(loops, i)
				continue
			}
		}
		fo := fabric.Op{Kind: fabric.OpAtomic, Atomic: sp.atomic, Remote: l.remote, RemoteOff: op.Off,
			Operand: op.Value, Compare: op.Arg}
		switch op.Kind {
		case OpCSwap:
			fo.Compare = atomic.LoadUint64(m.copyWord(op.Off))
			op.Arg = fo.Compare
		case OpLoad:
			if !caps.Has(fabric.AtomicRead) { // compare-and-swap of the word with itself
				c := atomic.LoadUint64(m.copyWord(op.Off))
				fo.Atomic, fo.Operand, fo.Compare = fabric.CompareSwap, c, c
			}
		}
		fops = append(fops, fo)
		fidx = append(fidx, i)
	}
	var first error
	if len(fops) > 0 {
		err := l.c.Do(ctx, fops)
		for j, i := range fidx {
			op := &ops[i]
			op.Result = fops[j].Result
			if fops[j].Err != nil || err != nil {
				e := fops[j].Err
				if e == nil {
					e = err
				}
				op.Err = m.failed(l, e)
				if first == nil {
					first = op.Err
				}
				continue
			}
			atomic.StoreUint64(m.copyWord(op.Off), specs[op.Kind].apply(op.Result, op.Value, op.Arg))
		}
	}
	if pooled != nil {
		*pooled = [1]fabric.Op{}
		oneOp.Put(pooled)
	}
	for _, i := range loops {
		if first != nil {
			ops[i].Err = first
			continue
		}
		if err := s.casLoop(ctx, m, l, &ops[i]); err != nil {
			first = err
		}
	}
	return first
}

// casLoop runs op as a compare-and-swap loop, starting from the local copy's value: the
// fallback for atomics the transport lacks (bitwise ops and swaps on verbs).
func (s *Segment) casLoop(ctx context.Context, m *member, l *link, op *Op) error {
	if !(l.c.Caps().Atomics &^ s.without).Has(fabric.CompareSwap) {
		op.Err = fmt.Errorf("%w: %s: the transport has neither it nor compare-and-swap", fabric.ErrNotSupported, op.Kind)
		return op.Err
	}
	sp := specs[op.Kind]
	if op.Kind == OpCSwap {
		op.Arg = atomic.LoadUint64(m.copyWord(op.Off))
	}
	cur := atomic.LoadUint64(m.copyWord(op.Off))
	for {
		next := sp.apply(cur, op.Value, op.Arg)
		prev, err := l.c.CompareSwap(ctx, l.remote, op.Off, cur, next)
		if err != nil {
			op.Err = m.failed(l, err)
			return op.Err
		}
		if prev == cur {
			op.Result = prev
			atomic.StoreUint64(m.copyWord(op.Off), next)
			return nil
		}
		cur = prev
		atomic.StoreUint64(m.copyWord(op.Off), prev)
	}
}

// Load atomically reads the word at off of node's portion.
func (s *Segment) Load(ctx context.Context, node int, off uint64) (uint64, error) {
	return s.run(ctx, OpLoad, node, off, 0, 0)
}

// Store atomically writes v to the word and returns its previous value.
func (s *Segment) Store(ctx context.Context, node int, off, v uint64) (uint64, error) {
	return s.run(ctx, OpStore, node, off, v, 0)
}

// FetchAdd adds delta to the word (wrapping) and returns its previous value.
func (s *Segment) FetchAdd(ctx context.Context, node int, off, delta uint64) (uint64, error) {
	return s.run(ctx, OpAdd, node, off, delta, 0)
}

// Or sets the bits of bits in the word and returns its previous value.
func (s *Segment) Or(ctx context.Context, node int, off, bits uint64) (uint64, error) {
	return s.run(ctx, OpOr, node, off, bits, 0)
}

// And clears the bits not in bits and returns the word's previous value.
func (s *Segment) And(ctx context.Context, node int, off, bits uint64) (uint64, error) {
	return s.run(ctx, OpAnd, node, off, bits, 0)
}

// Xor flips the bits of bits and returns the word's previous value.
func (s *Segment) Xor(ctx context.Context, node int, off, bits uint64) (uint64, error) {
	return s.run(ctx, OpXor, node, off, bits, 0)
}

// MaskedSwap replaces the bits of the word selected by mask with those of value and returns
// the word's previous value.
func (s *Segment) MaskedSwap(ctx context.Context, node int, off, value, mask uint64) (uint64, error) {
	return s.run(ctx, OpMaskedSwap, node, off, value, mask)
}

// SetBits writes value into the width-bit field at bit shift of the word (a masked swap) and
// returns the word's previous value. The field must fit the word and value must fit the field
// (ErrWidth).
func (s *Segment) SetBits(ctx context.Context, node int, off uint64, shift, width uint, value uint64) (uint64, error) {
	mask, err := fieldMask(shift, width, value)
	if err != nil {
		return 0, err
	}
	return s.run(ctx, OpMaskedSwap, node, off, value<<shift, mask)
}

// Field extracts the width-bit field at bit shift from word.
func Field(word uint64, shift, width uint) uint64 {
	if width == 0 || shift >= 64 {
		return 0
	}
	if width >= 64 {
		return word >> shift
	}
	return word >> shift & (1<<width - 1)
}

func fieldMask(shift, width uint, value uint64) (uint64, error) {
	if width == 0 || width > 64 || shift >= 64 || shift+width > 64 {
		return 0, fmt.Errorf("%w: %d-bit field at bit %d of a 64-bit word", ErrWidth, width, shift)
	}
	if width < 64 && value>>width != 0 {
		return 0, fmt.Errorf("%w: value %#x does not fit %d bits", ErrWidth, value, width)
	}
	if width == 64 {
		return ^uint64(0), nil
	}
	return (1<<width - 1) << shift, nil
}

// CompareSwap writes new to the word if it holds old, and returns the word's previous value:
// the swap happened if and only if it equals old.
func (s *Segment) CompareSwap(ctx context.Context, node int, off, old, new uint64) (uint64, error) {
	return s.run(ctx, OpCompareSwap, node, off, new, old)
}

// CSwap writes new to the word if it still holds the value in this member's local copy (the
// value this member last saw there), and reports whether it did. Either way the local copy
// learns the word's current value, so a retry compares against fresh data: the
// compare-and-act step of optimistic updates, one fabric atomic.
func (s *Segment) CSwap(ctx context.Context, node int, off, new uint64) (prev uint64, swapped bool, err error) {
	ops := [1]Op{{Kind: OpCSwap, Node: node, Off: off, Value: new}}
	err = s.doOne(ctx, ops[:])
	return ops[0].Result, err == nil && ops[0].Result == ops[0].Arg, err
}
