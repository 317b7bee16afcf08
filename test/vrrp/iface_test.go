package vrrpsuite

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// lateConf is a VRRPv3 instance at 100 ms on ifname.
func lateConf(name, ifname string, vrid, prio int, vip string) string {
	return fmt.Sprintf(`vrrp_instance %s {
    state BACKUP
    interface %s
    virtual_router_id %d
    priority %d
    advert_int 0.1
    version 3
    virtual_ipaddress {
        %s/24
    }
}
`, name, ifname, vrid, prio, vip)
}

var stateChangeRE = regexp.MustCompile(`msg="state change".* instance=(\S+) from=(\S+) to=(\S+)`)

// transitions lists an instance's state changes in a daemon's log.
func (d *daemon) transitions(instance string) []string {
	var out []string
	for _, m := range stateChangeRE.FindAllStringSubmatch(d.log.String(), -1) {
		if m[1] == instance {
			out = append(out, m[2]+"->"+m[3])
		}
	}
	return out
}

func (d *daemon) waitTransition(limit time.Duration, instance, want string) {
	d.t.Helper()
	testnet.Eventually(d.t, limit, fmt.Sprintf("%s %s on %s", instance, want, d.host.name), func() error {
		got := d.transitions(instance)
		if len(got) == 0 || got[len(got)-1] != want {
			return fmt.Errorf("transitions %v", got)
		}
		return nil
	})
}

// TestInterfaceAppearsLater starts xkeep with an instance on an interface
// that does not exist yet: it waits in FAULT (xkeep keeps running), runs
// once the veth is created (hearing the peer's master on its new socket,
// then taking over when the peer stops), goes to FAULT when the veth is
// deleted and runs again when it is created anew. The instance on the
// other interface never changes state.
func TestInterfaceAppearsLater(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.80.0.1")
	b := l.host("b", "10.80.0.2")
	late := testnet.NewSegment(t)
	late.Attach(b.ns, "eth1", netip.MustParsePrefix("10.81.0.2/24"))
	vip1, vip2 := netip.MustParseAddr("10.80.0.100"), netip.MustParseAddr("10.81.0.100")

	xa := a.startXkeep(lateConf("VI_1", "eth0", 51, 150, vip1.String()) + lateConf("VI_2", "late0", 52, 100, vip2.String()))
	xb := b.startXkeep(lateConf("VI_2", "eth1", 52, 200, vip2.String()))
	waitVIP(t, 5*time.Second, vip1, a)
	waitVIP(t, 5*time.Second, vip2, b)
	xa.waitTransition(5*time.Second, "VI_2", "INIT->FAULT")
	if !strings.Contains(xa.log.String(), "interface missing") {
		t.Fatalf("no word of the missing interface in the log")
	}

	attach := func() {
		late.Attach(a.ns, "late0", netip.MustParsePrefix("10.81.0.1/24"))
	}
	detach := func() {
		nh, err := a.ns.Netlink()
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		link, err := nh.LinkByName("late0")
		if err == nil {
			err = nh.LinkDel(link)
		}
		if err != nil {
			t.Fatalf("delete late0: %v", err)
		}
	}

	// late0 appears: VI_2 hears b's adverts on its new socket and stays
	// backup for many of its Master_Down_Intervals (361 ms).
	attach()
	xa.waitTransition(5*time.Second, "VI_2", "FAULT->BACKUP")
	heard := func() uint64 {
		snap, _ := a.status()
		for _, in := range snap.Instances {
			if in.Name == "VI_2" {
				return in.Counters.AdvertsReceived
			}
		}
		t.Fatalf("no VI_2 in a's status")
		return 0
	}
	// 20 of b's adverts: 2 s, over five Master_Down_Intervals.
	from := heard()
	testnet.Eventually(t, 10*time.Second, "a hears 20 of b's adverts on late0", func() error {
		if n := heard() - from; n < 20 {
			return fmt.Errorf("heard %d", n)
		}
		return nil
	})
	waitVIP(t, 0, vip2, b, a)
	if got := xa.transitions("VI_2"); len(got) != 2 {
		t.Fatalf("VI_2 on a: %v (want it to stay backup while b is master)", got)
	}
	// b leaves: a takes over on late0.
	xb.stop(3 * time.Second)
	waitVIP(t, 3*time.Second, vip2, a)

	// late0 vanishes: FAULT; it comes back (a new link with the same
	// name): a runs on it again and, alone, becomes master.
	for range 2 {
		detach()
		xa.waitTransition(5*time.Second, "VI_2", "MASTER->FAULT")
		attach()
		xa.waitTransition(5*time.Second, "VI_2", "BACKUP->MASTER")
		waitVIP(t, 3*time.Second, vip2, a)
	}

	if got := xa.transitions("VI_1"); strings.Join(got, " ") != "INIT->BACKUP BACKUP->MASTER" {
		t.Fatalf("VI_1 on a changed state: %v", got)
	}
	waitVIP(t, 0, vip1, a, b)
	if !xa.running() {
		t.Fatal("xkeep on a exited")
	}
}
