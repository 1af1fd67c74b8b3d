package fabric

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rdmakit/rdmakit/ofi"
)

// ofiBackend is the libfabric backend: one fabric and domain per Fabric, one endpoint with
// its own completion queue per connection.
type ofiBackend struct {
	addr     Addr
	opt      options
	provider string
	epType   ofi.EPType
	hints    ofi.Hints
	info     *ofi.Info // the domain's configuration (source = the fabric's address)
	fab      *ofi.Fabric
	dom      *ofi.Domain
	c        Caps
}

// providers maps an address's provider to libfabric provider names for RDM and MSG endpoints.
var providers = map[string][2]string{
	"tcp":     {"tcp;ofi_rxm", "tcp"},
	"sockets": {"sockets", "sockets"},
	"shm":     {"shm", ""},
	"verbs":   {"verbs;ofi_rxm", "verbs"},
}

// atomicMap is how each fabric atomic maps onto libfabric (an array: doLive indexes it per
// operation, after Conn.Do has validated the op).
var atomicMap = [numAtomicOps]struct {
	kind ofi.OpKind
	op   ofi.AtomicOp
}{
	FetchAdd:    {ofi.OpFetchAtomic, ofi.OpSum},
	CompareSwap: {ofi.OpCompareAtomic, ofi.OpCswap},
	MaskedSwap:  {ofi.OpCompareAtomic, ofi.OpMswap},
	FetchOr:     {ofi.OpFetchAtomic, ofi.OpBor},
	FetchAnd:    {ofi.OpFetchAtomic, ofi.OpBand},
	FetchXor:    {ofi.OpFetchAtomic, ofi.OpBxor},
	AtomicRead:  {ofi.OpFetchAtomic, ofi.OpAtomicRead},
	Swap:        {ofi.OpFetchAtomic, ofi.OpAtomicWrite},
}

func openOFI(a Addr, o options) (backend, error) {
	names := providers[a.Provider]
	b := &ofiBackend{addr: a, opt: o, epType: ofi.EPRDM, provider: names[0]}
	switch a.Options.Get("ep") {
	case "", "rdm":
	case "msg":
		if names[1] == "" {
			return nil, fmt.Errorf("%w: %s has no MSG endpoints", ErrNotSupported, a.Provider)
		}
		b.epType, b.provider = ofi.EPMsg, names[1]
	default:
		return nil, fmt.Errorf("%w: ep=%q (rdm or msg)", ErrBadAddress, a.Options.Get("ep"))
	}
	if a.Provider == "verbs" && os.Getenv("FI_UNIVERSE_SIZE") == "" {
		// verbs;ofi_rxm sizes its CQ from the universe size; rxe rejects the default.
		os.Setenv("FI_UNIVERSE_SIZE", "64")
	}
	b.hints = ofi.Hints{
		Provider:  b.provider,
		EPType:    b.epType,
		Caps:      ofi.CapMsg | ofi.CapRMA | ofi.CapAtomic,
		MRMode:    ofi.MRLocal | ofi.MRVirtAddr | ofi.MRAllocated | ofi.MRProvKey,
		Threading: ofi.ThreadSafe,
		TxOpFlags: ofi.DeliveryComplete, // a finished write is visible at the target
	}
	if b.epType == ofi.EPRDM {
		b.hints.Caps |= ofi.CapTagged // the goodbye of a closing connection (ofi_bye.go)
	}
	if a.Provider == "shm" {
		// Peers' RMA and atomics are counted, so the domain's poller knows this process is a
		// busy target (shm has no wait fd: a target is served only while polled).
		b.hints.Caps |= ofi.CapRMAEvent
	}
	switch rma := a.Options.Get("rma"); {
	case rma == "" || rma == "fast":
		if a.Provider == "shm" {
			// Without FI_DELIVERY_COMPLETE, shm moves a one-piece RMA with CMA
			// (process_vm_readv/writev) from the initiator: no round trip through the peer,
			// which then neither waits to be polled nor checks keys or access rights (a
			// same-user process that may use CMA can read and write the peer's memory
			// anyway). A CMA write is in place when it completes.
			b.hints.TxOpFlags = 0
		}
	case rma == "checked":
	default:
		return nil, fmt.Errorf("%w: rma=%q (fast or checked)", ErrBadAddress, rma)
	}
	infos, err := b.getinfo(a, true)
	if errors.Is(err, ofi.ErrNoData) { // no atomics here (plain tcp MSG, say): go without
		b.hints.Caps &^= ofi.CapAtomic
		infos, err = b.getinfo(a, true)
	}
	if errors.Is(err, ofi.ErrNoData) {
		// verbs MSG does not offer FI_DELIVERY_COMPLETE: an RC write completes once placed
		// at the target anyway, which is the semantics the flag asks for elsewhere.
		b.hints.TxOpFlags = 0
		infos, err = b.getinfo(a, true)
	}
	if err != nil {
		return nil, ofiError(err)
	}
	b.info = infos[0]
	if b.fab, err = ofi.OpenFabric(b.info); err != nil {
		return nil, ofiError(err)
	}
	if b.dom, err = b.fab.OpenDomain(b.info); err != nil {
		b.fab.Close()
		return nil, ofiError(err)
	}
	b.c = Caps{Backend: "ofi", Provider: b.info.Provider(), Endpoint: map[ofi.EPType]string{ofi.EPRDM: "rdm",
		ofi.EPMsg: "msg"}[b.epType], MaxMessage: o.maxMessage, MaxTransfer: b.info.MaxMsgSize()}
	if b.info.Caps()&ofi.CapAtomic != 0 {
		for a := FetchAdd; a < numAtomicOps; a++ {
			if m := atomicMap[a]; b.dom.QueryAtomic(m.kind, m.op, ofi.Uint64) == nil {
				b.c.Atomics = b.c.Atomics.With(a)
			}
		}
	}
	return b, nil
}

