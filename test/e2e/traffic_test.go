package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// backendsOf lists, per client address, the backends that answered.
func backendsOf(results []rig.Result) map[netip.Addr]map[string]int {
	out := map[netip.Addr]map[string]int{}
	for _, r := range results {
		if !r.OK() {
			continue
		}
		if out[r.Source] == nil {
			out[r.Source] = map[string]int{}
		}
		out[r.Source][r.Backend]++
	}
	return out
}

// TestPersistenceKeepsClientOnOneBackend: with persistence_timeout, every
// new connection of a client address goes to the real server its first
// one went to, while rr spreads the addresses' first connections over
// both; vip2's service, the same without persistence, alternates one
// address's connections between the two (the control).
func TestPersistenceKeepsClientOnOneBackend(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{persistence: 50 * time.Second, secondVIP: true})
	p.startBoth()
	p.waitServing(p.x1, vip2, p.lb1, p.lb2)

	start := time.Now()
	persistent := p.load(vip1)
	control := p.cli.StartLoad(netip.AddrPortFrom(vip2, rig.WebPort), tm.every, clientAddrs[0])
	const n = 20
	p.waitAnswers(persistent, start, n, steadyBound(n))
	p.r.Eventually(steadyBound(n), "control answers", func() error {
		if got := len(control.Since(start)); got < n {
			return fmt.Errorf("%d answers", got)
		}
		return nil
	})
	persistent.Stop()
	control.Stop()
	noFailures(t, persistent, start, time.Now(), "persistent service")
	noFailures(t, control, start, time.Now(), "control service")

	served := map[string]bool{}
	for src, backends := range backendsOf(persistent.Results()) {
		if len(backends) != 1 {
			t.Errorf("client %s was answered by %v: persistence should keep it on one real server", src, backends)
		}
		for b := range backends {
			served[b] = true
		}
	}
	if !served["lb1"] || !served["lb2"] {
		t.Errorf("four client addresses reached only %v: rr should spread their first connections over both", served)
	}
	c := backendsOf(control.Results())[clientAddrs[0]]
	if c["lb1"] == 0 || c["lb2"] == 0 {
		t.Errorf("without persistence one client's connections went to %v: rr should alternate them", c)
	}
	t.Logf("persistent: %v; control (no persistence): %v", backendsOf(persistent.Results()), c)
}

// TestRealServerDeathAndRecovery: lb2's web server dies; the master's
// TCP_CHECK takes it out within delay_loop + retries, after which every
// request succeeds on lb1 and the dataplane sends lb2 nothing; when it
// recovers it is back within the check's bound and gets requests again.
func TestRealServerDeathAndRecovery(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	vs := p.vs()
	rs := vs.Reals[1]
	dieAt := time.Now()
	p.lb2.Web.Stop()
	downBound := vs.DownBound(rs) + tm.slack
	took := p.waitBackendUp(p.x1, vip1, p.lb2, false, downBound)
	t.Logf("lb2's real server taken out %v after it died (bound: delay_loop + (retry+1) x connect_timeout + retry x delay_before_retry + slack = %v)",
		took.Round(time.Millisecond), downBound)

	// Out: no request reaches it. The counter is read once the requests
	// scheduled before the decision have finished and the counters have
	// caught up with them.
	outAt := time.Now()
	p.waitAnswers(l, outAt, 1, steadyBound(1)+statsLag())
	p.r.Eventually(steadyBound(1)+statsLag(), "the counters catch up", func() error {
		if d := time.Since(outAt); d < statsLag() {
			return fmt.Errorf("%v since lb2 went out", d)
		}
		return nil
	})
	before := backendPackets(t, p.x1, vip1, p.lb2)
	mark := time.Now()
	p.waitAnswers(l, mark, 5, steadyBound(5))
	p.r.Eventually(steadyBound(1)+statsLag(), "the counters catch up", func() error {
		if d := time.Since(mark); d < statsLag() {
			return fmt.Errorf("%v since the mark", d)
		}
		return nil
	})
	after := backendPackets(t, p.x1, vip1, p.lb2)
	if after != before {
		t.Errorf("while out, the dataplane forwarded %v packets to lb2", after-before)
	}
	noFailures(t, l, outAt, time.Now(), "while lb2 is out")
	for _, r := range l.Since(outAt) {
		if r.OK() && r.Backend != "lb1" {
			t.Errorf("request from %s answered by %s while lb2 was out", r.Source, r.Backend)
		}
	}
	p.checkOutageSince(l, dieAt, downBound+requestGap())

	backAt := time.Now()
	if err := p.lb2.Web.Start(); err != nil {
		t.Fatal(err)
	}
	upBound := vs.UpBound(rs) + tm.slack
	took = p.waitBackendUp(p.x1, vip1, p.lb2, true, upBound)
	t.Logf("lb2's real server back %v after it recovered (bound: delay_loop + connect_timeout + slack = %v)", took.Round(time.Millisecond), upBound)
	upAt := time.Now()
	upCount := backendPackets(t, p.x1, vip1, p.lb2)
	p.r.Eventually(steadyBound(5), "lb2 answers again", func() error {
		for _, r := range l.Since(upAt) {
			if r.OK() && r.Backend == "lb2" {
				return nil
			}
		}
		return fmt.Errorf("no answer from lb2 since it is up")
	})
	p.r.Eventually(statsLag()+tm.slack, "the dataplane counts packets to lb2 again", func() error {
		if v := backendPackets(t, p.x1, vip1, p.lb2); v <= upCount {
			return fmt.Errorf("xkeep_backend_packets_total for lb2 still %v", v)
		}
		return nil
	})
	noFailures(t, l, backAt, time.Now(), "after lb2 recovered")
}

