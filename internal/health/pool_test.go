package health

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func script(name string) Script { return Script{Args: []string{name}} }

// testVS is a virtual server of n real servers 10.0.0.1..n:80, weight 1,
// one TCP_CHECK each.
func testVS(n int, alpha bool) VirtualServer {
	vs := VirtualServer{Name: "TCP 192.0.2.1:80", Quorum: 1, QuorumUp: script("qup"), QuorumDown: script("qdown")}
	for i := 1; i <= n; i++ {
		vs.RealServers = append(vs.RealServers, RealServer{
			Addr:       netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 80),
			Weight:     1,
			NotifyUp:   script(fmt.Sprintf("up%d", i)),
			NotifyDown: script(fmt.Sprintf("down%d", i)),
			Checks:     []Check{{Spec: TCPCheck{}, Alpha: alpha, Timing: timing}},
		})
	}
	return vs
}

func newTestPool(t *testing.T, vs VirtualServer) (*pool, string) {
	t.Helper()
	cfg := Config{VirtualServers: []VirtualServer{vs}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, acts := newPool(&cfg)
	return p, renderActions(acts)
}

func renderActions(acts []action) string {
	var s []string
	for _, a := range acts {
		s = append(s, a.script.String())
	}
	return strings.Join(s, " ")
}

// renderView prints the backends as "addr:state/weight", the sorry server
// marked with "sorry=".
func renderView(vs *vsState) string {
	var s []string
	for _, b := range vs.view() {
		prefix := ""
		if b.sorry {
			prefix = "sorry="
		}
		s = append(s, fmt.Sprintf("%s%s:%s/%d", prefix, b.addr.Addr(), b.state, b.weight))
	}
	q := "quorum-down"
	if vs.quorumUp {
		q = "quorum-up"
	}
	return q + " " + strings.Join(s, " ")
}

// decide applies a checker verdict to real server i (1-based) and returns
// the scripts it triggers.
func decide(p *pool, i int, alive bool) string {
	return renderActions(p.checkerDecision(p.vss[0].rss[i-1].checks[0], alive))
}

func TestPoolStartsAliveWithoutAlpha(t *testing.T) {
	p, acts := newTestPool(t, testVS(2, false))
	if acts != "" {
		t.Errorf("start ran %q, want nothing", acts)
	}
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:up/1"; got != want {
		t.Errorf("view %q, want %q", got, want)
	}
	// The first pass confirms the state quietly; the first failure takes
	// the server down and runs notify_down.
	if got := decide(p, 1, true); got != "" {
		t.Errorf("first pass ran %q", got)
	}
	if got := decide(p, 2, false); got != "down2" {
		t.Errorf("first failure ran %q, want down2", got)
	}
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:down/0"; got != want {
		t.Errorf("view %q, want %q", got, want)
	}
	if got := decide(p, 1, false); got != "down1 qdown" {
		t.Errorf("last server down ran %q, want down1 qdown", got)
	}
	if got := decide(p, 1, true); got != "up1 qup" {
		t.Errorf("recovery ran %q, want up1 qup", got)
	}
}

func TestPoolAlpha(t *testing.T) {
	p, acts := newTestPool(t, testVS(2, true))
	if acts != "" {
		t.Errorf("start ran %q, want nothing (quorum starts down without a sorry server)", acts)
	}
	if got, want := renderView(p.vss[0]), "quorum-down 10.0.0.1:down/0 10.0.0.2:down/0"; got != want {
		t.Errorf("view %q, want %q", got, want)
	}
	// keepalived announces an alpha checker's first failure.
	if got := decide(p, 2, false); got != "down2" {
		t.Errorf("alpha first failure ran %q, want down2", got)
	}
	if got := decide(p, 1, true); got != "up1 qup" {
		t.Errorf("alpha first pass ran %q, want up1 qup", got)
	}
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:down/0"; got != want {
		t.Errorf("view %q, want %q", got, want)
	}
}

