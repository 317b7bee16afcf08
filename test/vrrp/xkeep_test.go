package vrrpsuite

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

func xkeepConf(prio int, version int, interval string, vip string) string {
	auth := ""
	if version == 2 {
		auth = "    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n"
	}
	return fmt.Sprintf(`global_defs {
    router_id test
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    version %d
%s    virtual_ipaddress {
        %s/24
    }
}
`, prio, interval, version, auth, vip)
}

// skew returns (256-prio)/256 of base.
func skew(prio int, base time.Duration) time.Duration {
	return time.Duration(int64(256-prio) * int64(base) / 256)
}

// TestTwoXkeepsFailover runs two xkeep processes on one segment (VRRPv2,
// PASS authentication, advert_int 1): the higher priority wins; SIGKILL
// of the master moves the VIP within Master_Down_Interval + 0.5 s and the
// new master's gratuitous ARP reaches a third host's neighbour table; the
// old master's return preempts; SIGTERM sends priority 0 and the backup
// takes over within its skew + 0.5 s.
func TestTwoXkeepsFailover(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.50.0.1")
	b := l.host("b", "10.50.0.2")
	c := l.host("c", "10.50.0.3")
	vip := netip.MustParseAddr("10.50.0.100")
	const interval = time.Second
	confA, confB := xkeepConf(150, 2, "1", vip.String()), xkeepConf(100, 2, "1", vip.String())

	xa := a.startXkeep(confA)
	xb := b.startXkeep(confB)
	waitVIP(t, 3*interval+skew(150, time.Second)+2*time.Second, vip, a, b)
	// b stays backup while a advertises.
	time.Sleep(4 * interval)
	waitVIP(t, 0, vip, a, b)

	// The third host learns the VIP at a's MAC.
	if err := c.ns.Do(func() error {
		conn, err := net.Dial("udp4", netip.AddrPortFrom(vip, 9).String())
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitNeighbour(t, c, vip, a.port.MAC.String())

	// SIGKILL: b takes over within its Master_Down_Interval + 0.5 s. (The
	// killed process cannot remove its own VIP; a's next start does.)
	xa.kill()
	limit := 3*interval + skew(100, time.Second) + 500*time.Millisecond
	took := waitVIP(t, limit, vip, b)
	t.Logf("SIGKILL: b took over %v after the kill (limit %v)", took, limit)
	// Its gratuitous ARP moves c's neighbour entry.
	waitNeighbour(t, c, vip, b.port.MAC.String())

	// a returns and preempts.
	xa = a.startXkeep(confA)
	took = waitVIP(t, 3*interval+skew(150, time.Second)+2*time.Second, vip, a, b)
	t.Logf("a preempted %v after its restart", took)

	// SIGTERM: a resigns with priority 0, b takes over after its skew.
	stopped := xa.stop(2 * time.Second)
	limit = skew(100, time.Second) + 500*time.Millisecond
	took = waitVIP(t, limit, vip, b, a)
	t.Logf("SIGTERM: a exited in %v, b took over %v later (limit %v)", stopped, took, limit)
	if !xb.running() {
		t.Fatal("b's xkeep exited")
	}
}

func waitNeighbour(t *testing.T, h *host, a netip.Addr, mac string) {
	t.Helper()
	testnet.Eventually(t, 3*time.Second, fmt.Sprintf("%s's neighbour entry for %s at %s", h.name, a, mac), func() error {
		got, err := h.neighbourMAC(a)
		if err != nil {
			return err
		}
		if got != mac {
			return fmt.Errorf("at %q", got)
		}
		return nil
	})
}
