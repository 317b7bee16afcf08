package xdp

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xkeep/xkeep/dataplane"
)

func sctp(sport, dport uint16) []byte {
	b := make([]byte, 12+16) // common header + an INIT chunk's start
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 1 // INIT
	return b
}

// TestFixturesAllPortsAndSCTP: a port-0 service (keepalived's
// "virtual_server IP 0") takes every port of its VIP and protocol that no
// specific service takes; SCTP services use ports like TCP and UDP.
func TestFixturesAllPortsAndSCTP(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	allPorts := svc(vip4, 0, dataplane.RoundRobin, backends("10.0.0.12")...)
	allPorts.Persistence = 300e9 // as keepalived requires for port 0
	sctpSvc := svc(vip4, 9899, dataplane.RoundRobin, backends("10.0.0.13")...)
	sctpSvc.Key.Protocol = dataplane.SCTP
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...), allPorts, sctpSvc},
		Served:   served(vip4),
	})
	c := e.fromClient()
	other := netip.MustParseAddr("192.0.2.200")
	e.runFixtures([]fixture{
		{name: "port 80: its own service", in: tcpFlow(c, client4, 1, vip4, tcpSYN), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 1, vip4, tcpSYN)},
		{name: "port 443: the all-ports service", in: c.ip(client4, vip4, 6, tcp(2, 443, tcpSYN, nil)), want: xdpTX, out: e.toBackend("10.0.0.12").ip(client4, vip4, 6, tcp(2, 443, tcpSYN, nil))},
		{name: "port 22: the all-ports service", in: c.ip(client4, vip4, 6, tcp(3, 22, tcpSYN, nil)), want: xdpTX, out: e.toBackend("10.0.0.12").ip(client4, vip4, 6, tcp(3, 22, tcpSYN, nil))},
		{name: "udp has no all-ports service", in: c.ip(client4, vip4, 17, udp(4, 53, nil)), want: xdpPass, reason: "pass_not_service"},
		{name: "another address: not the all-ports service", in: c.ip(client4, other, 6, tcp(5, 443, tcpSYN, nil)), want: xdpPass, reason: "pass_not_service"},
		{name: "sctp service", in: c.ip(client4, vip4, 132, sctp(6, 9899)), want: xdpTX, out: e.toBackend("10.0.0.13").ip(client4, vip4, 132, sctp(6, 9899)), reason: "flow_new"},
		{name: "sctp, other port", in: c.ip(client4, vip4, 132, sctp(7, 9900)), want: xdpPass, reason: "pass_not_service"},
	})
	// Without a port-0 service, other ports pass again.
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...)}, Served: served(vip4)})
	e.runFixtures([]fixture{
		{name: "all-ports service removed", in: c.ip(client4, vip4, 6, tcp(8, 443, tcpSYN, nil)), want: xdpPass, reason: "pass_not_service"},
	})
}
