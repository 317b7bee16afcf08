package xdp

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// fixtureEnv is a load balancer namespace for the program tests, with the
// interfaces, addresses and neighbours the backends need, and no traffic
// of its own: the far ends of its links have IPv6 off and no addresses, so
// every counter change comes from the test's frames.
//
//	eth0  10.0.0.1/24 fd00::1/64  backends 10.0.0.11-14, fd00::11-12
//	      (VLAN 100, 200)          backends 10.100.0.31, 10.200.0.41
//	eth1  10.1.0.1/24              backend 10.1.0.21 (redirect)
//
// Backend MACs come from backendMAC (10.0.0.11 has 02:00:00:00:00:11).
type fixtureEnv struct {
	t    testing.TB
	lb   *testnet.Namespace
	dp   *Dataplane
	eth0 *net.Interface
	eth1 *net.Interface
}

var (
	vip4     = netip.MustParseAddr("192.0.2.10")
	vip6     = netip.MustParseAddr("2001:db8::10")
	client4  = netip.MustParseAddr("203.0.113.5")
	client6  = netip.MustParseAddr("2001:db8:1::5")
	routerMA = mac(0xee) // the client-side router that sends VIP traffic
)

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, last} }

// backendMAC is the MAC the env gives backend addr.
func backendMAC(addr netip.Addr) net.HardwareAddr {
	s := addr.AsSlice()
	last := s[len(s)-1]
	return mac(last/10<<4 | last%10)
}

func newFixtureEnv(t *testing.T, opts Options) *fixtureEnv { return newFixtureEnvTB(t, opts) }

func newFixtureEnvTB(t testing.TB, opts Options) *fixtureEnv {
	t.Helper()
	lb := testnet.NewNamespace(t, "lb")
	far := testnet.NewNamespace(t, "far")
	if err := far.Sysctl("net/ipv6/conf/default/disable_ipv6", "1"); err != nil {
		t.Fatal(err)
	}
	testnet.VethPair(t, lb, "eth0", far, "p0",
		netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64"))
	testnet.VethPair(t, lb, "eth1", far, "p1", netip.MustParsePrefix("10.1.0.1/24"))

	h, err := lb.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	neighbours := map[string][]string{
		// 10.100.0.31 and 10.200.0.41 sit on VLANs 100 and 200 (see
		// fakeVLANRoute); their neighbour entries are real, on eth0.
		"eth0": {"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "fd00::11", "fd00::12", "10.100.0.31", "10.200.0.41"},
		"eth1": {"10.1.0.21"},
	}
	for ifname, addrs := range neighbours {
		l, err := h.LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			addr := netip.MustParseAddr(a)
			n := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
				IP: addr.AsSlice(), HardwareAddr: backendMAC(addr)}
			if addr.Is4() {
				n.Family = unix.AF_INET
			} else {
				n.Family = unix.AF_INET6
			}
			if err := h.NeighAdd(n); err != nil {
				t.Fatalf("neighbour %s on %s: %v", a, ifname, err)
			}
		}
	}

	opts.NetNS = lb.Path()
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1 // tests sweep explicitly
	}
	if opts.FlowTableSize == 0 {
		opts.FlowTableSize = 1 << 14
	}
	if opts.MaxBackends == 0 {
		opts.MaxBackends = 1 << 14
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	dp, err := New(opts)
	if err != nil {
		t.Fatalf("new dataplane: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	env := &fixtureEnv{t: t, lb: lb, dp: dp}
	err = lb.Do(func() error {
		var err error
		if env.eth0, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		env.eth1, err = net.InterfaceByName("eth1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *fixtureEnv) apply(ds dataplane.DesiredState) {
	e.t.Helper()
	if err := e.dp.Apply(ds); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// served is the served-VIP list for both fixture VIPs on eth0.
func served(vips ...netip.Addr) []dataplane.ServedVIP {
	var out []dataplane.ServedVIP
	for _, v := range vips {
		out = append(out, dataplane.ServedVIP{Addr: v, Interface: "eth0"})
	}
	return out
}

func backends(addrs ...string) []dataplane.Backend {
	var out []dataplane.Backend
	for _, a := range addrs {
		out = append(out, dataplane.Backend{
			BackendKey: dataplane.BackendKey{Addr: netip.MustParseAddr(a), Port: 80},
			Weight:     1,
		})
	}
	return out
}

func weighted(addr string, w int) dataplane.Backend {
	b := backends(addr)[0]
	b.Weight = w
	return b
}

func svc(vip netip.Addr, port uint16, sched dataplane.Scheduler, bes ...dataplane.Backend) dataplane.Service {
	return dataplane.Service{
		Key:       dataplane.ServiceKey{Addr: vip, Port: port, Protocol: dataplane.TCP},
		Scheduler: sched,
		Forward:   dataplane.DirectRouting,
		Backends:  bes,
	}
}

func (e *fixtureEnv) reasons() map[string]uint64 {
	e.t.Helper()
	st, err := e.dp.Stats()
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Reasons
}
