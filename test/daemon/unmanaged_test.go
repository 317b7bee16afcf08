package daemontest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestUnmanagedVIPServedWhereItLives: a virtual server whose address no
// vrrp_instance manages is served, as keepalived serves it, on the
// interface that holds the address, and stops being served when the
// address goes away. (IPVS serves it always: the test is XDP's.)
func TestUnmanagedVIPServedWhereItLives(t *testing.T) {
	requireXDP(t, "IPVS serves an unmanaged VIP whatever interface holds it")
	r := newRig(t)
	text := `virtual_server 10.60.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.60.0.11 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`
	x := r.startConf(text, nil)
	active := func(want bool) func() error {
		return func() error {
			snap, err := x.status()
			if err != nil {
				return err
			}
			if len(snap.Services) != 1 || snap.Services[0].Active != want {
				return fmt.Errorf("services %+v", snap.Services)
			}
			if want != r.xdpAttached() {
				return fmt.Errorf("XDP attached %v", r.xdpAttached())
			}
			return nil
		}
	}
	// Not on this node yet: not served.
	testnet.Eventually(t, 5*time.Second, "the service known but not served", active(false))
	if err := r.lb.AddAddr("eth0", netip.PrefixFrom(vip, 32)); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 5*time.Second, "the service served once eth0 holds its address", active(true))
	if who, err := r.who(); err != nil || who != "rs1" {
		t.Fatalf("through the VIP: %q, %v", who, err)
	}
	h, err := r.lb.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, _ := netip.AddrFromSlice(a.IP); ip.Unmap() == vip {
			if err := h.AddrDel(l, &a); err != nil {
				t.Fatal(err)
			}
		}
	}
	testnet.Eventually(t, 5*time.Second, "the service not served once the address is gone", active(false))
	snap, err := x.status()
	if err != nil {
		t.Fatal(err)
	}
	if s := snap.Services[0]; len(s.Instances) != 0 || s.Backends[0].State != "up" {
		t.Errorf("service %+v", s)
	}
}
