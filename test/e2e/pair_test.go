package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// pair is the seed's setup: lb1 and lb2, load balancers and real servers
// both, and a client, on one segment.
type pair struct {
	t   *testing.T
	r   *rig.Rig
	lb1 *rig.Node
	lb2 *rig.Node
	cli *rig.Client
	// conf1 and conf2 are the nodes' configurations; tests adjust them
	// before start.
	conf1, conf2 rig.Conf
	x1, x2       *rig.Daemon
}

// pairOptions shape the configurations newPair writes.
type pairOptions struct {
	// persistence is the virtual server's persistence_timeout (0: none).
	persistence time.Duration
	// track makes lb1 track a vrrp_script (weight -20) checking its web
	// server, as the seed's master does.
	track bool
	// nopreempt puts both instances in state BACKUP with nopreempt.
	nopreempt bool
	// secondVIP adds vip2 to VI_1 with a virtual server of its own,
	// without persistence.
	secondVIP bool
	// mixed adds VI_2 (vrid 52) for vip2 with the roles swapped: lb2
	// MASTER 100, lb1 BACKUP 90, and vip2's virtual server.
	mixed bool
}

// newPair builds the namespaces and both configurations in the seed's
// shape: VI_1 (VRRPv3, advert_int tm.advert) with lb1 MASTER priority
// 100 and lb2 BACKUP 90, and virtual_server vip1:80 rr DR over both nodes
// with TCP_CHECK. Nothing runs yet.
func newPair(t *testing.T, o pairOptions) *pair {
	t.Helper()
	r := rig.New(t, xkeepBin)
	p := &pair{t: t, r: r}
	vips := []netip.Addr{vip1}
	if o.secondVIP || o.mixed {
		vips = append(vips, vip2)
	}
	p.lb1 = r.Node("lb1", rig.Addr(11), vips...)
	p.lb2 = r.Node("lb2", rig.Addr(12), vips...)
	p.cli = r.Client("cli", clientAddrs...)
	p.cli.Timeout = tm.request

	services := []rig.VirtualServer{virtualServer(vip1, o.persistence, p.lb1, p.lb2)}
	in1 := instance("VI_1", 51, "MASTER", 100, vip1)
	in2 := instance("VI_1", 51, "BACKUP", 90, vip1)
	if o.secondVIP {
		in1.VIPs = append(in1.VIPs, vip2)
		in2.VIPs = append(in2.VIPs, vip2)
	}
	if o.secondVIP || o.mixed {
		services = append(services, virtualServer(vip2, 0, p.lb1, p.lb2))
	}
	in1.NotifyMaster, in1.NotifyBackup, in1.NotifyFault = p.lb1.NotifyScript(), p.lb1.NotifyScript(), p.lb1.NotifyScript()
	in2.NotifyMaster, in2.NotifyBackup, in2.NotifyFault = p.lb2.NotifyScript(), p.lb2.NotifyScript(), p.lb2.NotifyScript()
	if o.nopreempt {
		in1.State, in1.Nopreempt = "BACKUP", true
		in2.Nopreempt = true
	}
	p.conf1 = rig.Conf{RouterID: "lb01", Instances: []rig.Instance{in1}, Services: services}
	p.conf2 = rig.Conf{RouterID: "lb02", Instances: []rig.Instance{in2}, Services: services}
	if o.mixed {
		p.conf1.Instances = append(p.conf1.Instances, instance("VI_2", 52, "BACKUP", 90, vip2))
		p.conf2.Instances = append(p.conf2.Instances, instance("VI_2", 52, "MASTER", 100, vip2))
	}
	if o.track {
		p.conf1.Scripts = []rig.Script{{Name: "httpd_check", Path: p.lb1.CheckScript(), Interval: tm.script, Weight: -20}}
		p.conf1.Instances[0].TrackScripts = []string{"httpd_check"}
	}
	return p
}

// instance is a VRRPv3 vrrp_instance on eth0 with the suite's advert_int.
func instance(name string, vrid int, state string, prio int, vips ...netip.Addr) rig.Instance {
	return rig.Instance{
		Name: name, State: state, Interface: "eth0", VRID: vrid, Priority: prio,
		AdvertInt: tm.advert, Version: 3, VIPs: vips,
	}
}

// virtualServer is vip:80, rr, DR, with a TCP_CHECK on each node.
func virtualServer(vip netip.Addr, persistence time.Duration, nodes ...*rig.Node) rig.VirtualServer {
	vs := rig.VirtualServer{VIP: vip, Port: rig.WebPort, DelayLoop: tm.delayLoop, Algo: "rr", Kind: "DR", Persistence: persistence}
	for _, n := range nodes {
		vs.Reals = append(vs.Reals, rig.RealServer{Addr: n.Addr, Port: rig.WebPort, Weight: 1, Check: rig.TCPCheck{
			ConnectTimeout: tm.connectTimeout, Retry: tm.retry, DelayBeforeRetry: tm.delayBeforeRetry,
		}})
	}
	return vs
}

