package xdp

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/test/pktgen"
)

// Benchmarks for `make bench` (go test -bench . -benchtime 1x): each one
// measures its figures once, next to a baseline measured in the same run,
// and prints a table. b.N is not used: one iteration is one measurement.

// noopTX is the baseline of the per-packet figures: an XDP program that
// does nothing but return XDP_TX. It is attached (to ifindex, in ns) as
// the balancer is: the kernel runs attached XDP programs through its XDP
// dispatcher with a direct call, others through a retpoline that costs
// ~40 ns more here, which would flatter the balancer.
func noopTX(b testing.TB, ns *testnet.Namespace, ifindex int) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "noop_tx", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpTX), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	var l link.Link
	if err := ns.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: p, Interface: ifindex})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return p
}

// nsPerPacket runs prog over frame repeat times in one BPF_PROG_TEST_RUN
// (a loop in the kernel, ingress eth0), rounds times, and returns the wall
// time per packet of the fastest round (the machine is shared: the fastest
// round is the one least disturbed).
func (r *runner) nsPerPacket(prog *ebpf.Program, frame []byte, repeat uint32, rounds int) (float64, uint32, error) {
	var samples []float64
	var verdict uint32
	for range rounds {
		opts := &ebpf.RunOptions{Data: frame, Repeat: repeat,
			Context: balancerXdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(r.ifindex)}}
		t0 := time.Now()
		v, err := prog.Run(opts)
		if err != nil {
			return 0, 0, err
		}
		samples = append(samples, float64(time.Since(t0).Nanoseconds())/float64(repeat))
		verdict = v
	}
	return slices.Min(samples), verdict, nil
}

func (e *fixtureEnv) addNeighbours(ifname string, addrs []netip.Addr) {
	e.t.Helper()
	h, err := e.lb.Netlink()
	if err != nil {
		e.t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range addrs {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: backendMAC(a)}
		if a.Is6() {
			n.Family = unix.AF_INET6
		}
		if err := h.NeighSet(n); err != nil {
			e.t.Fatal(err)
		}
	}
}

func benchEnv(b *testing.B, opts Options) *fixtureEnv {
	b.Helper()
	testnet.RequireRoot(b)
	return newFixtureEnvTB(b, opts)
}

