package xdp

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// tableID is the kernel id of the scheduling table installed for key.
func (e *fixtureEnv) tableID(key dataplane.ServiceKey) ebpf.MapID {
	e.t.Helper()
	e.dp.mu.Lock()
	st := e.dp.services[key]
	e.dp.mu.Unlock()
	if st == nil {
		e.t.Fatalf("no service %s", key)
	}
	var id ebpf.MapID
	if err := e.dp.objs.SchedTables.Lookup(st.id, &id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestApplyIsIdempotent(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	state := dataplane.DesiredState{
		Services: []dataplane.Service{svc(vip4, 80, dataplane.Maglev, backends("10.0.0.11", "10.0.0.12")...)},
		Served:   served(vip4),
	}
	e.apply(state)
	key := state.Services[0].Key
	table := e.tableID(key)
	e.apply(state)
	if got := e.tableID(key); got != table {
		t.Errorf("second Apply of the same state swapped the table (%d -> %d)", table, got)
	}
	// Reordering backends changes nothing either.
	state.Services[0].Backends[0], state.Services[0].Backends[1] = state.Services[0].Backends[1], state.Services[0].Backends[0]
	e.apply(state)
	if got := e.tableID(key); got != table {
		t.Errorf("reordered backends swapped the table")
	}
	// A weight change does.
	state.Services[0].Backends[0].Weight = 5
	e.apply(state)
	if got := e.tableID(key); got == table {
		t.Errorf("weight change kept the old table")
	}
}

func TestApplyRejectsBadInputAndKeepsTheRest(t *testing.T) {
	e := newFixtureEnv(t, Options{})
	good := svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...)
	later := svc(vip4, 443, dataplane.RoundRobin, backends("10.0.0.12")...)
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{good, later}, Served: served(vip4)})

	fwmark := svc(vip4, 0, dataplane.RoundRobin, backends("10.0.0.11")...)
	fwmark.Key.FWMark = 7
	nat := svc(vip4, 8080, dataplane.RoundRobin, backends("10.0.0.11")...)
	nat.Forward = dataplane.NAT
	lblc := svc(vip4, 8081, "lblc", backends("10.0.0.11")...)
	mixed := svc(vip4, 8082, dataplane.RoundRobin, backends("fd00::11")...)
	negative := svc(vip4, 8083, dataplane.RoundRobin, weighted("10.0.0.11", -1))
	// The 443 service turns invalid: it must keep serving as before.
	broken := later
	broken.Scheduler = "wrrr"
	err := e.dp.Apply(dataplane.DesiredState{
		Services: []dataplane.Service{good, fwmark, nat, lblc, mixed, negative, broken, good},
		Served:   served(vip4),
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"fwmark 7: xdp cannot see firewall marks",
		"lb_kind NAT not supported by xdp",
		`lb_algo "lblc" not supported by xdp (want rr, wrr, sh, mh, lc, wlc)`,
		"address family differs",
		"negative weight -1",
		`lb_algo "wrrr"`,
		"TCP 192.0.2.10:80: listed twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	c := e.fromClient()
	e.runFixtures([]fixture{
		{name: "valid service still served", in: tcpFlow(c, client4, 1, vip4, tcpSYN), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 1, vip4, tcpSYN)},
		{name: "service that turned invalid keeps its old state", in: c.ip(client4, vip4, 6, tcp(2, 443, tcpSYN, nil)), want: xdpTX, out: e.toBackend("10.0.0.12").ip(client4, vip4, 6, tcp(2, 443, tcpSYN, nil))},
		{name: "invalid new service not installed", in: c.ip(client4, vip4, 6, tcp(3, 8080, tcpSYN, nil)), want: xdpPass, reason: "pass_not_service"},
	})
	for _, s := range []dataplane.ServedVIP{{Addr: vip4}, {Interface: "eth0"}, {Addr: vip4, Interface: "nosuch0"}} {
		if err := e.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{good}, Served: []dataplane.ServedVIP{s}}); err == nil {
			t.Errorf("served %+v: no error", s)
		}
	}
}