func (p *pair) in1() rig.Instance     { return p.conf1.Instances[0] }
func (p *pair) in2() rig.Instance     { return p.conf2.Instances[0] }
func (p *pair) vs() rig.VirtualServer { return p.conf1.Services[0] }

// start1 and start2 start xkeep on lb1 or lb2 and wait until it is
// ready: the bounds of the VRRP timers count from there.
func (p *pair) start1() *rig.Daemon {
	p.t.Helper()
	p.x1 = p.startXkeep(p.lb1, p.conf1)
	return p.x1
}

func (p *pair) start2() *rig.Daemon {
	p.t.Helper()
	p.x2 = p.startXkeep(p.lb2, p.conf2)
	return p.x2
}

func (p *pair) startXkeep(n *rig.Node, c rig.Conf) *rig.Daemon {
	p.t.Helper()
	d := n.StartXkeep(c, rig.XkeepOptions{Dataplane: dataplane()})
	p.ready(d)
	return d
}

// ready waits until d is ready.
func (p *pair) ready(d *rig.Daemon) {
	p.t.Helper()
	if err := d.WaitReady(p.t.Context(), startupLimit); err != nil {
		p.t.Fatal(err)
	}
}

// startBoth starts both daemons and waits until lb1 is master and serves
// vip1 with both real servers up, and lb2 is backup.
func (p *pair) startBoth() {
	p.t.Helper()
	p.start1()
	p.start2()
	p.waitVIP(vip1, startBound(p.in1()), p.lb1, p.lb2)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.waitState(p.x2, "VI_1", vip1, stateBackup, tm.slack)
}

// startBound is how long a node that starts as MASTER or BACKUP may take
// to become master with no other master around: its Master_Down_Interval
// at most, plus the slack.
func startBound(in rig.Instance) time.Duration {
	return in.MasterDownInterval(in.Priority) + tm.slack
}

// waitVIP waits until only owner holds vip on eth0, and returns how long
// that took.
func (p *pair) waitVIP(vip netip.Addr, bound time.Duration, owner *rig.Node, others ...*rig.Node) time.Duration {
	p.t.Helper()
	return p.r.Eventually(bound, fmt.Sprintf("%s only on %s", vip, owner.Name), rig.VIPOnlyOn(vip, owner, others...))
}

// VRRP states as xkeep_vrrp_state numbers them.
const (
	stateBackup = 1
	stateMaster = 2
	stateFault  = 3
)

// waitState waits until d reports the instance in state.
func (p *pair) waitState(d *rig.Daemon, iname string, vip netip.Addr, state float64, bound time.Duration) {
	p.t.Helper()
	p.r.Eventually(bound, fmt.Sprintf("%s reports %s in state %v", d.Node.Name, iname, state), func() error {
		v, err := metric(d, "xkeep_vrrp_state", "iname", iname, "ip_address", vip.String())
		if err != nil {
			return err
		}
		if v != state {
			return fmt.Errorf("state %v", v)
		}
		return nil
	})
}

// waitServing waits until d serves vip (xkeep_service_active) with the
// real servers on nodes up. Checks start after a random warmup of up to
// delay_loop.
func (p *pair) waitServing(d *rig.Daemon, vip netip.Addr, nodes ...*rig.Node) {
	p.t.Helper()
	vs := p.vs()
	bound := vs.DelayLoop + vs.UpBound(vs.Reals[0]) + tm.slack
	p.r.Eventually(bound, fmt.Sprintf("%s serves %s", d.Node.Name, vip), func() error {
		m, err := d.Metrics(context.Background())
		if err != nil {
			return err
		}
		if v, err := m.Value("xkeep_service_active", "vip", vip.String()); err != nil || v != 1 {
			return fmt.Errorf("xkeep_service_active %v %v", v, err)
		}
		for _, n := range nodes {
			if v, err := m.Value("xkeep_backend_up", "vip", vip.String(), "backend", backendOf(n)); err != nil || v != 1 {
				return fmt.Errorf("real server %s: xkeep_backend_up %v %v", n.Name, v, err)
			}
		}
		return nil
	})
}