// TestPoolQuorumHysteresis follows keepalived.conf.quorum: ten servers,
// quorum 7, hysteresis 2, alpha. Quorum comes at 9 alive servers and goes
// below 5.
func TestPoolQuorumHysteresis(t *testing.T) {
	vs := testVS(10, true)
	vs.Quorum, vs.Hysteresis = 7, 2
	p, _ := newTestPool(t, vs)
	for i := 1; i <= 8; i++ {
		if got := decide(p, i, true); got != fmt.Sprintf("up%d", i) {
			t.Fatalf("server %d up ran %q", i, got)
		}
	}
	if p.vss[0].quorumUp {
		t.Fatal("quorum up with 8 of 7+2")
	}
	if got := decide(p, 9, true); got != "up9 qup" {
		t.Fatalf("9th server ran %q, want up9 qup", got)
	}
	for i := 1; i <= 4; i++ {
		if got := decide(p, i, false); got != fmt.Sprintf("down%d", i) {
			t.Fatalf("server %d down ran %q", i, got)
		}
	}
	if !p.vss[0].quorumUp {
		t.Fatal("quorum lost with 5 alive (threshold 7-2)")
	}
	if got := decide(p, 5, false); got != "down5 qdown" {
		t.Fatalf("dropping to 4 ran %q, want down5 qdown", got)
	}
	// Back up needs 9 again.
	for i := 1; i <= 4; i++ {
		decide(p, i, true)
	}
	if p.vss[0].quorumUp {
		t.Fatal("quorum regained at 8")
	}
	if got := decide(p, 5, true); got != "up5 qup" {
		t.Fatalf("9th server ran %q", got)
	}
}

func TestPoolSorryServer(t *testing.T) {
	vs := testVS(3, false)
	vs.Quorum = 2
	vs.Sorry = &SorryServer{Addr: netip.MustParseAddrPort("10.0.9.9:80")}
	vs.RealServers[2].Inhibit = true
	p, _ := newTestPool(t, vs)
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:up/1 10.0.0.3:up/1 sorry=10.0.9.9:down/0"; got != want {
		t.Errorf("start %q, want %q", got, want)
	}
	decide(p, 1, false)
	if got := decide(p, 2, false); got != "down2 qdown" {
		t.Errorf("losing quorum ran %q", got)
	}
	// The sorry server replaces the alive real server; an inhibited one
	// stays in the pool with weight 0.
	if got, want := renderView(p.vss[0]), "quorum-down 10.0.0.1:down/0 10.0.0.2:down/0 10.0.0.3:draining/0 sorry=10.0.9.9:up/1"; got != want {
		t.Errorf("quorum lost %q, want %q", got, want)
	}
	if got := decide(p, 1, true); got != "up1 qup" {
		t.Errorf("regaining quorum ran %q", got)
	}
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:down/0 10.0.0.3:up/1 sorry=10.0.9.9:down/0"; got != want {
		t.Errorf("quorum back %q, want %q", got, want)
	}
}

func TestPoolSorryServerAtStartAndInhibit(t *testing.T) {
	vs := testVS(2, true)
	vs.Sorry = &SorryServer{Addr: netip.MustParseAddrPort("10.0.9.9:80"), Weight: 5, Inhibit: true}
	p, acts := newTestPool(t, vs)
	// Starting without quorum brings the sorry server in and says so.
	if acts != "qdown" {
		t.Errorf("start ran %q, want qdown", acts)
	}
	if got, want := renderView(p.vss[0]), "quorum-down 10.0.0.1:down/0 10.0.0.2:down/0 sorry=10.0.9.9:up/5"; got != want {
		t.Errorf("start %q, want %q", got, want)
	}
	decide(p, 1, true)
	// sorry_server_inhibit keeps it with weight 0.
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:up/1 10.0.0.2:down/0 sorry=10.0.9.9:draining/0"; got != want {
		t.Errorf("after quorum %q, want %q", got, want)
	}
}