// getinfo asks for the backend's provider at a: as the local address (source) or as a peer.
func (b *ofiBackend) getinfo(a Addr, source bool) ([]*ofi.Info, error) {
	node, service := a.Host, a.Port
	if a.Provider == "shm" || source && service == "0" { // shm has no ports; "" picks one
		service = ""
	}
	return ofi.GetInfo(node, service, source, &b.hints)
}

// endpointInfo is the configuration of a new connection endpoint: the fabric's host with an
// ephemeral port (a unique name for shm).
func (b *ofiBackend) endpointInfo() (*ofi.Info, error) {
	local := b.addr
	if local.Provider == "shm" {
		local.Host = anonymousShmName()
	} else {
		local.Port = "0"
	}
	infos, err := b.getinfo(local, true)
	if err != nil {
		return nil, err
	}
	return infos[0], nil
}

func (b *ofiBackend) caps() Caps { return b.c }

func (b *ofiBackend) close() error { return ofiError(b.fab.Close()) }

type ofiMemory struct {
	buf *ofi.Buffer // nil: registered caller memory (Register), not ours to free
	mem []byte
	mr  *ofi.MR
}

func (b *ofiBackend) alloc(size int, acc Access) (memoryImpl, error) {
	buf, err := ofi.Alloc(size)
	if err != nil {
		return nil, ofiError(err)
	}
	mr, err := b.dom.RegMR(buf.Bytes(), ofiAccess(acc))
	if err != nil {
		buf.Free()
		return nil, ofiError(err)
	}
	return &ofiMemory{buf: buf, mem: buf.Bytes(), mr: mr}, nil
}

func (b *ofiBackend) register(mem []byte, acc Access) (memoryImpl, error) {
	if b.provider != "tcp;ofi_rxm" && b.provider != "tcp" && b.provider != "sockets" && b.provider != "shm" {
		return nil, fmt.Errorf("%w: %s pins registered memory: use Alloc", ErrNotSupported, b.provider)
	}
	mr, err := b.dom.RegMR(mem, ofiAccess(acc))
	if err != nil {
		return nil, ofiError(err)
	}
	return &ofiMemory{mem: mem, mr: mr}, nil
}

func ofiAccess(acc Access) ofi.Access {
	access := ofi.AccessLocal
	if acc&RemoteRead != 0 {
		access |= ofi.AccessRemoteRead
	}
	if acc&RemoteWrite != 0 {
		access |= ofi.AccessRemoteWrite
	}
	if acc&RemoteAtomic != 0 {
		access |= ofi.AccessRemoteRead | ofi.AccessRemoteWrite
	}
	return access
}

func (m *ofiMemory) bytes() []byte  { return m.mem }
func (m *ofiMemory) remote() Remote { return m.mr.Region() }
func (m *ofiMemory) close() error {
	err := ofiError(m.mr.Close())
	if m.buf != nil {
		err = errors.Join(err, m.buf.Free())
	}
	return err
}

var (
	shmSeq   atomic.Uint64
	shmSweep sync.Once
)

// anonymousShmName is a shm endpoint name unique on this host. The first call removes the
// regions that processes which died without closing their endpoints left behind under such
// names (shm unlinks a region when its endpoint closes; a killed process never does).
func anonymousShmName() string {
	shmSweep.Do(sweepShm)
	return fmt.Sprintf("rdmakit-%d-%d", os.Getpid(), shmSeq.Add(1))
}

// sweepShm unlinks /dev/shm/rdmakit-PID-* whose process is gone.
func sweepShm() {
	names, _ := filepath.Glob("/dev/shm/rdmakit-*")
	for _, n := range names {
		rest := strings.TrimPrefix(filepath.Base(n), "rdmakit-")
		pid, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '-'))])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(n)
		}
	}
}
