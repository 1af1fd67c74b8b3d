package pager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// PageSize is the paging unit: the base page size of the machines the pager runs on.
const PageSize = 4096

// MinBudget is the smallest resident budget, in bytes.
const MinBudget = 16 * PageSize

// Options tune a Pager. Zero values pick the defaults.
type Options struct {
	// Budget is the most bytes of paged memory mapped at once, over all regions (a multiple
	// of PageSize, at least MinBudget). Default 16 MiB.
	Budget int
	// Handlers is the number of fault-handling loops: more serve more faults at once while
	// others wait on the network. Default 2.
	Handlers int
	// Prefetch is the most pages read ahead when faults follow a trend; negative disables
	// prefetching. Default 32.
	Prefetch int
	// PrefetchCache is how many read-ahead pages are kept until their first fault.
	// Default 4 × Prefetch (at least 64).
	PrefetchCache int
	// EvictPeriod is how often the evictor wakes to keep a reserve of free pages; it also
	// runs whenever a fault finds the budget full. Default 20 ms.
	EvictPeriod time.Duration
	// Timeout bounds every remote operation; a fault whose page cannot be fetched in time
	// fails (see the package doc). Default 5 s.
	Timeout time.Duration
	// Keepalive is how often the runtime renews its lease on the server. Default 1 s.
	Keepalive time.Duration
	// Logger receives failures and region events; nil means slog.Default().
	Logger *slog.Logger
	// Fabric options for the connection to the server.
	Fabric []fabric.Option
	// KeepGOMAXPROCS stops New from adding one P per fault handler and one for the evictor
	// (see the package doc).
	KeepGOMAXPROCS bool
}

