package fabric

import "fmt"

// OpKind is the kind of a one-sided operation.
type OpKind uint8

// One-sided operation kinds.
const (
	OpRead   OpKind = iota + 1 // RDMA read: remote → local
	OpWrite                    // RDMA write: local → remote
	OpAtomic                   // 64-bit atomic on remote memory, fetching the old value
)

func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpAtomic:
		return "atomic"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// AtomicOp is a 64-bit atomic operation. All of them return the previous value.
type AtomicOp uint8

// Atomic operations on an aligned unsigned 64-bit word.
const (
	FetchAdd    AtomicOp = iota + 1 // word += Operand
	CompareSwap                     // if word == Compare { word = Operand }
	MaskedSwap                      // word = word&^Compare | Operand&Compare (Compare is the mask)
	FetchOr                         // word |= Operand
	FetchAnd                        // word &= Operand
	FetchXor                        // word ^= Operand
	AtomicRead                      // no change
	Swap                            // word = Operand
	numAtomicOps
)

var atomicNames = [...]string{"", "fetch-add", "compare-swap", "masked-swap", "fetch-or", "fetch-and",
	"fetch-xor", "atomic-read", "swap"}

func (a AtomicOp) String() string {
	if a > 0 && a < numAtomicOps {
		return atomicNames[a]
	}
	return fmt.Sprintf("AtomicOp(%d)", uint8(a))
}

// AtomicOps lists every atomic operation.
func AtomicOps() []AtomicOp {
	ops := make([]AtomicOp, 0, numAtomicOps-1)
	for a := FetchAdd; a < numAtomicOps; a++ {
		ops = append(ops, a)
	}
	return ops
}

// Op is one one-sided operation for Conn.Do.
type Op struct {
	Kind OpKind
	// Local side of reads and writes: Len bytes at Off in Mem.
	Mem      *Memory
	Off, Len int
	// Remote target: RemoteOff bytes into Remote.
	Remote    Remote
	RemoteOff uint64
	// Atomics: the operation and its operands (see AtomicOp).
	Atomic           AtomicOp
	Operand, Compare uint64

	// Result is the previous value of an atomic's word.
	Result uint64
	// Err is the op's own outcome.
	Err error
}
