package verbs

/*
#include "shim.h"

static int rk_query_device(struct ibv_context *c, struct ibv_device_attr_ex *a, int *extended) {
	memset(a, 0, sizeof(*a));
	int rc = ibv_query_device_ex(c, NULL, a);
	if (rc == 0) {
		*extended = 1;
		return 0;
	}
	*extended = 0;
	return ibv_query_device(c, &a->orig_attr);
}

static int rk_query_port(struct ibv_context *c, uint8_t port, struct ibv_port_attr *a) {
	return ibv_query_port(c, port, a);
}

static ssize_t rk_query_gid_table(struct ibv_context *c, struct ibv_gid_entry *e, size_t n) {
	return ibv_query_gid_table(c, e, n, 0);
}

static struct ibv_device *rk_dev_at(struct ibv_device **l, int i) { return l[i]; }
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"
)

// DeviceInfo names one RDMA device as listed by ibv_get_device_list.
type DeviceInfo struct {
	Name string
	// GUID is the node GUID, formatted like ibv_devices (xxxx:xxxx:xxxx:xxxx).
	GUID string
	// NodeType is "CA", "RNIC", ... (ibv_node_type_str).
	NodeType string
}

// Devices lists the RDMA devices of the host. On a host without RDMA support it returns an
// empty list and no error.
func Devices() ([]DeviceInfo, error) {
	if err := ensureForkSafe(); err != nil {
		return nil, err
	}
	var n C.int
	list, err := C.ibv_get_device_list(&n)
	if list == nil {
		e := errnoOf(-1, err)
		if e == syscall.ENOSYS || e == syscall.ENODEV || e == syscall.ENOENT {
			return []DeviceInfo{}, nil
		}
		return nil, callError("ibv_get_device_list", e)
	}
	defer C.ibv_free_device_list(list)
	out := make([]DeviceInfo, 0, int(n))
	for i := 0; i < int(n); i++ {
		d := C.rk_dev_at(list, C.int(i))
		out = append(out, DeviceInfo{
			Name:     C.GoString(C.ibv_get_device_name(d)),
			GUID:     formatGUID(uint64(C.ibv_get_device_guid(d))),
			NodeType: C.GoString(C.ibv_node_type_str(d.node_type)),
		})
	}
	return out, nil
}

// formatGUID formats a big-endian GUID as read from memory.
func formatGUID(be uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], be) // memory order == network order
	return fmt.Sprintf("%02x%02x:%02x%02x:%02x%02x:%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7])
}

// Context is an open RDMA device (struct ibv_context). It is the root of every other object:
// Close releases everything created from it, newest first.
//
// The context is the process's own (ibv_open_device), so Close really releases the device;
// rdma_cm connections (Dial, Listener) create their QPs on it and drive the QP state machine
// from the rdma_cm's attributes (rdma_init_qp_attr).
type Context struct {
	g     guard
	name  string
	ctx   *C.struct_ibv_context
	kids  children
	attr  DeviceAttr
	async *asyncReader
}

// Open opens the RDMA device called name (e.g. "rxe0", "mlx5_0").
func Open(name string) (*Context, error) {
	if err := ensureForkSafe(); err != nil {
		return nil, err
	}
	c := &Context{name: name}
	var dn C.int
	dl, err := C.ibv_get_device_list(&dn)
	if dl == nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoDevice, name, errnoOf(-1, err))
	}
	defer C.ibv_free_device_list(dl)
	for i := 0; i < int(dn); i++ {
		d := C.rk_dev_at(dl, C.int(i))
		if C.GoString(C.ibv_get_device_name(d)) == name {
			x, err := C.ibv_open_device(d)
			if x == nil {
				return nil, callError("ibv_open_device "+name, errnoOf(-1, err))
			}
			c.ctx = x
			break
		}
	}
	if c.ctx == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoDevice, name)
	}
	attr, err := c.queryDevice()
	if err != nil {
		c.release()
		return nil, err
	}
	c.attr = attr
	if c.async, err = startAsync(c.ctx); err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

func (c *Context) release() { C.ibv_close_device(c.ctx) }

// Name returns the device name.
func (c *Context) Name() string { return c.name }

// Close releases every object created from the context (newest first: QPs and connections,
// then CQs, channels, MRs, PDs) and then the context itself. It is idempotent.
func (c *Context) Close() error {
	if c.g.isClosed() {
		return nil
	}
	if err := c.kids.closeAll(); err != nil {
		return err
	}
	return c.g.shut(func() error {
		c.async.stop()
		c.release()
		return nil
	})
}

// DeviceAttr holds the device capabilities (struct ibv_device_attr(_ex)).
type DeviceAttr struct {
	FWVer           string
	NodeGUID        string
	SysImageGUID    string
	MaxMRSize       uint64
	PageSizeCap     uint64
	VendorID        uint32
	VendorPartID    uint32
	HWVer           uint32
	MaxQP           int
	MaxQPWR         int
	DeviceCapFlags  uint32
	MaxSGE          int
	MaxCQ           int
	MaxCQE          int
	MaxMR           int
	MaxPD           int
	MaxQPRdAtom     int // outstanding RDMA reads/atomics a QP can serve (responder_resources)
	MaxQPInitRdAtom int // outstanding RDMA reads/atomics a QP can issue (initiator_depth)
	AtomicCap       int // enum ibv_atomic_cap: 0 none, 1 HCA, 2 global
	MaxAH           int
	MaxSRQ          int
	MaxSRQWR        int
	MaxSRQSGE       int
	MaxPKeys        int
	PhysPortCnt     int
	// Extended reports that ibv_query_device_ex answered (the ODP fields are valid).
	Extended bool
	// ODPGeneralCaps is odp_caps.general_caps (IBV_ODP_SUPPORT = 1, IMPLICIT = 2).
	ODPGeneralCaps uint64
	// ODPRCCaps is odp_caps.per_transport_caps.rc_odp_caps (send 1, recv 2, write 4, read 8,
	// atomic 16).
	ODPRCCaps uint32
}

// ODP reports whether the device supports on-demand paging for RC send, receive, write and
// read.
func (a DeviceAttr) ODP() bool {
	const need = C.IBV_ODP_SUPPORT_SEND | C.IBV_ODP_SUPPORT_RECV | C.IBV_ODP_SUPPORT_WRITE | C.IBV_ODP_SUPPORT_READ
	return a.ODPGeneralCaps&C.IBV_ODP_SUPPORT != 0 && a.ODPRCCaps&need == need
}

func (c *Context) queryDevice() (DeviceAttr, error) {
	var a C.struct_ibv_device_attr_ex
	var ext C.int
	if rc := C.rk_query_device(c.ctx, &a, &ext); rc != 0 {
		return DeviceAttr{}, callError("ibv_query_device", syscall.Errno(rc))
	}
	o := &a.orig_attr
	return DeviceAttr{
		FWVer:           C.GoString(&o.fw_ver[0]),
		NodeGUID:        formatGUID(uint64(o.node_guid)),
		SysImageGUID:    formatGUID(uint64(o.sys_image_guid)),
		MaxMRSize:       uint64(o.max_mr_size),
		PageSizeCap:     uint64(o.page_size_cap),
		VendorID:        uint32(o.vendor_id),
		VendorPartID:    uint32(o.vendor_part_id),
		HWVer:           uint32(o.hw_ver),
		MaxQP:           int(o.max_qp),
		MaxQPWR:         int(o.max_qp_wr),
		DeviceCapFlags:  uint32(o.device_cap_flags),
		MaxSGE:          int(o.max_sge),
		MaxCQ:           int(o.max_cq),
		MaxCQE:          int(o.max_cqe),
		MaxMR:           int(o.max_mr),
		MaxPD:           int(o.max_pd),
		MaxQPRdAtom:     int(o.max_qp_rd_atom),
		MaxQPInitRdAtom: int(o.max_qp_init_rd_atom),
		AtomicCap:       int(o.atomic_cap),
		MaxAH:           int(o.max_ah),
		MaxSRQ:          int(o.max_srq),
		MaxSRQWR:        int(o.max_srq_wr),
		MaxSRQSGE:       int(o.max_srq_sge),
		MaxPKeys:        int(o.max_pkeys),
		PhysPortCnt:     int(o.phys_port_cnt),
		Extended:        ext != 0,
		ODPGeneralCaps:  uint64(a.odp_caps.general_caps),
		ODPRCCaps:       uint32(a.odp_caps.per_transport_caps.rc_odp_caps),
	}, nil
}

// Attr returns the device attributes read at Open.
func (c *Context) Attr() DeviceAttr { return c.attr }

// QueryDevice queries the device attributes again.
func (c *Context) QueryDevice() (DeviceAttr, error) {
	if err := c.g.enter(); err != nil {
		return DeviceAttr{}, err
	}
	defer c.g.leave()
	return c.queryDevice()
}

// PortState is enum ibv_port_state.
type PortState int

// Port states.
const (
	PortDown   PortState = C.IBV_PORT_DOWN
	PortInit   PortState = C.IBV_PORT_INIT
	PortArmed  PortState = C.IBV_PORT_ARMED
	PortActive PortState = C.IBV_PORT_ACTIVE
)

func (s PortState) String() string { return C.GoString(C.ibv_port_state_str(uint32(s))) }

// MTU is enum ibv_mtu (1: 256 ... 5: 4096).
type MTU int

// Bytes returns the MTU in bytes.
func (m MTU) Bytes() int {
	if m < 1 || m > 5 {
		return 0
	}
	return 128 << int(m)
}

// PortAttr holds a port's attributes (struct ibv_port_attr).
type PortAttr struct {
	Port        int
	State       PortState
	MaxMTU      MTU
	ActiveMTU   MTU
	GIDTblLen   int
	LID         uint16
	LinkLayer   string // "InfiniBand", "Ethernet" or "Unspecified"
	ActiveWidth uint8
	ActiveSpeed uint8
	MaxMsgSize  uint32
}

// QueryPort queries port (1-based).
func (c *Context) QueryPort(port int) (PortAttr, error) {
	if err := c.g.enter(); err != nil {
		return PortAttr{}, err
	}
	defer c.g.leave()
	if port < 1 || port > c.attr.PhysPortCnt {
		return PortAttr{}, fmt.Errorf("%w: port %d of %s (it has %d)", ErrInvalid, port, c.name, c.attr.PhysPortCnt)
	}
	var a C.struct_ibv_port_attr
	if rc := C.rk_query_port(c.ctx, C.uint8_t(port), &a); rc != 0 {
		return PortAttr{}, callError("ibv_query_port", syscall.Errno(rc))
	}
	ll := "Unspecified"
	switch a.link_layer {
	case C.IBV_LINK_LAYER_INFINIBAND:
		ll = "InfiniBand"
	case C.IBV_LINK_LAYER_ETHERNET:
		ll = "Ethernet"
	}
	return PortAttr{
		Port: port, State: PortState(a.state), MaxMTU: MTU(a.max_mtu), ActiveMTU: MTU(a.active_mtu),
		GIDTblLen: int(a.gid_tbl_len), LID: uint16(a.lid), LinkLayer: ll,
		ActiveWidth: uint8(a.active_width), ActiveSpeed: uint8(a.active_speed), MaxMsgSize: uint32(a.max_msg_sz),
	}, nil
}

// GIDType is the type of a GID table entry.
type GIDType int

// GID types.
const (
	GIDTypeIB     GIDType = C.IBV_GID_TYPE_IB
	GIDTypeRoCEv1 GIDType = C.IBV_GID_TYPE_ROCE_V1
	GIDTypeRoCEv2 GIDType = C.IBV_GID_TYPE_ROCE_V2
)

func (t GIDType) String() string {
	switch t {
	case GIDTypeIB:
		return "IB"
	case GIDTypeRoCEv1:
		return "RoCEv1"
	case GIDTypeRoCEv2:
		return "RoCEv2"
	}
	return fmt.Sprintf("GIDType(%d)", int(t))
}

// GID is one valid GID table entry (struct ibv_gid_entry).
type GID struct {
	Port  int
	Index int
	Type  GIDType
	GID   [16]byte
	// Netdev is the name of the network device the GID belongs to ("" for IB).
	Netdev string
}

// IP returns the GID as an IP address (IPv4-mapped GIDs come back as 4-byte IPv4).
func (g GID) IP() net.IP {
	ip := net.IP(append([]byte(nil), g.GID[:]...))
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// GIDs returns the valid GID table entries of all ports (ibv_query_gid_table).
func (c *Context) GIDs() ([]GID, error) {
	if err := c.g.enter(); err != nil {
		return nil, err
	}
	defer c.g.leave()
	max := 0
	for p := 1; p <= c.attr.PhysPortCnt; p++ {
		var a C.struct_ibv_port_attr
		if rc := C.rk_query_port(c.ctx, C.uint8_t(p), &a); rc != 0 {
			return nil, callError("ibv_query_port", syscall.Errno(rc))
		}
		max += int(a.gid_tbl_len)
	}
	if max == 0 {
		return nil, nil
	}
	ents := (*C.struct_ibv_gid_entry)(C.calloc(C.size_t(max), C.sizeof_struct_ibv_gid_entry))
	if ents == nil {
		return nil, callError("calloc", syscall.ENOMEM)
	}
	defer C.free(unsafe.Pointer(ents))
	n, err := C.rk_query_gid_table(c.ctx, ents, C.size_t(max))
	if n < 0 {
		return nil, callError("ibv_query_gid_table", errnoOf(C.int(n), err))
	}
	out := make([]GID, 0, int(n))
	for _, e := range unsafe.Slice(ents, int(n)) {
		g := GID{Port: int(e.port_num), Index: int(e.gid_index), Type: GIDType(e.gid_type)}
		copy(g.GID[:], C.GoBytes(unsafe.Pointer(&e.gid), 16))
		if e.ndev_ifindex != 0 {
			if ifc, err := net.InterfaceByIndex(int(e.ndev_ifindex)); err == nil {
				g.Netdev = ifc.Name
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// FindGID returns the first GID of port whose type is typ and whose address is ip (any
// address when ip is nil).
func (c *Context) FindGID(port int, typ GIDType, ip net.IP) (GID, error) {
	gids, err := c.GIDs()
	if err != nil {
		return GID{}, err
	}
	for _, g := range gids {
		if g.Port == port && g.Type == typ && (ip == nil || g.IP().Equal(ip)) {
			return g, nil
		}
	}
	return GID{}, fmt.Errorf("%w: no %s GID for %v on %s port %d", ErrNoDevice, typ, ip, c.name, port)
}