func (o *Options) setDefaults() error {
	if o.Budget == 0 {
		o.Budget = 16 << 20
	}
	if o.Budget < MinBudget || o.Budget%PageSize != 0 {
		return fmt.Errorf("%w: budget %d bytes: want a multiple of %d of at least %d", ErrInvalid, o.Budget,
			PageSize, MinBudget)
	}
	if o.Handlers == 0 {
		o.Handlers = 2
	}
	if o.Handlers < 0 || o.Handlers > 64 {
		return fmt.Errorf("%w: %d handlers", ErrInvalid, o.Handlers)
	}
	if o.Prefetch == 0 {
		o.Prefetch = 32
	}
	if o.Prefetch < 0 {
		o.Prefetch = 0
	}
	if o.PrefetchCache == 0 {
		o.PrefetchCache = max(64, 4*o.Prefetch)
	}
	if o.PrefetchCache < 2*o.Prefetch {
		return fmt.Errorf("%w: prefetch cache of %d pages for a window of %d", ErrInvalid, o.PrefetchCache, o.Prefetch)
	}
	if o.EvictPeriod <= 0 {
		o.EvictPeriod = 20 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Keepalive <= 0 {
		o.Keepalive = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// evictBatch is the most pages written back in one batch.
const evictBatch = 32

// ErrClosed is returned for use of a closed pager or region.
var ErrClosed = errors.New("pager: closed")

// ErrFailed wraps the reason a pager stopped serving faults (server gone, deadline passed).
var ErrFailed = errors.New("pager: failed")

// Pager is the paging runtime: one connection to a memory server, one userfaultfd, a budget
// of resident pages shared by its regions, fault-handler loops and an evictor.
type Pager struct {
	opt      Options
	log      *slog.Logger
	conn     *fabric.Conn
	u        *uffd
	stage    *fabric.Memory // demand slots (msgBatch per handler), zero page, evict slots, cache slots
	handlers []*handler
	stop     chan struct{}
	stopfd   int
	kick     chan struct{}
	wg       sync.WaitGroup
	procs    int
	c        counters

	evictMu  sync.Mutex // one eviction at a time: the evict slots and the dropper
	evictOps []fabric.Op
	evictOC  *opContext
	dropper  *dropper

	mu        sync.Mutex
	cond      *sync.Cond // broadcast when frames free up or pages settle
	regions   []*Region
	frames    []pageRef // the resident budget: which page holds each frame
	free      []int32
	hand      int
	lowWater  int       // fewer free frames than this wakes the evictor
	highWater int       // the evictor frees frames up to this many
	maxWindow int       // the most pages read ahead at once: Prefetch, within a quarter of the budget
	cache     []pageRef // prefetch cache slots: the page each holds, or none
	cacheNext int
	failed    error
	closed    bool

	ctrl  sync.Mutex // one control request at a time
	reqID uint32
	// wire keeps messages (exclusive) apart from one-sided operations (shared): a Do whose
	// deadline passes closes the connection, and fabric then frees the message buffers
	// under a concurrent Send or Recv (a data race inside fabric; see rma).
	wire sync.RWMutex
	dead atomic.Bool // a one-sided operation failed: the connection may be gone
}

// rma runs one-sided operations on the connection.
func (p *Pager) rma(fn func() error) error {
	p.wire.RLock()
	defer p.wire.RUnlock()
	err := fn()
	if err != nil {
		p.dead.Store(true)
	}
	return err
}

// do runs a batch of one-sided operations under oc: within Options.Timeout.
func (p *Pager) do(oc *opContext, ops []fabric.Op) error {
	oc.start.Store(monoNow())
	defer oc.start.Store(0)
	return p.rma(func() error { return p.conn.Do(oc, ops) })
}

// msg runs a Send or Recv on the connection, unless a one-sided operation failed on it: a Do
// whose deadline passed has closed the connection inside fabric without marking it closed,
// and a later Send would use freed buffers.
func (p *Pager) msg(fn func() error) error {
	p.wire.Lock()
	defer p.wire.Unlock()
	if p.dead.Load() {
		return fmt.Errorf("%w: connection lost to a failed RDMA operation", ErrFailed)
	}
	return fn()
}

type pageRef struct {
	r   *Region
	idx int
}

// New connects to the memory server at addr and starts the runtime: it opens the userfaultfd
// (see ErrPrivilege), allocates the registered staging memory and starts the handler threads.
func New(ctx context.Context, addr string, opt Options) (*Pager, error) {
	if err := opt.setDefaults(); err != nil {
		return nil, err
	}
	if os.Getpagesize() != PageSize {
		return nil, fmt.Errorf("%w: page size %d, pager needs %d", ErrUnsupported, os.Getpagesize(), PageSize)
	}
	u, err := openUffd()
	if err != nil {
		return nil, err
	}
	conn, err := fabric.Dial(ctx, addr, opt.Fabric...)
	if err != nil {
		u.close()
		return nil, fmt.Errorf("pager: dial memory server: %w", err)
	}
	if conn.Caps().MaxTransfer < PageSize {
		conn.Close()
		u.close()
		return nil, fmt.Errorf("%w: transport moves at most %d bytes per operation", ErrUnsupported, conn.Caps().MaxTransfer)
	}
	nslots := opt.Handlers*msgBatch + 1 + evictBatch + opt.PrefetchCache
	stage, err := conn.Fabric().Alloc(nslots*PageSize, 0)
	if err != nil {
		conn.Close()
		u.close()
		return nil, fmt.Errorf("pager: staging memory: %w", err)
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		stage.Close()
		conn.Close()
		u.close()
		return nil, fmt.Errorf("pager: eventfd: %w", err)
	}
	nframes := opt.Budget / PageSize
	p := &Pager{opt: opt, log: opt.Logger, conn: conn, u: u, stage: stage, stop: make(chan struct{}),
		stopfd: stopfd, kick: make(chan struct{}, 1), frames: make([]pageRef, nframes),
		cache: make([]pageRef, opt.PrefetchCache), evictOC: newOpContext(), dropper: newDropper()}
	for h := range opt.Handlers {
		hd, err := newHandler(h, u.fd, stopfd)
		if err != nil {
			p.closeFDs()
			return nil, err
		}
		p.handlers = append(p.handlers, hd)
	}
	p.cond = sync.NewCond(&p.mu)
	p.maxWindow = min(opt.Prefetch, max(nframes/4, minWindow))
	// The evictor wakes below lowWater free frames and frees frames up to highWater: enough
	// for a read-ahead batch to be installed, in few batches of evictions.
	p.lowWater = max(opt.Handlers+1, nframes/16)
	p.highWater = max(p.lowWater, min(nframes/2, p.lowWater+max(opt.Handlers+1, p.maxWindow)))
	for i := nframes - 1; i >= 0; i-- {
		p.free = append(p.free, int32(i))
	}
	if !opt.KeepGOMAXPROCS {
		p.procs = opt.Handlers + 1
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + p.procs)
	}
	for _, h := range p.handlers {
		p.wg.Add(1)
		go p.handle(h)
	}
	p.wg.Add(3)
	go p.evictLoop()
	go p.keepalive()
	go p.watchdog()
	return p, nil
}

// closeFDs releases what New set up: handlers' epoll instances, the staging memory, the
// connection, the userfaultfd and the stop eventfd.
func (p *Pager) closeFDs() error {
	var errs []error
	for _, h := range p.handlers {
		errs = append(errs, unix.Close(h.ep))
	}
	p.dropper.close()
	errs = append(errs, p.stage.Close(), p.conn.Close(), p.u.close(), unix.Close(p.stopfd))
	return errors.Join(errs...)
}

// slot addresses in the staging memory.
func (p *Pager) demandSlot(h, k int) int { return (h*msgBatch + k) * PageSize }
func (p *Pager) zeroSlot() int           { return p.opt.Handlers * msgBatch * PageSize }
func (p *Pager) evictSlot(i int) int     { return (p.opt.Handlers*msgBatch + 1 + i) * PageSize }
func (p *Pager) cacheSlot(i int) int {
	return (p.opt.Handlers*msgBatch + 1 + evictBatch + i) * PageSize
}

func (p *Pager) stageAddr(off int) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p.stage.Bytes()))) + uintptr(off)
}