// xdpMode reports how the program is attached to ifname in ns: "" when
// not, else "native" or "generic".
func xdpMode(t *testing.T, ns *testnet.Namespace, ifname string) string {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	x := l.Attrs().Xdp
	switch {
	case x == nil || !x.Attached:
		return ""
	case x.AttachMode == nl_XDP_ATTACHED_DRV:
		return "native"
	case x.AttachMode == nl_XDP_ATTACHED_SKB:
		return "generic"
	}
	return fmt.Sprintf("mode-%d", x.AttachMode)
}

// XDP_ATTACHED_* from linux/if_link.h.
const (
	nl_XDP_ATTACHED_DRV = 1
	nl_XDP_ATTACHED_SKB = 2
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAttachFollowsServedInterfaces(t *testing.T) {
	var logs logBuffer
	e := newFixtureEnv(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	state := func(ifnames ...string) dataplane.DesiredState {
		s := dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...)}}
		for _, n := range ifnames {
			s.Served = append(s.Served, dataplane.ServedVIP{Addr: vip4, Interface: n})
		}
		return s
	}
	modes := func() string {
		return fmt.Sprintf("eth0=%q eth1=%q lo=%q", xdpMode(t, e.lb, "eth0"), xdpMode(t, e.lb, "eth1"), xdpMode(t, e.lb, "lo"))
	}
	e.apply(state())
	if got := modes(); got != `eth0="" eth1="" lo=""` {
		t.Errorf("nothing served: %s", got)
	}
	e.apply(state("eth0"))
	if got := modes(); got != `eth0="native" eth1="" lo=""` {
		t.Errorf("served on eth0: %s", got)
	}
	// Several interfaces; lo has no native XDP: auto falls back to
	// generic mode and says so.
	e.apply(state("eth0", "eth1", "lo"))
	if got := modes(); got != `eth0="native" eth1="native" lo="generic"` {
		t.Errorf("served on eth0, eth1 and lo: %s", got)
	}
	if !strings.Contains(logs.String(), "driver has no native XDP: attached in generic mode") {
		t.Errorf("no warning about generic mode on lo:\n%s", logs.String())
	}
	e.apply(state("eth1"))
	if got := modes(); got != `eth0="" eth1="native" lo=""` {
		t.Errorf("served on eth1 only: %s", got)
	}
	e.apply(state())
	if got := modes(); got != `eth0="" eth1="" lo=""` {
		t.Errorf("nothing served again: %s", got)
	}
}

func TestAttachModes(t *testing.T) {
	for _, tc := range []struct {
		mode    Mode
		ifname  string
		want    string
		wantErr string
	}{
		{ModeGeneric, "eth0", "generic", ""},
		{ModeNative, "eth0", "native", ""},
		{ModeNative, "lo", "", "attach xdp to lo"},
	} {
		t.Run(fmt.Sprintf("%s on %s", tc.mode, tc.ifname), func(t *testing.T) {
			e := newFixtureEnv(t, Options{Mode: tc.mode})
			err := e.dp.Apply(dataplane.DesiredState{
				Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...)},
				Served:   []dataplane.ServedVIP{{Addr: vip4, Interface: tc.ifname}},
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := xdpMode(t, e.lb, tc.ifname); got != tc.want {
				t.Errorf("attached %q, want %q", got, tc.want)
			}
		})
	}
}

func (e *fixtureEnv) setNeighbour(ifname string, addr netip.Addr, hw net.HardwareAddr) {
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
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: addr.AsSlice(), HardwareAddr: hw}
	if err := h.NeighSet(n); err != nil {
		e.t.Fatal(err)
	}
}

