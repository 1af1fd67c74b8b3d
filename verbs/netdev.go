package verbs

import (
	"fmt"
	"sort"

	"github.com/Mellanox/rdmamap"
	"github.com/vishvananda/netlink"
)

// Netdevs returns the network devices (e.g. "veth0") the RDMA device rdmaDev is bound to,
// using the sysfs GID attributes through rdmamap.
func Netdevs(rdmaDev string) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("verbs: list network devices: %w", err)
	}
	var out []string
	for _, l := range links {
		name := l.Attrs().Name
		if d, err := rdmamap.GetRdmaDeviceForNetdevice(name); err == nil && d == rdmaDev {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// DeviceForNetdev returns the RDMA device bound to the network device netdev.
func DeviceForNetdev(netdev string) (string, error) {
	d, err := rdmamap.GetRdmaDeviceForNetdevice(netdev)
	if err != nil || d == "" {
		return "", fmt.Errorf("%w: none on network device %s (%v)", ErrNoDevice, netdev, err)
	}
	return d, nil
}
