package pager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
)

// BenchConfig says what Bench measures.
type BenchConfig struct {
	// Server is the address of a running memory server to page against.
	Server string
	// Faults is how many random page faults to time (default 2000); the raw RMA reads and
	// the local baseline run as many.
	Faults int
	// ScanPages is the size of the sequential scan in pages (default 4096, 16 MiB).
	ScanPages int
	// Options for the pager (Budget defaults to 64 pages here, to keep faults frequent).
	Options Options
}

// BenchResult is one transport's row of the benchmark table. Latencies are as seen by the
// touching thread, from the access to its return.
type BenchResult struct {
	Transport string
	// random 4 KiB faults through the pager
	FaultRate float64 // faults per second, one thread
	P50, P99  time.Duration
	// a local userfaultfd handler that copies each page from local memory
	LocalRate          float64
	LocalP50, LocalP99 time.Duration
	// fabric 4 KiB RDMA READ, no paging
	RMAP50, RMAP99 time.Duration
	// sequential scan of ScanPages pages, read-ahead on and off
	ScanPrefetch, ScanNoPrefetch time.Duration
}

// RateRatio is the pager's fault rate over the local baseline's.
func (r BenchResult) RateRatio() float64 { return r.FaultRate / r.LocalRate }

// LatencyRatio is the pager's p50 page-in over one raw 4 KiB RMA read.
func (r BenchResult) LatencyRatio() float64 { return float64(r.P50) / float64(r.RMAP50) }

// PrefetchSpeedup is how much faster a sequential scan runs with read-ahead.
func (r BenchResult) PrefetchSpeedup() float64 {
	return float64(r.ScanNoPrefetch) / float64(r.ScanPrefetch)
}

// WriteBenchTable prints results as a table.
func WriteBenchTable(w io.Writer, rs []BenchResult) {
	fmt.Fprintf(w, "%-10s %11s %9s %9s | %11s %9s %9s | %9s %9s | %9s %9s | %8s %8s %8s\n",
		"transport", "faults/s", "p50", "p99", "local/s", "p50", "p99", "rma p50", "rma p99",
		"scan+pf", "scan", "rate×", "p50/rma", "pf×")
	for _, r := range rs {
		fmt.Fprintf(w, "%-10s %11.0f %9v %9v | %11.0f %9v %9v | %9v %9v | %9v %9v | %8.2f %8.2f %8.2f\n",
			r.Transport, r.FaultRate, r.P50, r.P99, r.LocalRate, r.LocalP50, r.LocalP99, r.RMAP50, r.RMAP99,
			r.ScanPrefetch.Round(time.Millisecond), r.ScanNoPrefetch.Round(time.Millisecond),
			r.RateRatio(), r.LatencyRatio(), r.PrefetchSpeedup())
	}
}

// Bench measures, in one run against cfg.Server: random 4 KiB faults through a pager, the
// same faults served by a local userfaultfd handler, raw 4 KiB RDMA reads on the pager's own
// connection, and a sequential scan with and without read-ahead.
func Bench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	if cfg.Faults <= 0 {
		cfg.Faults = 2000
	}
	if cfg.ScanPages <= 0 {
		cfg.ScanPages = 4096
	}
	if cfg.Options.Budget == 0 {
		cfg.Options.Budget = 64 * PageSize
	}
	res := BenchResult{Transport: cfg.Server}
	if a, err := fabric.ParseAddr(cfg.Server); err == nil {
		res.Transport = a.Provider
	}
	p, err := New(ctx, cfg.Server, cfg.Options)
	if err != nil {
		return res, err
	}
	defer p.Close()
	budget := cfg.Options.Budget / PageSize
	npages := max(16*budget, cfg.ScanPages, 2*cfg.Faults)
	r, err := p.Map(npages * PageSize)
	if err != nil {
		return res, err
	}
	b := r.Bytes()
	for i := 0; i < len(b); i += PageSize { // every page written back once: faults read it
		b[i] = byte(i/PageSize) | 1
	}

	// random faults
	r.SetReadAhead(false)
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	before := p.Stats().Faults
	start := time.Now()
	var sink byte
	for range cfg.Faults {
		i := rng.IntN(npages)
		t0 := time.Now()
		sink += b[i*PageSize]
		h.Record(time.Since(t0))
	}
	el := time.Since(start)
	res.FaultRate = float64(p.Stats().Faults-before) / el.Seconds()
	res.P50, res.P99 = h.Quantile(0.5), h.Quantile(0.99)
	if err := p.Err(); err != nil {
		return res, err
	}

	// raw RMA reads of the same slab on the same connection
	m, err := p.conn.Fabric().Alloc(PageSize, 0)
	if err != nil {
		return res, err
	}
	defer m.Close()
	var rh Histogram
	for range cfg.Faults {
		off := uint64(rng.IntN(npages)) * PageSize
		cctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
		t0 := time.Now()
		err := p.rma(func() error { return p.conn.Read(cctx, m, 0, r.remote, off, PageSize) })
		rh.Record(time.Since(t0))
		cancel()
		if err != nil {
			return res, err
		}
	}
	res.RMAP50, res.RMAP99 = rh.Quantile(0.5), rh.Quantile(0.99)

	// sequential scans, read-ahead off then on, each over pages evicted before
	for _, on := range []bool{false, true} {
		r.SetReadAhead(on)
		p.dropAll(r)
		t0 := time.Now()
		for i := range cfg.ScanPages {
			sink += b[i*PageSize]
		}
		d := time.Since(t0)
		if on {
			res.ScanPrefetch = d
		} else {
			res.ScanNoPrefetch = d
		}
	}
	if err := p.Err(); err != nil {
		return res, err
	}
	runtime.KeepAlive(sink)

	lr, lh, err := localBaseline(cfg.Faults, npages)
	if err != nil {
		return res, err
	}
	res.LocalRate, res.LocalP50, res.LocalP99 = lr, lh.Quantile(0.5), lh.Quantile(0.99)
	return res, nil
}