// waitBackendUp waits until d reports the real server on n (of the
// service on vip) up or down, and returns how long that took.
func (p *pair) waitBackendUp(d *rig.Daemon, vip netip.Addr, n *rig.Node, up bool, bound time.Duration) time.Duration {
	p.t.Helper()
	want := 0.0
	if up {
		want = 1
	}
	return p.r.Eventually(bound, fmt.Sprintf("%s reports %s up=%v", d.Node.Name, n.Name, up), func() error {
		v, err := metric(d, "xkeep_backend_up", "vip", vip.String(), "backend", backendOf(n))
		if err != nil {
			return err
		}
		if v != want {
			return fmt.Errorf("xkeep_backend_up %v", v)
		}
		return nil
	})
}

// holdsNot checks, for the whole window, that n never holds vip: the way
// to assert that something does not happen (nopreempt, a backup that
// must stay backup) is to watch for it for a bounded time.
func (p *pair) holdsNot(n *rig.Node, vip netip.Addr, window time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		ok, err := n.HoldsVIP(vip)
		if err != nil {
			p.t.Fatal(err)
		}
		if ok {
			p.t.Fatalf("%s took %s during the %v it should not", n.Name, vip, window)
		}
		select {
		case <-p.t.Context().Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func backendOf(n *rig.Node) string {
	return netip.AddrPortFrom(n.Addr, rig.WebPort).String()
}

// metric scrapes d and returns one series.
func metric(d *rig.Daemon, name string, labels ...string) (float64, error) {
	m, err := d.Metrics(context.Background())
	if err != nil {
		return 0, err
	}
	return m.Value(name, labels...)
}

// load starts the client's requests to vip:80.
func (p *pair) load(vip netip.Addr) *rig.Load {
	return p.cli.StartLoad(netip.AddrPortFrom(vip, rig.WebPort), tm.every)
}

// waitAnswers waits until every client address has n answered requests
// that started at or after since.
func (p *pair) waitAnswers(l *rig.Load, since time.Time, n int, bound time.Duration) {
	p.t.Helper()
	p.r.Eventually(bound, fmt.Sprintf("%d answers per client address", n), func() error {
		got := map[netip.Addr]int{}
		for _, r := range l.Since(since) {
			if r.OK() {
				got[r.Source]++
			}
		}
		for _, a := range p.cli.Addrs {
			if got[a] < n {
				return fmt.Errorf("%s has %d", a, got[a])
			}
		}
		return nil
	})
}

// steadyBound is how long n rounds of requests take at most.
func steadyBound(n int) time.Duration {
	return time.Duration(n)*(tm.every+tm.request) + tm.slack
}

// noFailures fails the test if a request that started in [from, to)
// failed.
func noFailures(t *testing.T, l *rig.Load, from, to time.Time, what string) {
	t.Helper()
	var errs []error
	for _, r := range l.Since(from) {
		if r.Start.Before(to) && !r.OK() {
			errs = append(errs, fmt.Errorf("%s at %v: %w", r.Source, r.Start.Sub(from).Round(time.Millisecond), r.Err))
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%s: %d requests failed:\n%v", what, len(errs), errors.Join(errs...))
	}
}

// checkNoLoop watches, over a few rounds of requests, how many packets
// d's dataplane forwards to the real server on n, against the requests n
// answered meanwhile. A request is a handful of packets from the client;
// far more means the packets come back to d and go round: a forwarding
// loop between d and n.
func (p *pair) checkNoLoop(l *rig.Load, d *rig.Daemon, vip netip.Addr, n *rig.Node) {
	p.t.Helper()
	packets := func() float64 {
		v, err := metric(d, "xkeep_backend_packets_total", "vip", vip.String(), "backend", backendOf(n))
		if err != nil {
			p.t.Fatal(err)
		}
		return v
	}
	// The window spans at least three rounds of requests and twice the
	// counters' lag; the requests counted reach back one lag further.
	mark := time.Now()
	before := packets()
	rounds := 3 * len(p.cli.Addrs)
	p.r.Eventually(steadyBound(3)+2*statsLag(), "three rounds of requests", func() error {
		if n := len(l.Since(mark)); n < rounds {
			return fmt.Errorf("%d requests", n)
		}
		if time.Since(mark) < 2*statsLag() {
			return fmt.Errorf("window %v shorter than twice the counters' lag", time.Since(mark))
		}
		return nil
	})
	after := packets()
	// Answered or not, a request sends a real server a handful of packets.
	const perRequest = 20
	sent := len(l.Since(mark.Add(-statsLag()))) + len(p.cli.Addrs) // and those in flight
	if got := after - before; got > float64(perRequest*sent) {
		p.t.Errorf("%s forwarded %.0f packets to %s during %d requests (%v): they loop between the two nodes",
			d.Node.Name, got, n.Name, sent, time.Since(mark).Round(time.Millisecond))
	}
}
