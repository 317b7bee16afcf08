package testnet

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestAddNeighborIsPermanent(t *testing.T) {
	a := NewNamespace(t, "a")
	b := NewNamespace(t, "b")
	VethPair(t, a, "eth0", b, "eth0", netip.MustParsePrefix("10.9.2.1/24"))
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x42}
	if err := a.AddNeighbor("eth0", netip.MustParseAddr("10.9.2.2"), mac); err != nil {
		t.Fatal(err)
	}
	h, err := a.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	neighs, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(net.ParseIP("10.9.2.2")) {
			if n.HardwareAddr.String() != mac.String() || n.State != netlink.NUD_PERMANENT {
				t.Fatalf("neighbour %v state %#x, want %v permanent", n.HardwareAddr, n.State, mac)
			}
			return
		}
	}
	t.Fatalf("no neighbour entry for 10.9.2.2 in %v", neighs)
}
