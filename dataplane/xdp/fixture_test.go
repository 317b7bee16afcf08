package xdp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
)

// XDP verdicts.
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var verdictNames = map[uint32]string{0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}

// fixture is one katran-style case: a frame in, the verdict and the frame
// out it must produce, and the counter that must count it.
type fixture struct {
	name   string
	before func(*fixtureEnv) // optional: apply a state, move the clock
	in     []byte
	want   uint32
	out    []byte // nil: the frame must come back unchanged
	reason string // a global counter that must grow by one
}

// runFixtures runs the cases in order (later ones see the flows earlier
// ones made), with eth0 as the ingress interface.
func (e *fixtureEnv) runFixtures(cases []fixture) {
	e.t.Helper()
	err := e.dp.withRunner(e.eth0.Index, func(r *runner) error {
		for _, c := range cases {
			if c.before != nil {
				c.before(e)
			}
			before := e.reasons()
			got, out, err := r.run(c.in)
			if err != nil {
				return fmt.Errorf("%s: run: %w", c.name, err)
			}
			if got != c.want {
				e.t.Errorf("%s: verdict %s, want %s", c.name, verdictNames[got], verdictNames[c.want])
			}
			want := c.out
			if want == nil {
				want = c.in
			}
			if !bytes.Equal(out, want) {
				e.t.Errorf("%s: frame out\n got  %x\n want %x", c.name, out, want)
			}
			if c.reason != "" {
				after := e.reasons()
				if _, ok := after[c.reason]; !ok {
					return fmt.Errorf("%s: no counter %q", c.name, c.reason)
				}
				if d := after[c.reason] - before[c.reason]; d != 1 {
					e.t.Errorf("%s: counter %s grew by %d, want 1", c.name, c.reason, d)
				}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// fromClient is a frame as the router in front of the LB sends it.
func (e *fixtureEnv) fromClient() frame {
	return frame{dst: e.eth0.HardwareAddr, src: routerMA, vlan: -1}
}

// toBackend is the frame the program must send to backend addr out of eth0.
func (e *fixtureEnv) toBackend(addr string) frame {
	return frame{dst: backendMAC(netip.MustParseAddr(addr)), src: e.eth0.HardwareAddr, vlan: -1}
}

func tcpFlow(f frame, client netip.Addr, sport uint16, vip netip.Addr, flags uint8) []byte {
	return f.ip(client, vip, 6, tcp(sport, 80, flags, []byte("GET / HTTP/1.0\r\n\r\n")))
}

func TestFixturesPassThrough(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	unserved := netip.MustParseAddr("192.0.2.99")
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11", "10.0.0.12")...),
			svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11", "fd00::12")...),
			svc(unserved, 80, dataplane.RoundRobin, backends("10.0.0.11")...),
		},
		Served: served(vip4, vip6),
	})
	c := e.fromClient()
	other := netip.MustParseAddr("192.0.2.200")
	other6 := netip.MustParseAddr("2001:db8::200")
	e.runFixtures([]fixture{
		{name: "arp for the VIP", in: c.wrap(etherARP, arpRequest(routerMA, client4, vip4)), want: xdpPass, reason: "pass_not_ip"},
		{name: "vrrp advert", in: c.ip(netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("224.0.0.18"), 112, make([]byte, 20)), want: xdpPass, reason: "pass_vrrp"},
		{name: "vrrpv3 over ipv6", in: c.ip(netip.MustParseAddr("fe80::2"), netip.MustParseAddr("ff02::12"), 112, make([]byte, 20)), want: xdpPass, reason: "pass_vrrp"},
		{name: "tcp to another address", in: tcpFlow(c, client4, 1000, other, tcpSYN), want: xdpPass, reason: "pass_not_service"},
		{name: "tcp6 to another address", in: tcpFlow(c, client6, 1000, other6, tcpSYN), want: xdpPass, reason: "pass_not_service"},
		{name: "vip, other port", in: c.ip(client4, vip4, 6, tcp(1000, 443, tcpSYN, nil)), want: xdpPass, reason: "pass_not_service"},
		{name: "vip:80 over udp", in: c.ip(client4, vip4, 17, udp(1000, 80, []byte("x"))), want: xdpPass, reason: "pass_not_service"},
		{name: "vip6:80 over udp", in: c.ip(client6, vip6, 17, udp(1000, 80, []byte("x"))), want: xdpPass, reason: "pass_not_service"},
		{name: "service of an unserved vip", in: tcpFlow(c, client4, 1000, unserved, tcpSYN), want: xdpPass, reason: "pass_not_served"},
		{name: "icmp echo to the vip", in: c.ip(client4, vip4, 1, icmp(8, 0, 0x1234_0001, []byte("ping"))), want: xdpPass, reason: "pass_icmp"},
		{name: "icmpv6 echo to the vip", in: c.ip(client6, vip6, 58, icmp(128, 0, 0x1234_0001, []byte("ping"))), want: xdpPass, reason: "pass_icmp"},
		{name: "gre to the vip", in: c.ip(client4, vip4, 47, make([]byte, 8)), want: xdpPass, reason: "pass_other_proto"},
		{name: "esp to the vip6", in: c.ip(client6, vip6, 50, make([]byte, 8)), want: xdpPass, reason: "pass_other_proto"},
	})
}

func TestFixturesForwarding(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	e.dp.fakeVLANRoute(netip.MustParseAddr("10.100.0.31"), e.eth0, 100)
	e.dp.fakeVLANRoute(netip.MustParseAddr("10.200.0.41"), e.eth0, 200)
	vipVLAN := netip.MustParseAddr("192.0.2.100")
	vipRetag := netip.MustParseAddr("192.0.2.101")
	vipRedirect := netip.MustParseAddr("192.0.2.21")
	vipLocal := netip.MustParseAddr("192.0.2.1")
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11", "10.0.0.12")...),
			svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11", "fd00::12")...),
			svc(vipVLAN, 80, dataplane.RoundRobin, backends("10.100.0.31")...),
			svc(vipRetag, 80, dataplane.RoundRobin, backends("10.200.0.41")...),
			svc(vipRedirect, 80, dataplane.RoundRobin, backends("10.1.0.21")...),
			svc(vipLocal, 80, dataplane.RoundRobin, backends("10.0.0.1")...),
		},
		Served: served(vip4, vip6, vipRedirect, vipLocal, vipVLAN, vipRetag),
	})
	c := e.fromClient()
	tagged := func(f frame, vlan int) frame { f.vlan = vlan; f.pcp = 5; return f }
	toVLAN := func(addr string, vlan int) frame {
		return frame{dst: backendMAC(netip.MustParseAddr(addr)), src: e.eth0.HardwareAddr, vlan: vlan, pcp: 5}
	}
	toEth1 := frame{dst: backendMAC(netip.MustParseAddr("10.1.0.21")), src: e.eth1.HardwareAddr, vlan: -1}

	e.runFixtures([]fixture{
		{name: "rr: first flow to the first backend", in: tcpFlow(c, client4, 1000, vip4, tcpSYN),
			want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 1000, vip4, tcpSYN), reason: "flow_new"},
		{name: "rr: second flow to the second", in: tcpFlow(c, client4, 1001, vip4, tcpSYN),
			want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.12"), client4, 1001, vip4, tcpSYN), reason: "flow_new"},
		{name: "first flow again: flow table", in: tcpFlow(c, client4, 1000, vip4, tcpACK),
			want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 1000, vip4, tcpACK), reason: "flow_hit"},
		{name: "ipv6 rr: first flow", in: tcpFlow(c, client6, 1000, vip6, tcpSYN),
			want: xdpTX, out: tcpFlow(e.toBackend("fd00::11"), client6, 1000, vip6, tcpSYN), reason: "flow_new"},
		{name: "ipv6 rr: second flow", in: tcpFlow(c, client6, 1001, vip6, tcpSYN),
			want: xdpTX, out: tcpFlow(e.toBackend("fd00::12"), client6, 1001, vip6, tcpSYN), reason: "verdict_tx"},
		{name: "ipv6 first flow again", in: tcpFlow(c, client6, 1000, vip6, tcpACK),
			want: xdpTX, out: tcpFlow(e.toBackend("fd00::11"), client6, 1000, vip6, tcpACK), reason: "flow_hit"},
		{name: "vlan 100 frame to a backend on vlan 100: tag kept", in: tcpFlow(tagged(c, 100), client4, 1000, vipVLAN, tcpSYN),
			want: xdpTX, out: tcpFlow(toVLAN("10.100.0.31", 100), client4, 1000, vipVLAN, tcpSYN)},
		{name: "vlan 100 frame to a backend on vlan 200: retagged", in: tcpFlow(tagged(c, 100), client4, 1000, vipRetag, tcpSYN),
			want: xdpTX, out: tcpFlow(toVLAN("10.200.0.41", 200), client4, 1000, vipRetag, tcpSYN)},
		{name: "untagged frame to a backend on a vlan: stack", in: tcpFlow(c, client4, 1001, vipVLAN, tcpSYN),
			want: xdpPass, reason: "pass_vlan_mismatch"},
		{name: "tagged frame to an untagged backend: stack", in: tcpFlow(tagged(c, 100), client4, 1002, vip4, tcpSYN),
			want: xdpPass, reason: "pass_vlan_mismatch"},
		{name: "backend behind eth1: redirect", in: tcpFlow(c, client4, 1000, vipRedirect, tcpSYN),
			want: xdpRedirect, out: tcpFlow(toEth1, client4, 1000, vipRedirect, tcpSYN), reason: "verdict_redirect"},
		{name: "backend is this host: local stack", in: tcpFlow(c, client4, 1000, vipLocal, tcpSYN),
			want: xdpPass, reason: "pass_local_backend"},
		{name: "local backend, flow table", in: tcpFlow(c, client4, 1000, vipLocal, tcpACK),
			want: xdpPass, reason: "flow_hit"},
	})

	// Counters: per backend and per service, packets and bytes.
	st, err := e.dp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	frameLen := uint64(len(tcpFlow(c, client4, 1000, vip4, tcpSYN)))
	for _, s := range st.Services {
		if s.Key.Addr != vip4 {
			continue
		}
		if s.Packets != 3 || s.NewFlows != 2 || s.Bytes != 3*frameLen {
			t.Errorf("service %s: %d packets, %d bytes, %d new flows; want 3, %d, 2", s.Key, s.Packets, s.Bytes, s.NewFlows, 3*frameLen)
		}
		want := map[string]uint64{"10.0.0.11:80": 2, "10.0.0.12:80": 1}
		for _, b := range s.Backends {
			if b.Packets != want[b.String()] || b.Bytes != want[b.String()]*frameLen {
				t.Errorf("backend %s: %d packets %d bytes, want %d packets", b, b.Packets, b.Bytes, want[b.String()])
			}
		}
	}
}

