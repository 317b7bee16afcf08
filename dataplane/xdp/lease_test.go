package xdp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
)

// TestFixturesLease: once the control plane stops renewing its lease (its
// daemon was SIGKILLed), the program stops intercepting, new flows and
// established ones alike, so the node answers as a plain real server; a
// renewal (a daemon adopting the program) brings the flows back. The lease
// is an hour so the background renewal never runs during the test; the
// program's clock is moved past it instead.
func TestFixturesLease(t *testing.T) {
	e := newFixtureEnv(t, Options{Lease: time.Hour, TCPTimeout: 4 * time.Hour})
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...)},
		Served:   served(vip4),
	})
	c := e.fromClient()
	to := func(port uint16, flags uint8) []byte {
		return tcpFlow(e.toBackend("10.0.0.11"), client4, port, vip4, flags)
	}
	lapse := func(e *fixtureEnv) {
		if err := e.dp.advanceClock(time.Hour + 2*time.Second); err != nil {
			e.t.Fatal(err)
		}
	}
	renew := func(e *fixtureEnv) {
		if err := e.dp.SetLease(time.Hour); err != nil {
			e.t.Fatal(err)
		}
	}
	e.runFixtures([]fixture{
		{name: "within the lease: a new flow is forwarded", in: tcpFlow(c, client4, 1, vip4, tcpSYN), want: xdpTX, out: to(1, tcpSYN), reason: "flow_new"},
		{name: "lease lapsed: the established flow goes to the stack", before: lapse, in: tcpFlow(c, client4, 1, vip4, tcpACK), want: xdpPass, reason: "pass_lease_expired"},
		{name: "lease lapsed: a new flow goes to the stack", in: tcpFlow(c, client4, 2, vip4, tcpSYN), want: xdpPass, reason: "pass_lease_expired"},
		{name: "lease lapsed: non-VIP traffic passes as ever", in: tcpFlow(c, client4, 3, netip.MustParseAddr("192.0.2.99"), tcpSYN), want: xdpPass, reason: "pass_not_service"},
		{name: "renewed: the established flow keeps its backend", before: renew, in: tcpFlow(c, client4, 1, vip4, tcpACK), want: xdpTX, out: to(1, tcpACK), reason: "flow_hit"},
	})
}

func TestLeaseOptionsAreChecked(t *testing.T) {
	if _, err := (Options{Lease: -time.Second}).withDefaults(); err == nil {
		t.Fatal("negative lease accepted")
	}
}
