package vrrpsuite

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// vrrpMode is one way of running VRRP that both daemons must agree on.
type vrrpMode struct {
	name     string
	version  int
	interval time.Duration
	auth     bool // VRRPv2 simple password
	unicast  bool
	ipv6     bool // an IPv6 VIP: adverts from link-local addresses to ff02::12
	// realtime is vrrp_rt_priority for both daemons (0: normal scheduling).
	realtime int
}

// vip is the mode's virtual address.
func (m vrrpMode) vip(v4 string) netip.Addr {
	if m.ipv6 {
		return netip.MustParseAddr("2001:db8:" + strings.ReplaceAll(strings.TrimSuffix(v4, ".100"), ".", ":") + "::100")
	}
	return netip.MustParseAddr(v4)
}

var interopModes = []vrrpMode{
	{name: "v2-pass-multicast", version: 2, interval: time.Second, auth: true},
	{name: "v3-multicast", version: 3, interval: 100 * time.Millisecond},
	{name: "v3-ipv6-multicast", version: 3, interval: 100 * time.Millisecond, ipv6: true},
	{name: "v3-unicast", version: 3, interval: 100 * time.Millisecond, unicast: true},
	{name: "v2-unicast", version: 2, interval: time.Second, unicast: true},
}

// conf writes a keepalived.conf both daemons read unchanged.
func (m vrrpMode) conf(prio int, self, peer *host, vip netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n    router_id %s\n", self.name)
	if m.realtime > 0 {
		fmt.Fprintf(&b, "    vrrp_rt_priority %d\n", m.realtime)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n")
	fmt.Fprintf(&b, "    priority %d\n    advert_int %g\n    version %d\n", prio, m.interval.Seconds(), m.version)
	if m.auth {
		b.WriteString("    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n")
	}
	if m.unicast {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }\n", self.addr, peer.addr)
	}
	bits := 24
	if vip.Is6() {
		bits = 64
	}
	fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/%d\n    }\n}\n", vip, bits)
	return b.String()
}

func (m vrrpMode) masterDown(prio int) time.Duration {
	base := time.Second
	if m.version == 3 {
		base = m.interval
	}
	return 3*m.interval + skew(prio, base)
}

func (m vrrpMode) skew(prio int) time.Duration {
	if m.version == 3 {
		return skew(prio, m.interval)
	}
	return skew(prio, time.Second)
}

// TestInteropKeepalived runs xkeep against Debian's keepalived on one
// segment, each as master and as backup, in every mode: they agree on
// the master at every step (exactly one holds the VIP), and never both
// hold it for longer than one advert interval.
func TestInteropKeepalived(t *testing.T) {
	for _, m := range interopModes {
		for _, xkeepMaster := range []bool{true, false} {
			name := m.name + "/keepalived-master"
			if xkeepMaster {
				name = m.name + "/xkeep-master"
			}
			t.Run(name, func(t *testing.T) { interop(t, m, xkeepMaster) })
		}
	}
}

func interop(t *testing.T, m vrrpMode, xkeepMaster bool) {
	l := newLab(t)
	hm := l.host("m", "10.60.0.1")
	hb := l.host("b", "10.60.0.2")
	vip := m.vip("10.60.0.100")
	const prioM, prioB = 150, 100
	confM, confB := m.conf(prioM, hm, hb, vip), m.conf(prioB, hb, hm, vip)
	startM := func() *daemon {
		if xkeepMaster {
			return hm.startXkeep(confM)
		}
		d := hm.startKeepalived(confM)
		d.waitVRRPChild()
		return d
	}
	startB := func() *daemon {
		if xkeepMaster {
			d := hb.startKeepalived(confB)
			d.waitVRRPChild()
			return d
		}
		return hb.startXkeep(confB)
	}

	var mu sync.Mutex
	running := map[*host]*daemon{}
	alive := func(h *host) bool {
		mu.Lock()
		defer mu.Unlock()
		d := running[h]
		return d != nil && d.running()
	}
	set := func(h *host, d *daemon) {
		mu.Lock()
		running[h] = d
		mu.Unlock()
	}
	watch := watchOverlap(t, vip, alive, hm, hb)

	dm := startM()
	set(hm, dm)
	waitVIP(t, m.masterDown(prioM)+3*time.Second, vip, hm, hb)
	db := startB()
	set(hb, db)
	// The backup hears the master and stays backup.
	time.Sleep(m.masterDown(prioB) + 2*m.interval)
	waitVIP(t, 0, vip, hm, hb)

	// SIGKILL of the master: the backup takes over.
	dm.kill()
	took := waitVIP(t, m.masterDown(prioB)+500*time.Millisecond, vip, hb)
	t.Logf("after SIGKILL of the master, the backup took over in %v (Master_Down_Interval %v)", took, m.masterDown(prioB))

	// The master returns and preempts; the backup releases the VIP.
	dm = startM()
	set(hm, dm)
	took = waitVIP(t, m.masterDown(prioM)+3*time.Second, vip, hm, hb)
	t.Logf("the master preempted %v after its restart", took)
	time.Sleep(5 * m.interval)
	waitVIP(t, 0, vip, hm, hb)

	// SIGTERM: priority 0, the backup takes over after its skew.
	dm.stop(3 * time.Second)
	took = waitVIP(t, m.skew(prioB)+500*time.Millisecond, vip, hb, hm)
	t.Logf("after SIGTERM of the master, the backup took over in %v (skew %v)", took, m.skew(prioB))
	time.Sleep(5 * m.interval)
	waitVIP(t, 0, vip, hb, hm)
	if !db.running() {
		t.Fatalf("the backup's %s exited", db.kind)
	}
	if o := watch.longestOverlap(); o > m.interval {
		t.Fatalf("both held the VIP for %v (more than one advert interval, %v)", o, m.interval)
	} else {
		t.Logf("longest time both held the VIP: %v", o)
	}
}