// forwardedTo runs frames through the program and names the backend each
// went to (by destination MAC), "pass" or "drop" otherwise.
func (e *fixtureEnv) forwardedTo(frames ...[]byte) []string {
	e.t.Helper()
	return e.forwardedToOn(0, frames...)
}

// forwardedToOn is forwardedTo with the program run on cpu.
func (e *fixtureEnv) forwardedToOn(cpu int, frames ...[]byte) []string {
	e.t.Helper()
	byMAC := make(map[string]string)
	for _, a := range []string{"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "fd00::11", "fd00::12", "10.1.0.21"} {
		byMAC[backendMAC(netip.MustParseAddr(a)).String()] = a
	}
	var out []string
	err := e.dp.withRunnerOn(cpu, e.eth0.Index, func(r *runner) error {
		for _, f := range frames {
			v, o, err := r.run(f)
			if err != nil {
				return err
			}
			switch v {
			case xdpTX, xdpRedirect:
				out = append(out, byMAC[net.HardwareAddr(o[:6]).String()])
			case xdpPass:
				out = append(out, "pass")
			default:
				out = append(out, verdictNames[v])
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func count(names []string) map[string]int {
	m := make(map[string]int)
	for _, n := range names {
		m[n]++
	}
	return m
}

func TestFixturesSchedulers(t *testing.T) {
	c := frame{vlan: -1}
	flows := func(e *fixtureEnv, vip, client netip.Addr, from, n int) [][]byte {
		var out [][]byte
		for i := from; i < from+n; i++ {
			out = append(out, tcpFlow(e.fromClient(), client, uint16(i), vip, tcpSYN))
		}
		return out
	}
	_ = c

	t.Run("wrr", func(t *testing.T) {
		e := newFixtureEnv(t, Options{})
		e.apply(dataplane.DesiredState{
			Services: []dataplane.Service{svc(vip4, 80, dataplane.WeightedRoundRobin, weighted("10.0.0.11", 3), weighted("10.0.0.12", 1))},
			Served:   served(vip4),
		})
		got := e.forwardedTo(flows(e, vip4, client4, 1000, 8)...)
		want := []string{"10.0.0.11", "10.0.0.11", "10.0.0.12", "10.0.0.11", "10.0.0.11", "10.0.0.11", "10.0.0.12", "10.0.0.11"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("wrr 3:1 sent flows to %v, want %v", got, want)
		}
	})
	for _, sched := range []dataplane.Scheduler{dataplane.SourceHash, dataplane.Maglev} {
		t.Run(string(sched), func(t *testing.T) {
			e := newFixtureEnv(t, Options{MaglevTableSize: 251})
			e.apply(dataplane.DesiredState{
				Services: []dataplane.Service{
					svc(vip4, 80, sched, backends("10.0.0.11", "10.0.0.12", "10.0.0.13")...),
					svc(vip6, 80, sched, backends("fd00::11", "fd00::12")...),
				},
				Served: served(vip4, vip6),
			})
			for _, tc := range []struct {
				vip    netip.Addr
				prefix string
			}{{vip4, "203.0.113."}, {vip6, "2001:db8:1::"}} {
				seen := make(map[string]bool)
				for host := 1; host <= 20; host++ {
					client := netip.MustParseAddr(fmt.Sprintf("%s%d", tc.prefix, host))
					got := count(e.forwardedTo(flows(e, tc.vip, client, 2000, 5)...))
					if len(got) != 1 {
						t.Errorf("%s: client %s spread over %v, want one backend", sched, client, got)
					}
					for b := range got {
						seen[b] = true
					}
				}
				if len(seen) < 2 {
					t.Errorf("%s: 20 clients of %s all went to %v", sched, tc.vip, seen)
				}
			}
		})
	}
	t.Run("sh-port", func(t *testing.T) {
		e := newFixtureEnv(t, Options{})
		s := svc(vip4, 80, dataplane.SourceHash, backends("10.0.0.11", "10.0.0.12", "10.0.0.13")...)
		s.SchedulerFlags = []string{"sh-port"}
		e.apply(dataplane.DesiredState{Services: []dataplane.Service{s}, Served: served(vip4)})
		if got := count(e.forwardedTo(flows(e, vip4, client4, 3000, 30)...)); len(got) < 2 {
			t.Errorf("sh-port: 30 ports of one client all went to %v", got)
		}
	})
	t.Run("lc", func(t *testing.T) {
		e := newFixtureEnv(t, Options{})
		e.apply(dataplane.DesiredState{
			Services: []dataplane.Service{svc(vip4, 80, dataplane.LeastConn, backends("10.0.0.11", "10.0.0.12")...)},
			Served:   served(vip4),
		})
		got := e.forwardedTo(flows(e, vip4, client4, 1000, 4)...)
		if c := count(got); c["10.0.0.11"] != 2 || c["10.0.0.12"] != 2 {
			t.Fatalf("lc: 4 flows went %v, want 2 and 2", got)
		}
		// Close both flows of the first backend it chose: the next two
		// new flows go there.
		first := got[0]
		var closing [][]byte
		for i, b := range got {
			if b == first {
				closing = append(closing, tcpFlow(e.fromClient(), client4, uint16(1000+i), vip4, tcpFIN|tcpACK))
			}
		}
		e.forwardedTo(closing...)
		e.wantActive(vip4, map[string]uint64{first: 0})
		if got := e.forwardedTo(flows(e, vip4, client4, 2000, 2)...); got[0] != first || got[1] != first {
			t.Errorf("lc: after closing %s's flows, new flows went to %v", first, got)
		}
	})
	t.Run("wlc", func(t *testing.T) {
		e := newFixtureEnv(t, Options{})
		e.apply(dataplane.DesiredState{
			Services: []dataplane.Service{svc(vip4, 80, dataplane.WeightedLeastConn, weighted("10.0.0.11", 1), weighted("10.0.0.12", 3))},
			Served:   served(vip4),
		})
		got := count(e.forwardedTo(flows(e, vip4, client4, 1000, 8)...))
		if got["10.0.0.11"] != 2 || got["10.0.0.12"] != 6 {
			t.Errorf("wlc 1:3: 8 flows went %v, want 2 and 6", got)
		}
		e.wantActive(vip4, map[string]uint64{"10.0.0.11": 2, "10.0.0.12": 6})
	})
	t.Run("no usable backend", func(t *testing.T) {
		e := newFixtureEnv(t, Options{})
		bes := backends("10.0.0.11", "10.0.0.12")
		bes[0].State = dataplane.BackendDown
		bes[1].Weight = 0
		e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, bes...)}, Served: served(vip4)})
		e.runFixtures([]fixture{{name: "all down or weight 0", in: tcpFlow(e.fromClient(), client4, 1, vip4, tcpSYN), want: xdpPass, reason: "pass_no_backend"}})
	})
}

// wantActive checks the active-flow counts Stats reports for vip's backends.
func (e *fixtureEnv) wantActive(vip netip.Addr, want map[string]uint64) {
	e.t.Helper()
	st, err := e.dp.Stats()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st.Services {
		if s.Key.Addr != vip {
			continue
		}
		for _, b := range s.Backends {
			if w, ok := want[b.Addr.String()]; ok && b.ActiveFlows != w {
				e.t.Errorf("backend %s: %d active flows, want %d", b, b.ActiveFlows, w)
			}
		}
	}
}

func TestFixturesPersistence(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	s4 := svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11", "10.0.0.12")...)
	s4.Persistence = 50 * time.Second
	s4.PersistenceBits = 24
	s6 := svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11", "fd00::12")...)
	s6.Persistence = 50 * time.Second
	s6.PersistenceBits = 64
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{s4, s6}, Served: served(vip4, vip6)})
	c := e.fromClient()
	neighbour := netip.MustParseAddr("203.0.113.77") // same /24 as client4
	stranger := netip.MustParseAddr("198.51.100.7")
	neighbour6 := netip.MustParseAddr("2001:db8:1::77") // same /64 as client6
	advance := func(d time.Duration) func(*fixtureEnv) {
		return func(e *fixtureEnv) {
			if err := e.dp.advanceClock(d); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	to := func(addr string, client netip.Addr, port uint16, vip netip.Addr) []byte {
		return tcpFlow(e.toBackend(addr), client, port, vip, tcpSYN)
	}
	e.runFixtures([]fixture{
		{name: "first connection: rr picks the first", in: tcpFlow(c, client4, 1, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", client4, 1, vip4), reason: "flow_new"},
		{name: "second connection: pinned, not rr", in: tcpFlow(c, client4, 2, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", client4, 2, vip4), reason: "persist_hit"},
		{name: "same /24: pinned too", in: tcpFlow(c, neighbour, 3, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", neighbour, 3, vip4), reason: "persist_hit"},
		{name: "another client: rr goes on", in: tcpFlow(c, stranger, 4, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.12", stranger, 4, vip4), reason: "flow_new"},
		{name: "49 s later: still pinned", before: advance(49 * time.Second), in: tcpFlow(c, client4, 5, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", client4, 5, vip4), reason: "persist_hit"},
		{name: "49 s after that: the pin was refreshed", before: advance(49 * time.Second), in: tcpFlow(c, client4, 6, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", client4, 6, vip4), reason: "persist_hit"},
		{name: "stranger's pin expired (98 s): rescheduled by rr", in: tcpFlow(c, stranger, 7, vip4, tcpSYN), want: xdpTX, out: to("10.0.0.11", stranger, 7, vip4), reason: "flow_new"},
		{name: "ipv6: first connection", in: tcpFlow(c, client6, 1, vip6, tcpSYN), want: xdpTX, out: to("fd00::11", client6, 1, vip6)},
		{name: "ipv6: same /64 pinned", in: tcpFlow(c, neighbour6, 2, vip6, tcpSYN), want: xdpTX, out: to("fd00::11", neighbour6, 2, vip6), reason: "persist_hit"},
		{name: "ipv6: 51 s idle: pin expired", before: advance(51 * time.Second), in: tcpFlow(c, neighbour6, 3, vip6, tcpSYN), want: xdpTX, out: to("fd00::12", neighbour6, 3, vip6), reason: "flow_new"},
	})
}

func TestFixturesFlowTable(t *testing.T) {
	e := newFixtureEnv(t, Options{TCPTimeout: 100 * time.Second})
	state := func(bes ...dataplane.Backend) func(*fixtureEnv) {
		return func(e *fixtureEnv) {
			e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, bes...)}, Served: served(vip4)})
		}
	}
	with := func(addr string, s dataplane.BackendState) dataplane.Backend {
		b := backends(addr)[0]
		b.State = s
		return b
	}
	c := e.fromClient()
	flow := func(port uint16, to string) (in, out []byte) {
		return tcpFlow(c, client4, port, vip4, tcpACK), tcpFlow(e.toBackend(to), client4, port, vip4, tcpACK)
	}
	in1, out1to11 := flow(1, "10.0.0.11")
	in2, out2to12 := flow(2, "10.0.0.12")
	e.runFixtures([]fixture{
		{name: "flow 1 to .11", before: state(backends("10.0.0.11", "10.0.0.12")...), in: in1, want: xdpTX, out: out1to11, reason: "flow_new"},
		{name: "flow 2 to .12", in: in2, want: xdpTX, out: out2to12},
		{name: "backend .13 added: flow 1 stays", before: state(backends("10.0.0.11", "10.0.0.12", "10.0.0.13")...), in: in1, want: xdpTX, out: out1to11, reason: "flow_hit"},
		{name: "backend .11 draining: flow 1 stays", before: state(with("10.0.0.11", dataplane.BackendDraining), with("10.0.0.12", dataplane.BackendUp), with("10.0.0.13", dataplane.BackendUp)), in: in1, want: xdpTX, out: out1to11, reason: "flow_hit"},
	})
	// A draining backend takes no new flows.
	var fresh [][]byte
	for p := 100; p < 110; p++ {
		fresh = append(fresh, tcpFlow(c, client4, uint16(p), vip4, tcpSYN))
	}
	if got := count(e.forwardedTo(fresh...)); got["10.0.0.11"] != 0 || got["10.0.0.12"] != 5 || got["10.0.0.13"] != 5 {
		t.Errorf("new flows with .11 draining went %v, want 5 to .12 and 5 to .13", got)
	}
	e.runFixtures([]fixture{
		{name: "backend .11 removed: flow 1 rescheduled", before: state(backends("10.0.0.12", "10.0.0.13")...), in: in1, want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.12"), client4, 1, vip4, tcpACK), reason: "flow_rescheduled"},
		{name: "rescheduled flow 1 sticks", before: state(backends("10.0.0.12", "10.0.0.13", "10.0.0.14")...), in: in1, want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.12"), client4, 1, vip4, tcpACK), reason: "flow_hit"},
		{name: "backend .12 down: flow 2 rescheduled", before: state(with("10.0.0.12", dataplane.BackendDown), with("10.0.0.13", dataplane.BackendUp)), in: in2, want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.13"), client4, 2, vip4, tcpACK), reason: "flow_rescheduled"},
	})
	// .14 was removed with the last state and .11 comes back: the new
	// backend may reuse a freed id, but flows of the old one never follow it.
	e.runFixtures([]fixture{
		{name: "flow 3 to .13", before: state(backends("10.0.0.13")...), in: tcpFlow(c, client4, 3, vip4, tcpSYN), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.13"), client4, 3, vip4, tcpSYN)},
		{name: ".13 replaced by .11 (same id, new generation): flow 3 rescheduled", before: state(backends("10.0.0.11")...), in: tcpFlow(c, client4, 3, vip4, tcpACK), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 3, vip4, tcpACK), reason: "flow_rescheduled"},
		{name: "idle past the tcp timeout: scheduled again", before: func(e *fixtureEnv) {
			state(backends("10.0.0.11")...)(e)
			if err := e.dp.advanceClock(101 * time.Second); err != nil {
				t.Fatal(err)
			}
		}, in: tcpFlow(c, client4, 3, vip4, tcpACK), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 3, vip4, tcpACK), reason: "flow_expired"},
	})
}

func TestFixturesFragments(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	udpSvc := func(vip netip.Addr, bes ...dataplane.Backend) dataplane.Service {
		s := svc(vip, 53, dataplane.RoundRobin, bes...)
		s.Key.Protocol = dataplane.UDP
		return s
	}
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			udpSvc(vip4, backends("10.0.0.11", "10.0.0.12", "10.0.0.13")...),
			udpSvc(vip6, backends("fd00::11", "fd00::12")...),
		},
		Served: served(vip4, vip6),
	})
	c := e.fromClient()
	payload := bytes.Repeat([]byte("x"), 64)
	seen := make(map[string]bool)
	for host := 1; host <= 16; host++ {
		client := netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", host))
		first := c.wrap(etherIPv4, ipv4(client, vip4, 17, udp(5000, 53, payload), ipv4Opts{id: 7, moreFragments: true}))
		second := c.wrap(etherIPv4, ipv4(client, vip4, 17, payload, ipv4Opts{id: 7, fragOffset: 9}))
		got := e.forwardedTo(first, second)
		if got[0] != got[1] || got[0] == "pass" {
			t.Errorf("ipv4 fragments of %s went to %v, want one backend", client, got)
		}
		seen[got[0]] = true

		client6 := netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%d", host))
		first6 := c.wrap(etherIPv6, ipv6(client6, vip6, 17, udp(5000, 53, payload), fragExt(0, true, 9)))
		second6 := c.wrap(etherIPv6, ipv6(client6, vip6, 17, payload, fragExt(9, false, 9)))
		got6 := e.forwardedTo(first6, second6)
		if got6[0] != got6[1] || got6[0] == "pass" {
			t.Errorf("ipv6 fragments of %s went to %v, want one backend", client6, got6)
		}
		seen[got6[0]] = true
	}
	if len(seen) < 4 {
		t.Errorf("fragments of 16 clients per family used only %v", seen)
	}
	first := c.wrap(etherIPv4, ipv4(client4, vip4, 17, udp(5000, 53, payload), ipv4Opts{id: 8, moreFragments: true}))
	out := e.forwardedTo(first)[0]
	e.runFixtures([]fixture{
		{name: "a later fragment: counted, same backend", in: c.wrap(etherIPv4, ipv4(client4, vip4, 17, payload, ipv4Opts{id: 8, fragOffset: 9})),
			want: xdpTX, out: e.toBackend(out).wrap(etherIPv4, ipv4(client4, vip4, 17, payload, ipv4Opts{id: 8, fragOffset: 9})), reason: "fragment"},
		{name: "fragment to a VIP without that protocol", in: c.wrap(etherIPv4, ipv4(client4, vip4, 6, payload, ipv4Opts{id: 9, fragOffset: 9})),
			want: xdpPass, reason: "pass_not_service"},
	})
}

func TestFixturesICMP(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	vipSH := netip.MustParseAddr("192.0.2.33")
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11", "10.0.0.12")...),
			svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11", "fd00::12")...),
			svc(vipSH, 80, dataplane.SourceHash, backends("10.0.0.11", "10.0.0.12", "10.0.0.13")...),
		},
		Served: served(vip4, vip6, vipSH),
	})
	c := e.fromClient()
	router := netip.MustParseAddr("198.51.100.1")
	router6 := netip.MustParseAddr("2001:db8:ff::1")
	// The quoted packet is the backend's reply: from VIP:80 to the client.
	fragNeeded := func(f frame, vip netip.Addr, cport uint16) []byte {
		quoted := ipv4(vip, client4, 6, tcp(80, cport, tcpACK, nil)[:8], ipv4Opts{})
		return f.ip(router, vip, 1, icmp(3, 4, 1400, quoted))
	}
	tooBig := func(f frame, cport uint16) []byte {
		quoted := ipv6(vip6, client6, 6, tcp(80, cport, tcpACK, nil)[:8])
		return f.ip(router6, vip6, 58, icmp(2, 0, 1280, quoted))
	}
	e.forwardedTo(tcpFlow(c, client4, 999, vip4, tcpSYN), tcpFlow(c, client6, 999, vip6, tcpSYN)) // to .11 / fd00::11
	if got := e.forwardedTo(tcpFlow(c, client4, 1000, vip4, tcpSYN), tcpFlow(c, client6, 1000, vip6, tcpSYN)); got[0] != "10.0.0.12" || got[1] != "fd00::12" {
		t.Fatalf("setup: flows went to %v", got)
	}
	shBackend := e.forwardedTo(tcpFlow(c, client4, 1000, vipSH, tcpSYN))[0]
	e.runFixtures([]fixture{
		{name: "frag needed about the flow on .12", in: fragNeeded(c, vip4, 1000), want: xdpTX, out: fragNeeded(e.toBackend("10.0.0.12"), vip4, 1000), reason: "icmp_forwarded"},
		{name: "packet too big about the flow on fd00::12", in: tooBig(c, 1000), want: xdpTX, out: tooBig(e.toBackend("fd00::12"), 1000), reason: "icmp_forwarded"},
		{name: "frag needed about no known flow (rr)", in: fragNeeded(c, vip4, 4242), want: xdpPass, reason: "pass_icmp_no_flow"},
		{name: "frag needed, sh service: the backend sh picks", in: fragNeeded(c, vipSH, 5555), want: xdpTX, out: fragNeeded(e.toBackend(shBackend), vipSH, 5555), reason: "icmp_forwarded"},
		{name: "other unreachable codes: stack", in: c.ip(router, vip4, 1, icmp(3, 1, 0, ipv4(vip4, client4, 6, tcp(80, 1000, tcpACK, nil)[:8], ipv4Opts{}))), want: xdpPass, reason: "pass_icmp"},
	})
}

func TestFixturesMalformed(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...),
			svc(vip6, 80, dataplane.RoundRobin, backends("fd00::11")...),
		},
		Served: served(vip4, vip6),
	})
	c := e.fromClient()
	good := tcpFlow(c, client4, 1000, vip4, tcpSYN)
	good6 := tcpFlow(c, client6, 1000, vip6, tcpSYN)
	tagged := c
	tagged.vlan = 100
	qinq := tagged.wrap(etherVLAN, append([]byte{0, 100, 0x08, 0}, good[14:]...))
	hopByHop := func(n int) []byte {
		var exts []ext
		for i := 0; i < n; i++ {
			exts = append(exts, ext{typ: 60, body: make([]byte, 6)})
		}
		return c.wrap(etherIPv6, ipv6(client6, vip6, 6, tcp(1000, 80, tcpSYN, nil), exts...))
	}
	shortQuote := c.ip(netip.MustParseAddr("198.51.100.1"), vip4, 1, icmp(3, 4, 1400, ipv4(vip4, client4, 6, nil, ipv4Opts{})[:12]))
	e.runFixtures([]fixture{
		{name: "vlan tag cut short", in: c.wrap(etherVLAN, []byte{0, 100})[:16], want: xdpPass, reason: "pass_truncated_eth"},
		{name: "stacked vlan tags", in: qinq, want: xdpPass, reason: "pass_not_ip"},
		{name: "ipv4 header cut short", in: good[:14+10], want: xdpPass, reason: "pass_truncated_ip"},
		{name: "ipv4 ihl 3", in: c.wrap(etherIPv4, ipv4(client4, vip4, 6, tcp(1000, 80, tcpSYN, nil), ipv4Opts{ihlOverride: 3})), want: xdpPass, reason: "pass_bad_ip_header"},
		{name: "version 5 in an ipv4 frame", in: c.wrap(etherIPv4, ipv4(client4, vip4, 6, tcp(1000, 80, tcpSYN, nil), ipv4Opts{versionOverride: 5})), want: xdpPass, reason: "pass_bad_ip_header"},
		{name: "ipv4 options longer than the frame", in: c.wrap(etherIPv4, ipv4(client4, vip4, 6, nil, ipv4Opts{options: 1}))[:14+22], want: xdpPass, reason: "pass_truncated_ip"},
		{name: "tcp ports cut short", in: good[:14+20+2], want: xdpPass, reason: "pass_truncated_l4"},
		{name: "tcp flags cut short", in: good[:14+20+10], want: xdpPass, reason: "pass_truncated_l4"},
		{name: "ipv6 header cut short", in: good6[:14+30], want: xdpPass, reason: "pass_truncated_ip"},
		{name: "ipv6 with 7 extension headers", in: hopByHop(7), want: xdpPass, reason: "pass_ipv6_ext_limit"},
		{name: "ipv6 extension header cut short", in: hopByHop(2)[:14+40+4], want: xdpPass, reason: "pass_truncated_ip"},
		{name: "icmp frag needed with a short quote", in: shortQuote, want: xdpPass, reason: "pass_truncated_icmp"},
		{name: "ipv4 options are skipped", in: c.wrap(etherIPv4, ipv4(client4, vip4, 6, tcp(1000, 80, tcpSYN, nil), ipv4Opts{options: 2})), want: xdpTX,
			out: e.toBackend("10.0.0.11").wrap(etherIPv4, ipv4(client4, vip4, 6, tcp(1000, 80, tcpSYN, nil), ipv4Opts{options: 2}))},
		{name: "ipv6 extension headers are skipped", in: hopByHop(3), want: xdpTX,
			out: func() []byte { f := hopByHop(3); copy(f, e.toBackend("fd00::11").wrap(0, nil)[:12]); return f }()},
	})
}