// BenchmarkPerPacket: ns per packet through BPF_PROG_TEST_RUN for the
// flow-table hit, a new flow per scheduler and a frame that is not for a
// VIP, next to a no-op XDP_TX program run the same way.
func BenchmarkPerPacket(b *testing.B) {
	e := benchEnv(b, Options{FlowTableSize: 1 << 20})
	var ten []string
	var tenAddrs []netip.Addr
	for i := 101; i <= 110; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		ten = append(ten, a.String())
		tenAddrs = append(tenAddrs, a)
	}
	e.addNeighbours("eth0", tenAddrs)
	scheds := []dataplane.Scheduler{dataplane.RoundRobin, dataplane.WeightedRoundRobin, dataplane.SourceHash, dataplane.Maglev, dataplane.LeastConn, dataplane.WeightedLeastConn}
	var services []dataplane.Service
	for i, s := range scheds {
		bes := backends(ten...)
		for j := range bes {
			bes[j].Weight = 1 + j%3
		}
		services = append(services, svc(vip4, uint16(8000+i), s, bes...))
	}
	services = append(services, svc(vip4, 80, dataplane.RoundRobin, backends(ten...)...),
		svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11", "fd00::12")...))
	persistent := svc(vip4, 8100, dataplane.RoundRobin, backends(ten...)...)
	persistent.Persistence = time.Minute
	services = append(services, persistent)
	e.apply(dataplane.DesiredState{Services: services, Served: served(vip4, vip6)})

	c := e.fromClient()
	type row struct {
		name  string
		frame []byte
		want  uint32
	}
	// Repeating a SYN|FIN frame schedules a new flow on every run: the
	// first run makes a closing flow, and a bare SYN on a closing flow is
	// a new connection. So each run pays a flow lookup, scheduling and a
	// flow-table write, as a real new flow does.
	newFlow := func(port uint16) []byte {
		return c.ip(client4, vip4, 6, tcp(40000, port, tcpSYN|tcpFIN, []byte("x")))
	}
	rows := []row{
		{"non-VIP frame (pass)", tcpFlow(c, client4, 1000, netip.MustParseAddr("192.0.2.200"), tcpACK), xdpPass},
		{"flow hit, IPv4 (CPU's flow cache)", tcpFlow(c, client4, 1000, vip4, tcpACK), xdpTX},
		// A FIN never takes the cache: this is the hit path of a flow the
		// CPU's cache does not hold (evicted by another flow).
		{"flow hit, IPv4, flow table (FIN)", tcpFlow(c, client4, 1001, vip4, tcpFIN|tcpACK), xdpTX},
		{"flow hit, IPv6 (CPU's flow cache)", tcpFlow(c, client6, 1000, vip6, tcpACK), xdpTX},
	}
	for i, s := range scheds {
		rows = append(rows, row{fmt.Sprintf("new flow, %s (10 backends)", s), newFlow(uint16(8000 + i)), xdpTX})
	}
	rows = append(rows, row{"new flow, rr + persistence", newFlow(8100), xdpTX})

	noop := noopTX(b, e.lb, e.eth1.Index)
	const repeat, rounds = 1_000_000, 7
	var out strings.Builder
	fmt.Fprintf(&out, "\nns/packet by BPF_PROG_TEST_RUN (best of %d runs of %d repeats, one CPU, both programs attached)\n", rounds, repeat)
	fmt.Fprintf(&out, "%-34s %9s %10s %8s\n", "case", "ns/pkt", "- no-op", "x no-op")
	err := e.dp.withRunner(e.eth0.Index, func(r *runner) error {
		base, _, err := r.nsPerPacket(noop, rows[1].frame, repeat, rounds)
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "%-34s %9.1f %10s %8s\n", "no-op XDP_TX program (baseline)", base, "", "1.00")
		for _, rw := range rows {
			ns, v, err := r.nsPerPacket(e.dp.Program(), rw.frame, repeat, rounds)
			if err != nil {
				return err
			}
			if v != rw.want {
				return fmt.Errorf("%s: verdict %s, want %s", rw.name, verdictNames[v], verdictNames[rw.want])
			}
			fmt.Fprintf(&out, "%-34s %9.1f %+10.1f %8.2f\n", rw.name, ns, ns-base, ns/base)
			if rw.name == rows[1].name {
				b.ReportMetric(ns-base, "hit-ns-over-noop")
				fmt.Fprintf(&out, "%-34s %9s %10s (target: within 50 ns of the no-op)\n", "", "", "")
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Printed, not logged: benchmark logs are cut to ten lines.
	fmt.Print(out.String())
}

// BenchmarkVethForwarding: frames per second the balancer forwards on a
// veth pair, next to a bare XDP_TX bounce on the same pair. pktgen sends
// live frames out of g0; the program on l0 (balancer or bare bounce)
// sends them back; a sink on g0 counts what returns. On a veth, all of it
// runs on the sending thread's CPU.
func BenchmarkVethForwarding(b *testing.B) {
	testnet.RequireRoot(b)
	gen := testnet.NewNamespace(b, "gen")
	lb := testnet.NewNamespace(b, "lb")
	// A queue per CPU, so that two senders on two CPUs do not share a ring.
	g0 := testnet.VethPairQueues(b, gen, "g0", lb, "l0", runtime.NumCPU(), netip.MustParsePrefix("10.60.0.2/24"))
	h, err := lb.Netlink()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	l0, err := h.LinkByName("l0")
	if err != nil {
		b.Fatal(err)
	}
	if err := lb.AddAddr("l0", netip.MustParsePrefix("10.60.0.1/24")); err != nil {
		b.Fatal(err)
	}
	backend := netip.MustParseAddr("10.60.0.2")
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: l0.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: backend.AsSlice(), HardwareAddr: g0.MAC}); err != nil {
		b.Fatal(err)
	}
	sink, err := pktgen.NewSink()
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	var sinkLink link.Link
	if err := gen.Do(func() (err error) {
		sinkLink, err = link.AttachXDP(link.XDPOptions{Program: sink.Program(), Interface: g0.Index})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer sinkLink.Close()

	vip := netip.MustParseAddr("10.60.0.100")
	dp, err := New(Options{NetNS: lb.Path(), SweepInterval: -1, FlowTableSize: 1 << 18, MaxBackends: 1 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer dp.Close()
	state := dataplane.DesiredState{
		Services: []dataplane.Service{{
			Key:       dataplane.ServiceKey{Addr: vip, Port: 9, Protocol: dataplane.UDP},
			Scheduler: dataplane.RoundRobin,
			Backends:  []dataplane.Backend{{BackendKey: dataplane.BackendKey{Addr: backend, Port: 9}, Weight: 1}},
		}},
		Served: []dataplane.ServedVIP{{Addr: vip, Interface: "l0"}},
	}
	bounce, err := pktgen.Bounce()
	if err != nil {
		b.Fatal(err)
	}
	defer bounce.Close()

	frame := pktgen.UDPFrame(l0.Attrs().HardwareAddr, g0.MAC, netip.MustParseAddrPort("10.60.0.50:1000"), netip.AddrPortFrom(vip, 9), 18)
	const perThread = 4_000_000
	// The mix: one flow (every frame alike), or a random source port in
	// each frame (up to 65,536 flows, far more than a CPU's flow cache
	// holds, so most frames take the flow table).
	const udpSourcePort = 14 + 20
	type mix struct {
		threads int
		flows   string
	}
	measure := func(m mix) (float64, error) {
		if err := sink.Reset(); err != nil {
			return 0, err
		}
		cfg := pktgen.Config{NetNS: gen.Path(), Interface: g0.Index, Frame: frame, Count: perThread, Threads: m.threads}
		if m.flows != "1" {
			cfg.RandomSourcePort = udpSourcePort
		}
		res, err := pktgen.Run(cfg)
		if err != nil {
			return 0, err
		}
		got, err := sink.Count()
		if err != nil {
			return 0, err
		}
		return float64(got) / res.Elapsed.Seconds(), nil
	}
	useBalancer := func() error { return dp.Apply(state) }
	var bounceLink link.Link
	useBounce := func() error {
		if err := dp.Apply(dataplane.DesiredState{}); err != nil { // detaches
			return err
		}
		return lb.Do(func() (err error) {
			bounceLink, err = link.AttachXDP(link.XDPOptions{Program: bounce, Interface: l0.Attrs().Index})
			return err
		})
	}
	stopBounce := func() error { return bounceLink.Close() }

	mixes := []mix{{1, "1"}}
	if runtime.NumCPU() >= 2 {
		mixes = append(mixes, mix{2, "1"})
	}
	mixes = append(mixes, mix{1, "65536"})
	const rounds = 5
	results := make(map[mix][2][]float64) // bounce, balancer
	for range rounds {
		for _, m := range mixes {
			if err := useBounce(); err != nil {
				b.Fatal(err)
			}
			bare, err := measure(m)
			if err != nil {
				b.Fatal(err)
			}
			if err := stopBounce(); err != nil {
				b.Fatal(err)
			}
			if err := useBalancer(); err != nil {
				b.Fatal(err)
			}
			fwd, err := measure(m)
			if err != nil {
				b.Fatal(err)
			}
			r := results[m]
			results[m] = [2][]float64{append(r[0], bare), append(r[1], fwd)}
		}
	}
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	var out strings.Builder
	fmt.Fprintf(&out, "\nveth forwarding, live frames from pktgen, %d frames per thread, median (min-max) of %d alternating rounds\n", perThread, rounds)
	fmt.Fprintf(&out, "%-8s %-7s %22s %22s %8s\n", "threads", "flows", "bare bounce Mpps", "balancer Mpps", "ratio")
	spread := func(v []float64) string {
		return fmt.Sprintf("%.2f (%.2f-%.2f)", median(v)/1e6, slices.Min(v)/1e6, slices.Max(v)/1e6)
	}
	for _, m := range mixes {
		bares, fwds := results[m][0], results[m][1]
		bare, fwd := median(bares), median(fwds)
		fmt.Fprintf(&out, "%-8d %-7s %22s %22s %7.0f%%\n", m.threads, m.flows, spread(bares), spread(fwds), 100*fwd/bare)
		name := fmt.Sprintf("%dthread", m.threads)
		if m.flows != "1" {
			name += "-" + m.flows + "flows"
		}
		b.ReportMetric(fwd/1e6, "Mpps-"+name)
		b.ReportMetric(fwd/bare, "ratio-"+name)
	}
	fmt.Fprintf(&out, "(target: balancer at least 85%% of the bare bounce; the many-flow row shows the flow table path)\n")
	st, err := dp.Stats()
	if err == nil && len(st.Services) == 1 {
		fmt.Fprintf(&out, "balancer counted %d packets, %d new flows\n", st.Services[0].Packets, st.Services[0].NewFlows)
	}
	// Printed, not logged: benchmark logs are cut to ten lines.
	fmt.Print(out.String())
}

// BenchmarkApply: time and memory for the first Apply of large states (the
// routing and neighbour lookups of every backend included), a repeated
// Apply of the same state, and an Apply that drains one backend of every
// service (a new scheduling table for each).
func BenchmarkApply(b *testing.B) {
	testnet.RequireRoot(b)
	cases := []struct {
		name                 string
		services, perService int
		sched                dataplane.Scheduler
	}{
		{"1,000 services x 10 backends, rr", 1000, 10, dataplane.RoundRobin},
		{"1 service x 10,000 backends, rr", 1, 10000, dataplane.RoundRobin},
		{"1 service x 10,000 backends, mh", 1, 10000, dataplane.Maglev},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nApply (real netlink in a namespace; 10,000 distinct backend addresses with neighbour entries)\n")
	fmt.Fprintf(&out, "%-36s %10s %10s %12s %11s %11s\n", "state", "first", "same again", "1 drain/svc", "first alloc", "heap kept")
	for _, c := range cases {
		lb := testnet.NewNamespace(b, "apply")
		far := testnet.NewNamespace(b, "far")
		testnet.VethPair(b, lb, "eth0", far, "p0", netip.MustParsePrefix("10.0.0.1/16"))
		h, err := lb.Netlink()
		if err != nil {
			b.Fatal(err)
		}
		l, err := h.LinkByName("eth0")
		if err != nil {
			b.Fatal(err)
		}
		addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(1 + i/250), byte(1 + i%250)}) }
		n := c.services * c.perService
		for i := range n {
			if err := h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
				IP: addr(i).AsSlice(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}}); err != nil {
				b.Fatal(err)
			}
		}
		h.Close()
		dp, err := New(Options{NetNS: lb.Path(), SweepInterval: -1, FlowTableSize: 1 << 16, MaglevTableSize: 16381})
		if err != nil {
			b.Fatal(err)
		}
		state := dataplane.DesiredState{Served: []dataplane.ServedVIP{{Addr: netip.MustParseAddr("192.0.2.1"), Interface: "eth0"}}}
		for s := range c.services {
			vip := netip.AddrFrom4([4]byte{192, 0, 2, 1})
			sv := dataplane.Service{Key: dataplane.ServiceKey{Addr: vip, Port: uint16(1000 + s), Protocol: dataplane.TCP}, Scheduler: c.sched}
			for j := range c.perService {
				sv.Backends = append(sv.Backends, dataplane.Backend{BackendKey: dataplane.BackendKey{Addr: addr(s*c.perService + j), Port: 80}, Weight: 1})
			}
			state.Services = append(state.Services, sv)
		}
		// timed returns the Apply's wall time, the bytes it allocated and
		// the heap still in use after it (what the dataplane keeps).
		timed := func(ds dataplane.DesiredState) (time.Duration, uint64, int64) {
			var m0, m1, m2 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			t0 := time.Now()
			if err := dp.Apply(ds); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			runtime.ReadMemStats(&m1)
			runtime.GC()
			runtime.ReadMemStats(&m2)
			return d, m1.TotalAlloc - m0.TotalAlloc, int64(m2.HeapAlloc) - int64(m0.HeapAlloc)
		}
		first, alloc, kept := timed(state)
		again, _, _ := timed(state)
		changed := cloneState(state)
		for i := range changed.Services {
			// A new table for every service: all are swapped in one batch.
			changed.Services[i].Backends[0].State = dataplane.BackendDraining
		}
		change, _, _ := timed(changed)
		fmt.Fprintf(&out, "%-36s %10v %10v %12v %8.1f MB %8.1f MB\n", c.name, first.Round(time.Millisecond), again.Round(time.Millisecond),
			change.Round(time.Millisecond), float64(alloc)/1e6, float64(kept)/1e6)
		b.ReportMetric(first.Seconds(), strings.NewReplacer(",", "", " ", "", "x", "x").Replace(c.name)+"-s")
		if err := dp.Close(); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Fprintf(&out, "(target: the 10,000-backend Apply under 1 s)\n")
	// Printed, not logged: benchmark logs are cut to ten lines.
	fmt.Print(out.String())
}