// Err is why the pager stopped serving faults, or nil.
func (p *Pager) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Stats is a snapshot of the pager's counters.
func (p *Pager) Stats() Stats {
	p.mu.Lock()
	resident := len(p.frames) - len(p.free)
	p.mu.Unlock()
	return Stats{
		Faults: p.c.faults.Load(), MajorFaults: p.c.major.Load(), PrefetchHits: p.c.prefetchHits.Load(),
		ZeroFills: p.c.zero.Load(), WriteFaults: p.c.wp.Load(), RemoteReads: p.c.reads.Load(),
		RemoteWrites: p.c.writes.Load(), Evictions: p.c.evictions.Load(), Prefetched: p.c.prefetched.Load(),
		Resident: resident, Budget: len(p.frames), FaultLatency: p.c.lat.snapshot(),
	}
}

func (p *Pager) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), p.opt.Timeout)
}

// call runs one control request and waits for its reply.
func (p *Pager) call(req request) (reply, error) {
	p.ctrl.Lock()
	defer p.ctrl.Unlock()
	p.reqID++
	req.id = p.reqID
	ctx, cancel := p.ctx()
	defer cancel()
	if err := p.msg(func() error { return p.conn.Send(ctx, req.marshal()) }); err != nil {
		return reply{}, fmt.Errorf("pager: %s request: %w", req.op, err)
	}
	buf := make([]byte, maxReplySize)
	for {
		var n int
		err := p.msg(func() (err error) { n, err = p.conn.Recv(ctx, buf); return err })
		if err != nil {
			return reply{}, fmt.Errorf("pager: %s reply: %w", req.op, err)
		}
		var rep reply
		if err := rep.unmarshal(buf[:n]); err != nil {
			return reply{}, err
		}
		if rep.id != req.id || rep.op != req.op {
			continue // a late reply to a request that timed out
		}
		return rep, rep.status.err(rep.text)
	}
}