func TestPoolInhibitOnFailure(t *testing.T) {
	vs := testVS(2, false)
	vs.RealServers[0].Inhibit = true
	p, _ := newTestPool(t, vs)
	decide(p, 1, false)
	if got, want := renderView(p.vss[0]), "quorum-up 10.0.0.1:draining/0 10.0.0.2:up/1"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestPoolMultipleCheckers(t *testing.T) {
	vs := testVS(1, false)
	vs.RealServers[0].Checks = append(vs.RealServers[0].Checks, Check{Spec: TCPCheck{}, Timing: timing})
	p, _ := newTestPool(t, vs)
	rs := p.vss[0].rss[0]
	// Down when any checker fails, up again only when all pass.
	p.checkerDecision(rs.checks[0], false)
	p.checkerDecision(rs.checks[1], false)
	if rs.alive {
		t.Fatal("alive with two failed checkers")
	}
	if got := renderActions(p.checkerDecision(rs.checks[0], true)); got != "" || rs.alive {
		t.Fatalf("one checker passing made it alive (ran %q)", got)
	}
	if got := renderActions(p.checkerDecision(rs.checks[1], true)); got != "up1 qup" || !rs.alive {
		t.Fatalf("both passing ran %q, alive %v", got, rs.alive)
	}
}

func TestPoolDynamicWeight(t *testing.T) {
	vs := testVS(2, false)
	vs.Quorum = 2
	p, _ := newTestPool(t, vs)
	rs := p.vss[0].rss[0]
	// Weight 0 leaves an alive weight of 1, below quorum 2.
	if got := renderActions(p.setWeight(rs, 0)); got != "qdown" {
		t.Errorf("weight 0 ran %q, want qdown", got)
	}
	if got, want := renderView(p.vss[0]), "quorum-down 10.0.0.1:up/0 10.0.0.2:up/1"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := renderActions(p.setWeight(rs, 10)); got != "qup" {
		t.Errorf("weight 10 ran %q, want qup", got)
	}
}

func TestPoolShutdownOmega(t *testing.T) {
	vs := testVS(2, false)
	vs.Omega = true
	p, _ := newTestPool(t, vs)
	decide(p, 2, false)
	if got := renderActions(p.shutdown()); got != "down1 qdown" {
		t.Errorf("omega shutdown ran %q, want down1 qdown", got)
	}
	vs.Omega = false
	p, _ = newTestPool(t, vs)
	if got := renderActions(p.shutdown()); got != "" {
		t.Errorf("shutdown without omega ran %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := testVS(1, false)
	bad := func(f func(vs *VirtualServer)) Config {
		vs := testVS(1, false)
		vs.RealServers[0].Checks[0].Spec = HTTPCheck{URLs: []URL{{Path: "/"}}}
		f(&vs)
		return Config{VirtualServers: []VirtualServer{vs}}
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{VirtualServers: []VirtualServer{good, good}}, `virtual server "TCP 192.0.2.1:80": defined twice`},
		{bad(func(vs *VirtualServer) { vs.RealServers[0].Checks[0].Timing.DelayLoop = 0 }), "check 1 (HTTP_GET): delay_loop 0s must be positive"},
		{bad(func(vs *VirtualServer) {
			vs.RealServers[0].Checks[0].Spec = HTTPCheck{URLs: []URL{{Path: "/", Digest: "abc"}}}
		}), `url 1: digest "abc" is not an MD5`},
		{bad(func(vs *VirtualServer) {
			vs.RealServers[0].Checks[0].Spec = HTTPCheck{URLs: []URL{{Path: "/", StatusCodes: []StatusRange{{700, 800}}}}}
		}), "status_code range 700-800 outside 100-599"},
		{bad(func(vs *VirtualServer) { vs.RealServers[0].Checks[0].Spec = MiscCheck{} }), "check 1 (MISC_CHECK): no misc_path"},
		{bad(func(vs *VirtualServer) { vs.RealServers[0].Checks[0].Spec = DNSCheck{Type: "PTR"} }), `dns type "PTR" unknown`},
		{bad(func(vs *VirtualServer) { vs.RealServers[0].Addr = netip.MustParseAddrPort("10.0.0.1:0") }), "no address and port to connect to"},
		{bad(func(vs *VirtualServer) { vs.RealServers = append(vs.RealServers, vs.RealServers[0]) }), "real server 10.0.0.1:80: listed twice"},
		{bad(func(vs *VirtualServer) { vs.RealServers[0].Checks[0].Spec = &TCPCheck{} }), "pass the checker by value (health.TCPCheck{...})"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, tc.want)
		}
	}
	if _, err := New(Config{VirtualServers: []VirtualServer{good}}, Options{}); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestDefaultTiming(t *testing.T) {
	for _, tc := range []struct {
		spec  CheckSpec
		retry int
		dbr   time.Duration
	}{
		{TCPCheck{}, 1, time.Second},
		{HTTPCheck{}, 1, 3 * time.Second},
		{HTTPCheck{TLS: &TLSOptions{}}, 1, 3 * time.Second},
		{MiscCheck{}, 0, time.Second},
		{DNSCheck{}, 3, 6 * time.Second},
	} {
		got := DefaultTiming(tc.spec, 6*time.Second)
		if got.Retry != tc.retry || got.DelayBeforeRetry != tc.dbr || got.Warmup != 6*time.Second || got.ConnectTimeout != 5*time.Second {
			t.Errorf("DefaultTiming(%s) = %+v", tc.spec.Kind(), got)
		}
	}
}
