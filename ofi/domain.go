package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Domain is an opened access domain (fi_domain): memory registration, queues and endpoints
// live in one domain.
type Domain struct {
	node
	c       *C.struct_fid_domain
	fabric  *Fabric
	info    *Info
	nextKey atomic.Uint64 // requested keys when the provider does not choose them

	atomicMu sync.Mutex
	atomics  map[atomicKey]error // fi_query_atomic results
	// atomicOK marks the supported atomics (by kind, op and datatype) found so far: every atomic
	// posted asks, and a lookup in atomics takes atomicMu.
	atomicOK [3][atomicOKSize][atomicOKSize]atomic.Bool

	// quiet is held shared around every post and CQ or counter read in the domain and
	// exclusively around fi_trywait: rxm's trywait (libfabric 1.17) is not safe against
	// concurrent data-path calls and crashes when it races them. See also recvAlone.
	quiet sync.RWMutex
	// recvAlone: receives are posted with quiet held exclusively, so that no progress runs
	// beside them. libfabric 1.17's shm matches an arriving message against the posted
	// receives and, finding none, queues it as unexpected in two steps that each take its
	// receive lock (get_msg/get_tag, then queue_msg/queue_tag). A receive posted between the
	// two finds no unexpected message and is queued as posted, the message is queued as
	// unexpected after it, and neither is ever matched: both wait forever.
	recvAlone bool

	poll poller // drives the queues without a wait fd
}

type atomicKey struct {
	op    AtomicOp
	dt    Datatype
	flags uint64
}

// OpenDomain opens the domain that info names (normally the Info the fabric was opened with).
func (f *Fabric) OpenDomain(info *Info) (*Domain, error) {
	if f.isClosed() {
		return nil, ErrClosed
	}
	d := &Domain{fabric: f, info: info, atomics: map[atomicKey]error{}}
	if rc := C.fi_domain(f.c, info.c, &d.c, nil); rc != 0 {
		return nil, fmt.Errorf("provider %s domain %s: %w", info.Provider(), info.DomainName(),
			fiErr("fi_domain", C.ssize_t(rc)))
	}
	d.nextKey.Store(1)
	d.poll.d = d
	d.recvAlone = info.Provider() == "shm"
	if err := d.init(&f.node, rankDomain, func() error {
		return fiErr("fi_close(domain)", C.ssize_t(C.fi_close(&d.c.fid)))
	}); err != nil {
		C.fi_close(&d.c.fid)
		return nil, err
	}
	return d, nil
}

// lockPost takes quiet for posting operations: exclusively when they include a receive and the
// provider needs that (recvAlone), shared otherwise. It reports which, for unlockPost.
func (d *Domain) lockPost(recv bool) bool {
	if recv && d.recvAlone {
		d.quiet.Lock()
		return true
	}
	d.rlockQuiet()
	return false
}

// rlockQuiet takes quiet shared. A fi_trywait holding it, or waiting for it (a writer waiting
// keeps new readers out), is short, but a goroutine parked on an RWMutex waits for a thread to
// wake it, tens of µs on a small machine, and the trywait's progress goroutine is often waiting
// in this goroutine's run queue, put there by its last RUnlock: yield to it a few times first.
func (d *Domain) rlockQuiet() {
	for i := 0; !d.quiet.TryRLock(); i++ {
		if i == quietYields {
			d.quiet.RLock()
			return
		}
		runtime.Gosched()
	}
}

// quietYields is how many times rlockQuiet yields before it parks.
const quietYields = 64

// unlockPost releases what lockPost took.
func (d *Domain) unlockPost(alone bool) {
	if alone {
		d.quiet.Unlock()
	} else {
		d.quiet.RUnlock()
	}
}

// Fabric is the fabric the domain belongs to.
func (d *Domain) Fabric() *Fabric { return d.fabric }

// Info is the fi_info the domain was opened with.
func (d *Domain) Info() *Info { return d.info }

// Close closes the domain and every endpoint, queue and memory region in it. Idempotent.
func (d *Domain) Close() error { return d.close() }

// QueryAtomic reports whether the domain supports op on dt (fi_query_atomic): nil, or an error
// matching ErrNotSupported. kind selects plain (OpAtomic), fetching (OpFetchAtomic) or compare
// (OpCompareAtomic) atomics.
func (d *Domain) QueryAtomic(kind OpKind, op AtomicOp, dt Datatype) error {
	var flags uint64
	var ki int
	switch kind {
	case OpAtomic:
	case OpFetchAtomic:
		flags, ki = C.FI_FETCH_ATOMIC, 1
	case OpCompareAtomic:
		flags, ki = C.FI_COMPARE_ATOMIC, 2
	default:
		return fmt.Errorf("%w: %v is not an atomic kind", ErrInvalid, kind)
	}
	if d.isClosed() {
		return ErrClosed
	}
	var ok *atomic.Bool
	if uint(op) < atomicOKSize && uint(dt) < atomicOKSize {
		if ok = &d.atomicOK[ki][op][dt]; ok.Load() {
			return nil
		}
	}
	k := atomicKey{op, dt, flags}
	d.atomicMu.Lock()
	defer d.atomicMu.Unlock()
	if err, ok := d.atomics[k]; ok {
		return err
	}
	var attr C.struct_fi_atomic_attr
	rc := C.fi_query_atomic(d.c, C.enum_fi_datatype(dt), C.enum_fi_op(op), &attr, C.uint64_t(flags))
	var err error
	if rc != 0 {
		err = fmt.Errorf("%w: %s %s on %s with %s: %w", ErrNotSupported, kind, op, dt,
			d.info.Provider(), fiErr("fi_query_atomic", C.ssize_t(rc)))
	} else if int(attr.size) != dt.Size() {
		err = fmt.Errorf("%w: %s %s reports element size %d", ErrNotSupported, op, dt, attr.size)
	}
	d.atomics[k] = err
	if err == nil && ok != nil {
		ok.Store(true)
	}
	return err
}

// atomicOKSize bounds the atomic ops and datatypes Domain.atomicOK covers (libfabric has fewer
// than 32 of each; others take the map).
const atomicOKSize = 32
