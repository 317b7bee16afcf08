package testnet

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// AddNeighbor adds a permanent neighbour (ARP/NDP) entry on a link of the
// namespace, for benchmarks whose far end drops everything, ARP included.
func (ns *Namespace) AddNeighbor(link string, a netip.Addr, mac net.HardwareAddr) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		family := netlink.FAMILY_V4
		if a.Is6() {
			family = netlink.FAMILY_V6
		}
		return h.NeighSet(&netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       family,
			State:        netlink.NUD_PERMANENT,
			IP:           a.AsSlice(),
			HardwareAddr: mac,
		})
	})
}
