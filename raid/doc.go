// Package raid is a RAID volume whose data moves by direct memory access: a host registers its
// buffer and sends the controller a request with the buffer's remote descriptor; the storage
// targets pull their chunks straight from host memory with RDMA READ (writes) and put them
// straight into host memory with RDMA WRITE (reads). The controller never forwards data: it
// reads host data only to compute parity, which the parity members then pull from the
// controller's memory.
//
// Three roles, each usable in-process or as a process of its own (rdmakit raid ...):
//
//   - Target serves one member: a file-backed store with a superblock, executing the
//     controller's commands and making writes durable (fdatasync, shared by concurrent
//     commands) before completing them. On providers that register memory without pinning it
//     (libfabric tcp, sockets, shm) the store's data area is mapped and registered, so pulled
//     data lands in the page cache and pushed data leaves from it with no copy in between;
//     elsewhere (verbs) it is staged through registered buffers with pread and pwrite.
//   - Controller owns the volume: RAID 0, 1, 5, 6 or general k+m Reed-Solomon, rotating parity,
//     a command queue per member, full-stripe writes whose data members pull from the host while
//     the controller computes parity, partial-stripe read-modify-write or reconstruct-write, a
//     write-intent log for crash resync, degraded reads and rebuild onto a replacement.
//   - Client is the host library: Write and Read move data between registered host memory and
//     the volume; WriteAt and ReadAt stage through an internal buffer.
//
// Counters prove the data path: Status reports bytes the targets pulled from and pushed to host
// memory, bytes the controller read for parity, and the data bytes the controller sent to
// targets, which is zero unless a request explicitly asks for the through-controller path.
package raid
