package forwardbench

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/dataplane/ipvs"
	"github.com/xkeep/xkeep/dataplane/xdp"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/test/pktgen"
)

// framesPerOp is how many frames one benchmark iteration sends.
const framesPerOp = 1 << 18

var (
	vip     = netip.MustParseAddr("10.60.0.100")
	client  = netip.MustParseAddrPort("10.60.0.50:1000")
	lbAddr  = netip.MustParsePrefix("10.60.0.1/24")
	genAddr = netip.MustParsePrefix("10.60.0.2/24") // also the real server
)

// rig is dataplane/xdp's BenchmarkVethForwarding setup: a generator
// namespace and a director joined by one veth pair (g0 - l0). pktgen sends
// live frames of one UDP flow to the VIP out of g0; the director forwards
// them in DR mode to the real server 10.60.0.2, which is g0 again, where a
// pktgen.Sink counts and drops them. The director has a static neighbour
// entry for the real server, since the sink drops ARP as well.
type rig struct {
	gen, lb *testnet.Namespace
	g0      *testnet.Port
	frame   []byte
	sink    *pktgen.Sink
}

func newRig(b *testing.B) *rig {
	b.Helper()
	gen := testnet.NewNamespace(b, "gen")
	lb := testnet.NewNamespace(b, "lb")
	// No IPv6 chatter (router solicitations, MLD) in the sink's count.
	for _, ns := range []*testnet.Namespace{gen, lb} {
		if err := ns.Sysctl("net/ipv6/conf/default/disable_ipv6", "1"); err != nil {
			b.Fatal(err)
		}
	}
	g0 := testnet.VethPair(b, gen, "g0", lb, "l0", genAddr)
	if err := lb.AddAddr("l0", lbAddr); err != nil {
		b.Fatal(err)
	}
	if err := lb.AddNeighbor("l0", genAddr.Addr(), g0.MAC); err != nil {
		b.Fatal(err)
	}
	var l0MAC net.HardwareAddr
	if err := lb.Do(func() error {
		ifc, err := net.InterfaceByName("l0")
		if err == nil {
			l0MAC = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	sink, err := pktgen.NewSink()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	var l link.Link
	if err := gen.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: sink.Program(), Interface: g0.Index})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return &rig{
		gen: gen, lb: lb, g0: g0, sink: sink,
		// 60 bytes on the wire: the minimum Ethernet frame, the worst case.
		frame: pktgen.UDPFrame(l0MAC, g0.MAC, client, netip.AddrPortFrom(vip, 9), 18),
	}
}

func (r *rig) state() dataplane.DesiredState {
	return dataplane.DesiredState{
		Services: []dataplane.Service{{
			Key:       dataplane.ServiceKey{Addr: vip, Port: 9, Protocol: dataplane.UDP},
			Scheduler: dataplane.RoundRobin,
			Forward:   dataplane.DirectRouting,
			Backends: []dataplane.Backend{{
				BackendKey: dataplane.BackendKey{Addr: genAddr.Addr(), Port: 9}, Weight: 1,
			}},
		}},
		Served: []dataplane.ServedVIP{{Addr: vip, Interface: "l0"}},
	}
}

// BenchmarkForwardDR measures the packets per second each dataplane
// forwards in DR mode on the same rig, in the same kernel: test/vm -bench
// runs it in the 6.1 VM (where IPVS exists) and prints the XDP/IPVS ratio
// of the rows' medians. ipvs: an XDP_PASS program on l0 (a veth end
// receives frames its peer XDP_TXes only with a program of its own) hands
// the frames to the stack, where IPVS forwards them. xdp: the balancer,
// attached to l0 by Apply, forwards them itself. The rate is frames that
// reached the sink per second of sending, after one warm-up frame (the
// flow's first, which creates IPVS's connection / the XDP flow entry).
func BenchmarkForwardDR(b *testing.B) {
	b.Run("ipvs", func(b *testing.B) {
		testnet.RequireRoot(b)
		r := newRig(b)
		r.g0.PeerXDPPass()
		if err := r.lb.AddAddr("lo", netip.PrefixFrom(vip, 32)); err != nil {
			b.Fatal(err)
		}
		dp, err := ipvs.New(ipvs.Config{Netns: r.lb.Path()})
		if errors.Is(err, ipvs.ErrUnavailable) && os.Getenv("XKEEP_VM") == "" {
			// This machine's kernel has no IPVS; test/vm runs this in its
			// 6.1 VM (make bench), where a missing IPVS fails.
			b.Skipf("skipped: the IPVS row is measured in the 6.1 VM (make bench): %v", err)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dp.Close() })
		if err := dp.Apply(r.state()); err != nil {
			b.Fatal(err)
		}
		r.run(b)
	})
	b.Run("xdp", func(b *testing.B) {
		testnet.RequireRoot(b)
		r := newRig(b)
		dp, err := xdp.New(xdp.Options{NetNS: r.lb.Path(), SweepInterval: -1, FlowTableSize: 1 << 16, MaxBackends: 1 << 10})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dp.Close() })
		if err := dp.Apply(r.state()); err != nil {
			b.Fatal(err)
		}
		r.run(b)
	})
}

func (r *rig) send(b *testing.B, n uint32) pktgen.Result {
	b.Helper()
	res, err := pktgen.Run(pktgen.Config{NetNS: r.gen.Path(), Interface: r.g0.Index, Frame: r.frame, Count: n})
	if err != nil {
		b.Fatal(err)
	}
	return res
}

func (r *rig) run(b *testing.B) {
	b.Helper()
	r.send(b, 1)
	if n, err := r.sink.Count(); err != nil || n == 0 {
		b.Fatalf("the warm-up frame did not come back (%d frames, %v)", n, err)
	}
	if err := r.sink.Reset(); err != nil {
		b.Fatal(err)
	}
	var sent uint64
	var seconds float64
	b.ResetTimer()
	for range b.N {
		res := r.send(b, framesPerOp)
		sent += res.Sent
		seconds += res.Elapsed.Seconds()
	}
	b.StopTimer()
	// On a veth all of it runs on the sending thread, inside the send:
	// what arrives has arrived when pktgen.Run returns.
	got, err := r.sink.Count()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(got)/seconds, "pkts/s")
	b.ReportMetric(100*float64(got)/float64(sent), "%delivered")
	b.ReportMetric(0, "ns/op")
}
