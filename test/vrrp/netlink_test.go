package vrrpsuite

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/vrrp"
)

// TestNetlinkAddrs adds and removes VIPs with vrrp.NetlinkAddrs (its
// requests encoded once, then only sent) in a namespace: label, scope,
// IPv4 broadcast and IPv6 without duplicate address detection, as `ip
// addr add` would; adding twice and removing an absent address are no
// errors; an interface deleted and created again (another index) is
// found again.
func TestNetlinkAddrs(t *testing.T) {
	l := newLab(t)
	h := l.host("a", "10.90.0.1")
	// Its own subnet: the kernel refuses a secondary address whose scope
	// differs from the primary's.
	v4 := vrrp.VIP{Prefix: netip.MustParsePrefix("10.91.0.100/24"), Label: "eth0:vip", Scope: 253}
	v6 := vrrp.VIP{Prefix: netip.MustParsePrefix("2001:db8:90::100/64")}
	addrs := &vrrp.NetlinkAddrs{}
	list := func() []netlink.Addr {
		t.Helper()
		nh, err := h.ns.Netlink()
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		link, err := nh.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		as, err := nh.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	find := func(p netip.Prefix) *netlink.Addr {
		for _, a := range list() {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
				ones, _ := a.Mask.Size()
				if ones != p.Bits() {
					t.Fatalf("%s has prefix length %d", p, ones)
				}
				return &a
			}
		}
		return nil
	}
	do := func(fn func() error) {
		t.Helper()
		if err := h.ns.Do(fn); err != nil {
			t.Fatal(err)
		}
	}

	do(func() error {
		addrs.PrepareVIP(v4, "eth0")
		for range 2 {
			if err := addrs.AddVIP(v4, "eth0"); err != nil {
				return err
			}
			if err := addrs.AddVIP(v6, "eth0"); err != nil {
				return err
			}
		}
		return nil
	})
	a4, a6 := find(v4.Prefix), find(v6.Prefix)
	if a4 == nil || a6 == nil {
		t.Fatalf("addresses after AddVIP: %v", list())
	}
	if a4.Label != "eth0:vip" || a4.Scope != 253 || a4.Broadcast.String() != "10.91.0.255" {
		t.Fatalf("IPv4 VIP: label %q scope %d broadcast %v", a4.Label, a4.Scope, a4.Broadcast)
	}
	if a6.Flags&unix.IFA_F_NODAD == 0 {
		t.Fatalf("IPv6 VIP flags %#x: want nodad", a6.Flags)
	}

	do(func() error {
		for range 2 {
			if err := addrs.RemoveVIP(v4, "eth0"); err != nil {
				return err
			}
			if err := addrs.RemoveVIP(v6, "eth0"); err != nil {
				return err
			}
		}
		return addrs.RemoveVIP(vrrp.VIP{Prefix: netip.MustParsePrefix("10.90.0.101/32")}, "nosuch0")
	})
	if find(v4.Prefix) != nil || find(v6.Prefix) != nil {
		t.Fatalf("addresses after RemoveVIP: %v", list())
	}

	// eth0 goes and comes back with another index: the cached requests
	// name the old one.
	nh, err := h.ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	old, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkDel(old); err != nil {
		t.Fatal(err)
	}
	port := l.seg.Attach(h.ns, "eth0", netip.MustParsePrefix("10.90.0.1/24"))
	if port.Index == old.Attrs().Index {
		t.Fatalf("the new eth0 has the old index %d", port.Index)
	}
	do(func() error { return addrs.AddVIP(v4, "eth0") })
	if find(v4.Prefix) == nil {
		t.Fatalf("addresses on the new eth0: %v", list())
	}
	do(func() error {
		err := addrs.AddVIP(v4, "nosuch0")
		if err == nil {
			t.Error("AddVIP on a missing interface succeeded")
		}
		return nil
	})
}
