package verbs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
)

// LinkType is the kind of software RDMA device AddLink creates.
type LinkType string

// Software RDMA link types.
const (
	// LinkRXE is SoftRoCE (rdma_rxe): RoCEv2 over an Ethernet netdev.
	LinkRXE LinkType = "rxe"
	// LinkSIW is SoftiWARP (siw): iWARP over TCP.
	LinkSIW LinkType = "siw"
)

// AddLink creates the software RDMA device name of type typ on network device netdev, like
// `rdma link add NAME type rxe netdev DEV` (RDMA netlink; needs CAP_NET_ADMIN and the
// rdma_rxe or siw module).
func AddLink(name string, typ LinkType, netdev string) error {
	if name == "" || netdev == "" || (typ != LinkRXE && typ != LinkSIW) {
		return fmt.Errorf("%w: AddLink(%q, %q, %q)", ErrInvalid, name, typ, netdev)
	}
	if err := netlink.RdmaLinkAdd(name, string(typ), netdev); err != nil {
		return fmt.Errorf("verbs: rdma link add %s type %s netdev %s: %w", name, typ, netdev, err)
	}
	return nil
}

// DelLink removes the RDMA device name, like `rdma link delete NAME`.
func DelLink(name string) error {
	if err := netlink.RdmaLinkDel(name); err != nil {
		return fmt.Errorf("verbs: rdma link delete %s: %w", name, err)
	}
	return nil
}

// Link is one RDMA device as the kernel's RDMA netlink lists it.
type Link struct {
	Index    uint32
	Name     string
	NumPorts uint32
	NodeGUID string
	FWVer    string
}

// Links lists the RDMA devices through RDMA netlink (works without libibverbs providers).
func Links() ([]Link, error) {
	ls, err := netlink.RdmaLinkList()
	if err != nil {
		return nil, fmt.Errorf("verbs: rdma link list: %w", err)
	}
	out := make([]Link, 0, len(ls))
	for _, l := range ls {
		out = append(out, Link{Index: l.Attrs.Index, Name: l.Attrs.Name, NumPorts: l.Attrs.NumPorts,
			NodeGUID: l.Attrs.NodeGuid, FWVer: l.Attrs.FirmwareVersion})
	}
	return out, nil
}

// WaitPortActive waits until port 1 of device name exists and is ACTIVE (sysfs), or ctx ends.
func WaitPortActive(ctx context.Context, name string) error {
	path := filepath.Join("/sys/class/infiniband", name, "ports", "1", "state")
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 && (string(b) == "4: ACTIVE\n" || string(b) == "4: ACTIVE") {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("verbs: %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verbs: waiting for %s to be ACTIVE: %w", name, ctxError(ctx))
		case <-t.C:
		}
	}
}
