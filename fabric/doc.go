// Package fabric is rdmakit's transport-neutral RDMA API: register memory, dial and listen,
// and on a connection read, write, send, receive and run 64-bit atomics, one at a time or in
// batches. Every capability package is written against it, so the same code runs over
// libfabric's tcp, sockets and shm providers on a laptop and over verbs on a ConnectX.
//
// A backend is chosen by the address scheme:
//
//	ofi+tcp://127.0.0.1:7471     libfabric tcp;ofi_rxm (RDM; ?ep=msg for plain tcp MSG)
//	ofi+sockets://127.0.0.1:7471 libfabric sockets
//	ofi+shm://name               libfabric shm (same host)
//	ofi+verbs://10.0.0.1:7471    libfabric verbs;ofi_rxm (?ep=msg for verbs MSG)
//	verbs://10.0.0.1:7471        rdma-core verbs, RC queue pairs through rdma_cm
//
// Memory handed to a fabric is allocated off the Go heap (Fabric.Alloc) and registered with
// the backend; a Remote descriptor {addr, key, len} of it is sent to peers, which then target
// it by offset. Provider details such as offset versus virtual addressing, local descriptors
// and provider-chosen keys are handled inside.
package fabric