func TestNeighbourChangesAreFollowed(t *testing.T) {
	e := newFixtureEnv(t, Options{ProbeTimeout: 200 * time.Millisecond})
	unknown := netip.MustParseAddr("10.0.0.99") // no neighbour entry, nobody answers ARP
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{
			svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11")...),
			svc(vip4, 81, dataplane.RoundRobin, backends(unknown.String())...),
		},
		Served: served(vip4),
	})
	c := e.fromClient()
	to81 := func(f frame, port uint16) []byte { return f.ip(client4, vip4, 6, tcp(port, 81, tcpSYN, nil)) }
	e.runFixtures([]fixture{
		{name: "flow to .11", in: tcpFlow(c, client4, 1, vip4, tcpACK), want: xdpTX, out: tcpFlow(e.toBackend("10.0.0.11"), client4, 1, vip4, tcpACK)},
		{name: "backend without a MAC takes nothing", in: to81(c, 1), want: xdpPass, reason: "pass_no_backend"},
	})

	moved := mac(0xab)
	e.setNeighbour("eth0", netip.MustParseAddr("10.0.0.11"), moved)
	e.setNeighbour("eth0", unknown, mac(0x99))
	testnet.Eventually(t, 5*time.Second, "new MACs in use", func() error {
		var errs []string
		err := e.dp.withRunner(e.eth0.Index, func(r *runner) error {
			_, out, err := r.run(tcpFlow(c, client4, 1, vip4, tcpACK))
			if err != nil {
				return err
			}
			if !bytes.Equal(out[:6], moved) {
				errs = append(errs, fmt.Sprintf("existing flow still sent to %s", net.HardwareAddr(out[:6])))
			}
			v, out, err := r.run(to81(c, 3))
			if err != nil {
				return err
			}
			if v != xdpTX || !bytes.Equal(out[:6], mac(0x99)) {
				errs = append(errs, fmt.Sprintf("resolved backend: verdict %s to %s", verdictNames[v], net.HardwareAddr(out[:6])))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
}

func TestSweepExpiresFlowsAndRecountsActive(t *testing.T) {
	e := newFixtureEnv(t, Options{TCPTimeout: 60 * time.Second, UDPTimeout: 30 * time.Second})
	udpSvc := svc(vip4, 53, dataplane.LeastConn, backends("10.0.0.11", "10.0.0.12")...)
	udpSvc.Key.Protocol = dataplane.UDP
	tcpSvc := svc(vip4, 80, dataplane.LeastConn, backends("10.0.0.13")...)
	tcpSvc.Persistence = 100 * time.Second
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{udpSvc, tcpSvc}, Served: served(vip4)})
	c := e.fromClient()
	var frames [][]byte
	for p := 1; p <= 6; p++ {
		frames = append(frames, c.ip(client4, vip4, 17, udp(uint16(p), 53, []byte("q"))))
	}
	frames = append(frames, tcpFlow(c, client4, 1, vip4, tcpSYN), tcpFlow(c, client4, 2, vip4, tcpSYN))
	e.forwardedTo(frames...)
	e.wantActive(vip4, map[string]uint64{"10.0.0.11": 3, "10.0.0.12": 3, "10.0.0.13": 2})
	// Evicted or vanished flows never tell the program; the counts only
	// come down when Sweep recounts. Move time past the UDP timeout.
	if err := e.dp.advanceClock(45 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.dp.Sweep(); err != nil {
		t.Fatal(err)
	}
	e.wantActive(vip4, map[string]uint64{"10.0.0.11": 0, "10.0.0.12": 0, "10.0.0.13": 2})
	if n := mapLen(t, e.dp.objs.Flows4); n != 2 {
		t.Errorf("%d flows left after the sweep, want the 2 TCP ones", n)
	}
	if n := mapLen(t, e.dp.objs.Persistence); n != 1 {
		t.Errorf("%d persistence entries, want 1", n)
	}
	if err := e.dp.advanceClock(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.dp.Sweep(); err != nil {
		t.Fatal(err)
	}
	if n, p := mapLen(t, e.dp.objs.Flows4), mapLen(t, e.dp.objs.Persistence); n != 0 || p != 0 {
		t.Errorf("after 105 s: %d flows and %d persistence entries left, want none", n, p)
	}
	e.wantActive(vip4, map[string]uint64{"10.0.0.13": 0})
}

func mapLen(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		n int
		k []byte
		v []byte
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
