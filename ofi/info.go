package ofi

/*
#include "helpers.h"

static inline int rk_getinfo(const char *node, const char *service, uint64_t flags,
			     struct fi_info *hints, struct fi_info **out) {
	return fi_getinfo(FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION), node, service, flags,
			  hints, out);
}
static inline void rk_hint_prov(struct fi_info *h, const char *name) {
	free(h->fabric_attr->prov_name);
	h->fabric_attr->prov_name = name ? strdup(name) : NULL;
}
static inline void rk_hint_domain(struct fi_info *h, const char *name) {
	free(h->domain_attr->name);
	h->domain_attr->name = name ? strdup(name) : NULL;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// Hints narrows GetInfo (the fi_info hints of fi_getinfo). Zero fields mean "any".
type Hints struct {
	Caps      Caps
	Mode      uint64 // modes the application supports (FI_CONTEXT, ...); 0 = none
	EPType    EPType
	Provider  string // e.g. "tcp;ofi_rxm", "shm", "sockets"
	Domain    string
	MRMode    MRMode // bits the application can handle; 0 = MRModeSupported
	Progress  Progress
	Threading Threading
	// TxSize and RxSize ask for queue depths (0 = provider default).
	TxSize, RxSize int
	// TxOpFlags are default flags of transmit operations, e.g. DeliveryComplete.
	TxOpFlags uint64
}

// DeliveryComplete (FI_DELIVERY_COMPLETE) as a TxOpFlags bit: an operation completes only
// once its data is visible at the target, the RDMA-write semantics applications expect.
const DeliveryComplete = uint64(C.FI_DELIVERY_COMPLETE)

// Info is one fi_info entry: a provider, fabric, domain and endpoint configuration. It owns
// a private copy of the C structure, released when Info becomes unreachable.
type Info struct {
	c *C.struct_fi_info
}

// GetInfo calls fi_getinfo. node and service name an address ("127.0.0.1", "7471"); with source
// true they are the local address to bind (FI_SOURCE), otherwise the peer to reach. Either may
// be empty.
func GetInfo(node, service string, source bool, hints *Hints) ([]*Info, error) {
	h := C.fi_allocinfo()
	if h == nil {
		return nil, ErrNoMem
	}
	defer C.fi_freeinfo(h)
	if hints == nil {
		hints = &Hints{}
	}
	h.caps = C.uint64_t(hints.Caps)
	h.mode = C.uint64_t(hints.Mode)
	h.ep_attr._type = C.enum_fi_ep_type(hints.EPType)
	mr := hints.MRMode
	if mr == 0 {
		mr = MRModeSupported
	}
	h.domain_attr.mr_mode = C.int(mr)
	h.domain_attr.data_progress = C.enum_fi_progress(hints.Progress)
	h.domain_attr.control_progress = C.enum_fi_progress(hints.Progress)
	h.domain_attr.threading = C.enum_fi_threading(hints.Threading)
	h.tx_attr.size = C.size_t(hints.TxSize)
	h.tx_attr.op_flags = C.uint64_t(hints.TxOpFlags)
	h.rx_attr.size = C.size_t(hints.RxSize)
	if hints.Provider != "" {
		s := C.CString(hints.Provider)
		C.rk_hint_prov(h, s)
		C.free(unsafe.Pointer(s))
	}
	if hints.Domain != "" {
		s := C.CString(hints.Domain)
		C.rk_hint_domain(h, s)
		C.free(unsafe.Pointer(s))
	}
	var cnode, cservice *C.char
	if node != "" {
		cnode = C.CString(node)
		defer C.free(unsafe.Pointer(cnode))
	}
	if service != "" {
		cservice = C.CString(service)
		defer C.free(unsafe.Pointer(cservice))
	}
	var flags C.uint64_t
	if source && (node != "" || service != "") {
		flags = C.FI_SOURCE
	}
	var list *C.struct_fi_info
	if rc := C.rk_getinfo(cnode, cservice, flags, h, &list); rc != 0 {
		err := fiErr("fi_getinfo", C.ssize_t(rc))
		return nil, fmt.Errorf("provider %q node %q service %q: %w", hints.Provider, node, service, err)
	}
	defer C.fi_freeinfo(list)
	var out []*Info
	for p := list; p != nil; p = p.next {
		out = append(out, dupInfo(p))
	}
	return out, nil
}

func dupInfo(p *C.struct_fi_info) *Info {
	d := C.fi_dupinfo(p)
	if d == nil {
		panic("ofi: fi_dupinfo out of memory")
	}
	d.next = nil
	i := &Info{c: d}
	runtime.AddCleanup(i, func(c *C.struct_fi_info) { C.fi_freeinfo(c) }, d)
	return i
}

// Provider is the provider name, e.g. "tcp;ofi_rxm".
func (i *Info) Provider() string { return C.GoString(i.c.fabric_attr.prov_name) }

// FabricName is the fabric's name, e.g. "127.0.0.0/8".
func (i *Info) FabricName() string { return C.GoString(i.c.fabric_attr.name) }

// DomainName is the domain's name, e.g. "lo".
func (i *Info) DomainName() string { return C.GoString(i.c.domain_attr.name) }

// Caps is the capability set the provider grants.
func (i *Info) Caps() Caps { return Caps(i.c.caps) }

// Mode is the set of modes the provider requires of the application.
func (i *Info) Mode() uint64 { return uint64(i.c.mode) }

// EPType is the endpoint type.
func (i *Info) EPType() EPType { return EPType(i.c.ep_attr._type) }

// MRMode is the set of memory registration modes the provider requires.
func (i *Info) MRMode() MRMode { return MRMode(i.c.domain_attr.mr_mode) }

// DataProgress is the domain's data progress model.
func (i *Info) DataProgress() Progress { return Progress(i.c.domain_attr.data_progress) }

// ControlProgress is the domain's control progress model.
func (i *Info) ControlProgress() Progress { return Progress(i.c.domain_attr.control_progress) }

// Threading is the domain's threading model.
func (i *Info) Threading() Threading { return Threading(i.c.domain_attr.threading) }

// MaxMsgSize is the largest message or RMA transfer of one operation.
func (i *Info) MaxMsgSize() uint64 { return uint64(i.c.ep_attr.max_msg_size) }

// InjectSize is the largest payload of an inject operation.
func (i *Info) InjectSize() int { return int(i.c.tx_attr.inject_size) }

// MRKeySize is the size of remote keys in bytes.
func (i *Info) MRKeySize() int { return int(i.c.domain_attr.mr_key_size) }

// TxOpFlags are the default transmit operation flags.
func (i *Info) TxOpFlags() uint64 { return uint64(i.c.tx_attr.op_flags) }

// TxSize is the transmit queue depth.
func (i *Info) TxSize() int { return int(i.c.tx_attr.size) }

// RxSize is the receive queue depth.
func (i *Info) RxSize() int { return int(i.c.rx_attr.size) }

// CQDataSize is the number of bytes of remote CQ data an operation may carry.
func (i *Info) CQDataSize() int { return int(i.c.domain_attr.cq_data_size) }

// IOVLimit is the most local buffers one vectored operation may name.
func (i *Info) IOVLimit() int { return int(i.c.tx_attr.iov_limit) }

// RMAIOVLimit is the most remote segments one vectored RMA may name.
func (i *Info) RMAIOVLimit() int { return int(i.c.tx_attr.rma_iov_limit) }

// SrcAddr is the local address in the provider's format, nil if none.
func (i *Info) SrcAddr() []byte { return C.GoBytes(i.c.src_addr, C.int(i.c.src_addrlen)) }

// DestAddr is the peer address in the provider's format, nil if none.
func (i *Info) DestAddr() []byte { return C.GoBytes(i.c.dest_addr, C.int(i.c.dest_addrlen)) }

// Summary is a one-line description like `fi_info`'s listing.
func (i *Info) Summary() string {
	return fmt.Sprintf("%-14s %-12s %-8s fabric=%s domain=%s caps=%s mr_mode=[%s] progress=%s/%s",
		i.Provider(), i.EPType(), i.Threading(), i.FabricName(), i.DomainName(), i.Caps(),
		i.MRMode(), i.ControlProgress(), i.DataProgress())
}

// String is libfabric's full rendering (fi_tostr FI_TYPE_INFO), as `fi_info -v` prints it.
func (i *Info) String() string {
	s := C.GoString(C.fi_tostr(unsafe.Pointer(i.c), C.FI_TYPE_INFO))
	return strings.TrimSpace(s)
}

// Version is the libfabric library version, e.g. "1.17".
func Version() string {
	v := C.fi_version()
	return fmt.Sprintf("%d.%d", v>>16, v&0xffff)
}