// checkOutageSince is checkOutage without the wait for new answers.
func (p *pair) checkOutageSince(l *rig.Load, from time.Time, limit time.Duration) {
	p.t.Helper()
	outage, who := rig.LongestOutage(l.Results(), from, time.Now())
	if outage > limit {
		p.t.Errorf("client %s went %v without an answer, more than the %v the timers allow", who, outage.Round(time.Millisecond), limit)
	}
}

func backendPackets(t *testing.T, d *rig.Daemon, vip netip.Addr, n *rig.Node) float64 {
	t.Helper()
	v, err := metric(d, "xkeep_backend_packets_total", "vip", vip.String(), "backend", backendOf(n))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMixedRoles: lb1 is master for VI_1 (vip1) and lb2 for VI_2 (vip2);
// each balances its VIP over both real servers while it passes the other
// VIP's DR packets to its own web server. When lb1 stops, lb2 serves both.
func TestMixedRoles(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{mixed: true})
	p.start1()
	p.start2()
	in1 := p.conf1.Instances[0]
	p.waitVIP(vip1, startBound(in1), p.lb1, p.lb2)
	p.waitVIP(vip2, startBound(p.conf2.Instances[1]), p.lb2, p.lb1)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.waitServing(p.x2, vip2, p.lb1, p.lb2)
	for _, c := range []struct {
		d   *rig.Daemon
		vip netip.Addr
	}{{p.x1, vip2}, {p.x2, vip1}} {
		if v, err := metric(c.d, "xkeep_service_active", "vip", c.vip.String()); err != nil || v != 0 {
			t.Errorf("%s: xkeep_service_active for %s = %v (%v), want 0: it is not master for it", c.d.Node.Name, c.vip, v, err)
		}
	}

	start := time.Now()
	l1, l2 := p.load(vip1), p.load(vip2)
	const n = 6
	p.waitAnswers(l1, start, n, steadyBound(n))
	p.waitAnswers(l2, start, n, steadyBound(n))
	noFailures(t, l1, start, time.Now(), "vip1")
	noFailures(t, l2, start, time.Now(), "vip2")
	for vip, l := range map[netip.Addr]*rig.Load{vip1: l1, vip2: l2} {
		c := rig.Count(l.Since(start))
		if c.Answers["lb1"] == 0 || c.Answers["lb2"] == 0 {
			t.Errorf("%s answered by %v: its master should balance over both", vip, c.Answers)
		}
	}
	for _, c := range []struct {
		d   *rig.Daemon
		vip netip.Addr
	}{{p.x1, vip1}, {p.x2, vip2}} {
		p.r.Eventually(statsLag()+tm.slack, fmt.Sprintf("%s counts packets for %s, which it is master for", c.d.Node.Name, c.vip), func() error {
			if v, err := metric(c.d, "xkeep_service_packets_total", "vip", c.vip.String()); err != nil || v == 0 {
				return fmt.Errorf("xkeep_service_packets_total %v (%v)", v, err)
			}
			return nil
		})
	}

	stopAt := time.Now()
	if _, err := p.x1.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	in2 := p.conf2.Instances[0]
	bound := in2.SkewTime(in2.Priority) + tm.slack
	p.waitVIP(vip1, bound, p.lb2, p.lb1)
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)
	p.waitServing(p.x2, vip2, p.lb1, p.lb2)
	p.checkNoLoop(l1, p.x2, vip1, p.lb1)
	p.checkOutage(l1, stopAt, bound+requestGap())
	p.checkOutage(l2, stopAt, requestGap()+tm.slack)
}
