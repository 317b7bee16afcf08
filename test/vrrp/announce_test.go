package vrrpsuite

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/xkeep/xkeep/vrrp"
)

// TestAnnounceMovesNeighbours: one round of the real announcer (a
// gratuitous ARP and an unsolicited neighbour advertisement) moves a
// neighbour's entries for the VIPs from a MAC nobody has to the
// announcing host's.
func TestAnnounceMovesNeighbours(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.52.0.1")
	c := l.host("c", "10.52.0.3")
	vips := []netip.Addr{netip.MustParseAddr("10.52.0.100"), netip.MustParseAddr("fd00:52::100")}
	for _, p := range []string{"10.52.0.100/24", "fd00:52::100/64"} {
		if err := a.ns.AddAddr("eth0", netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel ignores an ARP update within locktime (1 s) of the
	// entry's last change; c's entries are brand new.
	if err := c.ns.Sysctl("net/ipv4/neigh/eth0/locktime", "0"); err != nil {
		t.Fatal(err)
	}
	nh, err := c.ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	nobody, _ := net.ParseMAC("02:00:00:00:00:99")
	for _, v := range vips {
		if err := nh.NeighAdd(&netlink.Neigh{LinkIndex: c.port.Index, Family: family(v), State: netlink.NUD_STALE,
			IP: v.AsSlice(), HardwareAddr: nobody}); err != nil {
			t.Fatal(err)
		}
		waitNeighbour(t, c, v, nobody.String())
	}

	announcer := &vrrp.LinuxAnnouncer{}
	defer announcer.Close()
	if err := a.ns.Do(func() error { return announcer.Announce("eth0", vips) }); err != nil {
		t.Fatalf("announce: %v", err)
	}
	// An unknown interface is an error, not a panic.
	if err := a.ns.Do(func() error { return announcer.Announce("nosuch0", vips) }); err == nil {
		t.Error("announce on an interface that does not exist: no error")
	}
	for _, v := range vips {
		waitNeighbour(t, c, v, a.port.MAC.String())
	}
}