// dropAll evicts every resident page of r and forgets its read-ahead (benchmarks: start a
// scan cold).
func (p *Pager) dropAll(r *Region) {
	for {
		p.mu.Lock()
		var vs []victim
		for i := range r.pages {
			pg := &r.pages[i]
			if pg.state == stResident && pg.pins == 0 && len(vs) < evictBatch {
				pg.state = stEvicting
				vs = append(vs, victim{r: r, idx: i, dirty: pg.dirty, onServer: pg.onServer})
			}
		}
		for i := range r.pages { // read-ahead pages too
			if pg := &r.pages[i]; pg.state == stCached {
				p.releaseSlotLocked(pg)
				pg.state = stRemote
			}
		}
		r.nhist, r.stride, r.win = 0, 0, minWindow
		p.passAheadLocked(r, 0, 0, false)
		p.mu.Unlock()
		if len(vs) == 0 {
			return
		}
		p.evict(vs)
	}
}

// localBaseline times n random faults on a region of npages pages served by a handler
// thread that copies each page from local memory.
func localBaseline(n, npages int) (float64, Histogram, error) {
	var h Histogram
	u, err := openUffd()
	if err != nil {
		return 0, h, err
	}
	defer u.close()
	size := npages * PageSize
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return 0, h, err
	}
	defer unix.Munmap(mem)
	unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	src, err := unix.Mmap(-1, 0, PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, h, err
	}
	defer unix.Munmap(src)
	src[0] = 1
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if err := u.register(base, uintptr(size)); err != nil {
		return 0, h, err
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, h, err
	}
	defer unix.Close(stopfd)
	done := make(chan error, 1)
	srcAddr := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	go func() {
		runtime.LockOSThread()
		var msg [msgSize]byte
		fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}, {Fd: int32(stopfd), Events: unix.POLLIN}}
		for {
			k, err := unix.Read(u.fd, msg[:])
			if err == unix.EAGAIN {
				unix.Poll(fds, -1)
				if fds[1].Revents != 0 {
					done <- nil
					return
				}
				continue
			}
			if err != nil {
				done <- err
				return
			}
			f, ok := decodeMsg(msg[:k])
			if !ok || f.wp {
				continue
			}
			if err := u.copy(f.addr&^(PageSize-1), srcAddr, PageSize, 0); err != nil && !errors.Is(err, unix.EEXIST) {
				done <- err
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	perm := rng.Perm(npages)[:min(n, npages)]
	var sink byte
	start := time.Now()
	for _, i := range perm {
		t0 := time.Now()
		sink += mem[i*PageSize]
		h.Record(time.Since(t0))
	}
	el := time.Since(start)
	runtime.KeepAlive(sink)
	var one [8]byte
	one[0] = 1
	unix.Write(stopfd, one[:])
	if err := <-done; err != nil {
		return 0, h, err
	}
	u.unregister(base, uintptr(size))
	return float64(len(perm)) / el.Seconds(), h, nil
}
