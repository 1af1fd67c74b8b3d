// Package pager is user-space remote memory paging over RDMA: memory that looks like an
// ordinary []byte to the program but lives on a memory server, with a bounded local cache of
// pages brought in on demand by userfaultfd and RDMA.
//
// # The two sides
//
// A Server (rdmakit pager serve) registers one large pool with its fabric and hands out slabs
// of it on request, within a per-client quota. A client's slabs are released when it frees
// them, says goodbye, disconnects, or stops renewing its lease.
//
// A Pager is the runtime in the application. Pager.Map(size) asks the server for a slab of
// size bytes and returns a Region over an anonymous mapping of the same size, registered with
// a userfaultfd for missing-page and write-protect faults. Page i of the region lives at
// offset i×PageSize of the slab.
//
//   - Fault-handler loops (Options.Handlers) wait in epoll on the userfaultfd; a fault wakes
//     one of them (EPOLLEXCLUSIVE), which reads every pending fault message in one batch.
//   - A fault on a page never written back is served locally with the zero page
//     (UFFDIO_ZEROPAGE; a write fault gets a zeroed copy instead).
//   - The other missing pages of a batch are read by one batch of RDMA READs into registered
//     staging slots and installed with UFFDIO_COPY, which wakes the faulting threads as each
//     page lands. Concurrent faults on one page are served once: the page is claimed (in
//     flight) and every thread waiting on it is woken when it is in place.
//   - Pages come in write-protected (UFFDIO_COPY_MODE_WP), so the first write to a clean page
//     is a write-protect fault that marks it dirty and lifts the protection.
//   - The resident budget (Options.Budget) bounds the mapped pages of all regions. An evictor
//     keeps a reserve of free frames, so that a fault does not wait for an eviction: it wakes
//     on a period, when the reserve runs low and when read-ahead wants frames, and refills
//     the reserve in batches. A CLOCK hand picks victims, dirty victims are write-protected
//     (blocking writers), copied to staging and written back in one batch of RDMA WRITEs,
//     then all victims are dropped with MADV_DONTNEED (one process_madvise call per batch
//     where the kernel allows it) and their waiters woken (they fault the page back). Clean
//     pages are dropped without traffic. User space cannot see accesses to resident pages,
//     so the reference bit is set on page-in and on the first write after a write-back.
//   - Read-ahead follows Leap: when the recent faults of a region share a majority stride,
//     the next pages along it are read in one batch (neighbouring pages by one RDMA READ) and
//     installed at once, so the accesses they serve never fault; the CLOCK hand spares them
//     until the region's faults pass them. One page in the middle of each batch stays in a
//     prefetch cache instead: the fault on it is served without a network wait, shows that
//     the batch is used, and starts the next batch, which doubles the window (up to
//     Options.Prefetch pages, and a quarter of the budget). Stats.HitRate counts these faults
//     and zero-page faults.
//   - Fault handlers touch only the userfaultfd, the staging memory and the pager's tables;
//     the evictor reads paged memory only for resident pages it has write-protected, which
//     cannot fault.
//
// Write-protect faults need Linux 5.7 or later (UFFD_FEATURE_PAGEFAULT_FLAG_WP). Without
// them New fails with ErrUnsupported rather than fall back to soft-dirty bits or treating every
// page as dirty: neither can stop a write that races with the write-back copy, and such a
// write would be lost when the page is dropped.
//
// # Failure
//
// A fault that cannot be served, because the server is gone or Options.Timeout passed, is
// never answered with made-up data. The pager logs why (once) and Pager.Err reports it; the
// page is poisoned with UFFDIO_POISON (Linux 6.6 and later) so the faulting thread, and every
// later access to a non-resident page, gets SIGBUS. Go turns that into a fatal "unexpected
// fault address" crash, or into a recoverable run-time panic in goroutines that called
// debug.SetPanicOnFault(true). On kernels without UFFDIO_POISON the region is made
// inaccessible (PROT_NONE) and the thread gets SIGSEGV instead. Resident pages keep their
// data until the region is closed, but dirty pages can no longer be written back.
//
// # Privilege
//
// userfaultfd needs root or CAP_SYS_PTRACE, read-write access to /dev/userfaultfd, or
// sysctl vm.unprivileged_userfaultfd=1; otherwise New returns an error matching ErrPrivilege
// that says so.
//
// # Go and paged memory
//
// The Go garbage collector never scans a region (it is not Go heap). A goroutine that touches
// a non-resident page blocks inside the kernel while holding its P, so New raises GOMAXPROCS
// by one per fault handler and one for the evictor (Options.KeepGOMAXPROCS opts out) and
// Close lowers it again; if more goroutines fault at once than there are Ps, the handlers
// wait for the runtime's 10 ms preemption. A goroutine blocked in a fault inside runtime assembly (copy, clear,
// bytes.Equal) cannot be stopped by a stop-the-world until the fault is served, and serving
// needs the runtime, so a garbage collection starting then would stall the process: access
// paged memory with indexed loads and stores (as encoding/binary does; not sync/atomic under
// the race detector, whose atomics run in C), or copy in and out
// with Region.ReadAt and Region.WriteAt, which pin each page and fault it in from ordinary
// Go code before copying.
package pager
