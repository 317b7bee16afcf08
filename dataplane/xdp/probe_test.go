package xdp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// TestProbeFindsBackends: backends missing from the LB's neighbour table
// are found by ARP (IPv4) and NDP (IPv6) during Apply, and the program
// sends to the MACs they answered with.
func TestProbeFindsBackends(t *testing.T) {
	lb := testnet.NewNamespace(t, "lb")
	rs := testnet.NewNamespace(t, "rs")
	lbPort := testnet.VethPair(t, lb, "eth0", rs, "eth0",
		netip.MustParsePrefix("10.70.0.1/24"), netip.MustParsePrefix("fd70::1/64"))
	if err := rs.AddAddr("eth0", netip.MustParsePrefix("10.70.0.2/24")); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddAddr("eth0", netip.MustParsePrefix("fd70::2/64")); err != nil {
		t.Fatal(err)
	}
	var rsMAC net.HardwareAddr
	if err := rs.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		rsMAC = ifc.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dp, err := New(Options{NetNS: lb.Path(), SweepInterval: -1, FlowTableSize: 1 << 12, MaxBackends: 1 << 10, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	vip6 := netip.MustParseAddr("2001:db8::70")
	state := dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.70.0.2")...),
			svc(vip6, 80, dataplane.RoundRobin, backends("fd70::2")...),
		},
		Served: []dataplane.ServedVIP{{Addr: vip4, Interface: "eth0"}, {Addr: vip6, Interface: "eth0"}},
	}
	// The far end's IPv6 address may still be settling; Apply probes once,
	// so retry until both answered.
	testnet.Eventually(t, 10*time.Second, "backends resolved", func() error {
		if err := dp.Apply(state); err != nil {
			return err
		}
		var missing []string
		for _, a := range []string{"10.70.0.2", "fd70::2"} {
			dp.mu.Lock()
			_, ok := dp.neigh[neighKey{lbPort.Index, netip.MustParseAddr(a)}]
			dp.mu.Unlock()
			if !ok {
				missing = append(missing, a)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no MAC for %v", missing)
		}
		return nil
	})
	c := frame{dst: lbPort.MAC, src: routerMA, vlan: -1}
	err = dp.withRunner(lbPort.Index, func(r *runner) error {
		for _, in := range [][]byte{tcpFlow(c, client4, 1, vip4, tcpSYN), tcpFlow(c, client6, 1, vip6, tcpSYN)} {
			v, out, err := r.run(in)
			if err != nil {
				return err
			}
			if v != xdpTX || !bytes.Equal(out[:6], rsMAC) {
				t.Errorf("verdict %s to %s, want XDP_TX to %s", verdictNames[v], net.HardwareAddr(out[:6]), rsMAC)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
