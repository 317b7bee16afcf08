package vrrpsuite

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestSourceAddressAddedLater starts the higher priority xkeep on an
// interface with no IPv4 address yet: it has nothing to send adverts
// from, so it waits in FAULT (as keepalived does; it used to crash on
// the first advert) and the backup takes the VIP. Once the address is
// added, the first xkeep finds it (an address event, not a link event),
// leaves FAULT and preempts.
func TestSourceAddressAddedLater(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.52.0.1")
	b := l.host("b", "10.52.0.2")
	vip := netip.MustParseAddr("10.52.0.100")
	const interval = 100 * time.Millisecond
	addrA := netip.PrefixFrom(a.addr, 24)
	if err := a.ns.DelAddr("eth0", addrA); err != nil {
		t.Fatal(err)
	}
	a.startXkeep(xkeepConf(150, 3, "0.1", vip.String()))
	b.startXkeep(xkeepConf(100, 3, "0.1", vip.String()))
	testnet.Eventually(t, 3*interval+skew(100, interval)+2*time.Second, "b holds the VIP while a cannot advertise", func() error {
		if !b.hasAddr(vip) {
			return errors.New("b does not hold it")
		}
		return nil
	})

	if err := a.ns.AddAddr("eth0", addrA); err != nil {
		t.Fatal(err)
	}
	took := waitVIP(t, 2*time.Second, vip, a, b)
	t.Logf("the VIP is a's alone %v after its address was added", took)
}