func (p *Pager) keepalive() {
	defer p.wg.Done()
	t := time.NewTicker(p.opt.Keepalive)
	defer t.Stop()
	ping := request{op: opPing}.marshal()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		ctx, cancel := p.ctx()
		err := p.msg(func() error { return p.conn.Send(ctx, ping) })
		cancel()
		if err != nil && p.Err() == nil {
			p.log.Warn("pager: keepalive", "err", err)
		}
	}
}

// Map allocates size bytes (a positive multiple of PageSize) of paged memory: a slab of that
// size on the server, and an anonymous mapping of the same size whose faults the pager serves.
func (p *Pager) Map(size int) (*Region, error) {
	if size <= 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("%w: region size %d is not a positive multiple of %d", ErrInvalid, size, PageSize)
	}
	p.mu.Lock()
	closed, failed := p.closed, p.failed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if failed != nil {
		return nil, fmt.Errorf("%w: %w", ErrFailed, failed)
	}
	rep, err := p.call(request{op: opAlloc, arg: uint64(size)})
	if err != nil {
		return nil, fmt.Errorf("pager: map %d bytes: %w", size, err)
	}
	if rep.remote.Len != uint64(size) {
		p.freeSlab(rep.slab)
		return nil, fmt.Errorf("%w: slab of %d bytes for %d asked", ErrProtocol, rep.remote.Len, size)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		p.freeSlab(rep.slab)
		return nil, fmt.Errorf("pager: mmap %d bytes: %w", size, err)
	}
	unix.Madvise(mem, unix.MADV_NOHUGEPAGE) // pages, not 2 MiB folios, are the unit
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if err := p.u.register(base, uintptr(size)); err != nil {
		unix.Munmap(mem)
		p.freeSlab(rep.slab)
		return nil, err
	}
	r := &Region{p: p, mem: mem, base: base, slab: rep.slab, remote: rep.remote,
		pages: make([]page, size/PageSize), win: minWindow}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.u.unregister(base, uintptr(size))
		unix.Munmap(mem)
		return nil, ErrClosed
	}
	p.regions = append(p.regions, r)
	p.mu.Unlock()
	return r, nil
}

func (p *Pager) freeSlab(slab uint64) error {
	if p.Err() != nil {
		return nil // the server is gone or unreachable; it releases slabs on disconnect
	}
	_, err := p.call(request{op: opFree, arg: slab})
	return err
}

// lookupLocked finds the region and page index of addr.
func (p *Pager) lookupLocked(addr uintptr) (*Region, int) {
	for _, r := range p.regions {
		if addr >= r.base && addr < r.base+uintptr(len(r.mem)) {
			return r, int((addr - r.base) / PageSize)
		}
	}
	return nil, 0
}

// fail records why the pager can no longer serve faults and logs it once.
func (p *Pager) fail(what string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == nil {
		p.failed = fmt.Errorf("%s: %w", what, err)
		how := "SIGBUS (UFFDIO_POISON)"
		if !p.u.poison {
			how = "SIGSEGV (the region is made inaccessible; kernel lacks UFFDIO_POISON)"
		}
		p.log.Error("pager: remote memory lost: faults on non-resident pages now raise "+how,
			"why", p.failed)
	}
	p.cond.Broadcast()
}

// Close unmaps every region, releases the slabs, stops the threads and disconnects. Threads
// still touching paged memory afterwards get SIGSEGV. Idempotent.
func (p *Pager) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	regions := append([]*Region(nil), p.regions...)
	p.mu.Unlock()
	var errs []error
	for _, r := range regions {
		errs = append(errs, r.Close())
	}
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.stop)
	var one [8]byte
	one[0] = 1
	unix.Write(p.stopfd, one[:])
	p.wg.Wait()
	if p.Err() == nil {
		// Goodbye is answered: closing right after a one-way message lets an in-process shm
		// peer read the message from memory this side has already unmapped.
		p.call(request{op: opBye})
	}
	errs = append(errs, p.closeFDs())
	if p.procs > 0 {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)-p.procs))
	}
	return errors.Join(errs...)
}
