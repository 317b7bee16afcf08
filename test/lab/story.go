package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// options configure one run of the story.
type options struct {
	bin        string // xkeep binary
	out        io.Writer
	seedTimers bool // the seed's health-check timers instead of shorter ones
	dataplane  string
}

// stepError says which step of the story failed.
type stepError struct {
	n     int
	title string
	err   error
}

func (e *stepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v", e.n, e.title, e.err)
}

func (e *stepError) Unwrap() error { return e.err }

// The story's timers. VRRP is the seed's (advert_int 1, priorities 100
// and 90, vrrp_script interval 1 with weight -20). The health checks keep
// the seed's shape with shorter timers, so the story takes under half a
// minute; -seed-timers uses the seed's delay_loop 6, connect_timeout 3,
// nb_get_retry 3, delay_before_retry 3.
const (
	advertInt      = time.Second
	scriptInterval = time.Second
	persistence    = 50 * time.Second
	requestEvery   = 100 * time.Millisecond
	// slack absorbs what no timer covers: process and script start-up,
	// netlink, the poll interval of the waits.
	slack = 1500 * time.Millisecond
	// startupLimit bounds a daemon's start: configuration, BPF
	// verification, listeners.
	startupLimit = 15 * time.Second
)

// lab holds the story's parts.
type lab struct {
	ctx       context.Context
	tl        *timeline
	w         *watcher
	r         *rig.Rig
	vip       netip.Addr
	lb1       *rig.Node
	lb2       *rig.Node
	cli       *rig.Client
	x1, x2    *rig.Daemon
	vs        rig.VirtualServer
	vi1       rig.Instance // lb1's VI_1
	vi2       rig.Instance // lb2's VI_1
	load      *rig.Load    // the first four client addresses, from step 2
	late      *rig.Load    // two more, from step 4
	dataplane string
	// lb1Metrics is lb1's last scrape, taken just before it is killed.
	lb1Metrics rig.Metrics
	killAt     time.Time
}

// story tells the seed's story on t (a test, or the lab's testnet.Scope)
// and returns the first step that did not happen as it should.
func story(ctx context.Context, t testing.TB, o options) (err error) {
	tl := &timeline{w: o.out, start: time.Now()}
	l := &lab{ctx: ctx, tl: tl, vip: rig.Addr(200), dataplane: o.dataplane}

	tl.say("building the lab: network namespaces on one bridge, addresses only inside them")
	l.r = rig.New(t, o.bin)
	l.lb1 = l.r.Node("lb1", rig.Addr(11), l.vip)
	l.lb2 = l.r.Node("lb2", rig.Addr(12), l.vip)
	clients := []netip.Addr{rig.Addr(101), rig.Addr(102), rig.Addr(103), rig.Addr(104), rig.Addr(105), rig.Addr(106)}
	l.cli = l.r.Client("cli", clients...)
	tl.say("lb1 %s and lb2 %s: load balancers and also the two real servers (web server on :80, VIP on lo, arp_ignore=1 arp_announce=2)", l.lb1.Addr, l.lb2.Addr)
	tl.say("client: source addresses %s (the last two join in step 4); a new connection, so a new source port, per request", joinAddrs(clients))

	check := rig.TCPCheck{ConnectTimeout: time.Second, Retry: 1, DelayBeforeRetry: time.Second}
	delayLoop := 2 * time.Second
	if o.seedTimers {
		check = rig.TCPCheck{ConnectTimeout: 3 * time.Second, Retry: 3, DelayBeforeRetry: 3 * time.Second}
		delayLoop = 6 * time.Second
	}
	l.vs = rig.VirtualServer{
		VIP: l.vip, Port: rig.WebPort, DelayLoop: delayLoop, Algo: "rr", Kind: "DR", Persistence: persistence,
		Reals: []rig.RealServer{
			{Addr: l.lb1.Addr, Port: rig.WebPort, Weight: 1, Check: check},
			{Addr: l.lb2.Addr, Port: rig.WebPort, Weight: 1, Check: check},
		},
	}
	l.vi1 = rig.Instance{
		Name: "VI_1", State: "MASTER", Interface: "eth0", VRID: 51, Priority: 100, AdvertInt: advertInt,
		Version: 2, AuthPass: "1", VIPs: []netip.Addr{l.vip}, TrackScripts: []string{"httpd_check"},
		NotifyMaster: l.lb1.NotifyScript(), NotifyBackup: l.lb1.NotifyScript(),
	}
	l.vi2 = l.vi1
	l.vi2.State, l.vi2.Priority, l.vi2.TrackScripts = "BACKUP", 90, nil
	l.vi2.NotifyMaster, l.vi2.NotifyBackup = l.lb2.NotifyScript(), l.lb2.NotifyScript()
	conf1 := rig.Conf{
		RouterID: "lb01",
		Scripts: []rig.Script{{Name: "httpd_check", Path: l.lb1.CheckScript(),
			Interval: scriptInterval, Weight: -20}},
		Instances: []rig.Instance{l.vi1},
		Services:  []rig.VirtualServer{l.vs},
	}
	conf2 := rig.Conf{RouterID: "lb02", Instances: []rig.Instance{l.vi2}, Services: []rig.VirtualServer{l.vs}}

	l.w = newWatcher(tl, l.vip, l.lb1, l.lb2)
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); l.w.run(wctx) }()
	// Registered after the rig's cleanups, so it runs before them: the
	// watcher stops before the namespaces go.
	t.Cleanup(func() { stopWatch(); <-watchDone })

	opts := rig.XkeepOptions{Dataplane: o.dataplane}
	l.x1 = l.lb1.StartXkeep(conf1, opts)
	l.x2 = l.lb2.StartXkeep(conf2, opts)
	l.w.follow(l.x1)
	l.w.follow(l.x2)
	tl.say("started xkeep on lb1 (state MASTER, priority 100, track_script httpd_check weight -20) and lb2 (BACKUP, priority 90)")
	tl.say("  configurations: %s and %s", l.x1.ConfPath, l.x2.ConfPath)
	tl.say("  virtual_server %s %d: lb_algo rr, lb_kind DR, persistence_timeout %v, TCP_CHECK delay_loop %v connect_timeout %v retry %d delay_before_retry %v",
		l.vip, rig.WebPort, secs(persistence), secs(delayLoop), secs(check.ConnectTimeout), check.Retry, secs(check.DelayBeforeRetry))

	defer func() {
		if err != nil && ctx.Err() == nil { // not when interrupted
			l.showLogs()
		}
	}()
	for i, s := range []struct {
		title string
		run   func() error
	}{
		{"lb1 becomes MASTER and owns the VIP, lb2 stays BACKUP", l.masterOwnsVIP},
		{"the client's requests flow, spread over both real servers", l.requestsFlow},
		{"lb1's web server stops: its check fails and lb2 takes the VIP", l.webServerStops},
		{"lb1's web server returns: lb1 preempts", l.webServerReturns},
		{"lb1's xkeep is killed (SIGKILL): lb2 takes over again", l.masterKilled},
		{"the per-real-server counters, scraped from /metrics of the serving nodes", l.counters},
		{"lb2's xkeep stops gracefully (SIGTERM)", l.gracefulStop},
	} {
		tl.step(i+1, s.title)
		if err := s.run(); err != nil {
			return &stepError{n: i + 1, title: s.title, err: err}
		}
	}
	return nil
}

func (l *lab) await(timeout time.Duration, what string, cond func() error) (time.Duration, error) {
	return rig.Await(l.ctx, timeout, what, cond)
}

// notified waits until node's notify script logged state for the VIP
// more often than before.
func (l *lab) notified(n *rig.Node, state string, before int, timeout time.Duration) error {
	_, err := l.await(timeout, fmt.Sprintf("%s runs notify_%s", n.Name, state), func() error {
		if countNotify(n, state) > before {
			return nil
		}
		return fmt.Errorf("notify log: %q", n.NotifyLog())
	})
	return err
}

func countNotify(n *rig.Node, state string) int {
	c := 0
	for _, line := range n.NotifyLog() {
		if strings.HasPrefix(line, state+" ") {
			c++
		}
	}
	return c
}

// vrrpState waits until the daemon's xkeep_vrrp_state for the VIP is want
// (1 BACKUP, 2 MASTER).
func (l *lab) vrrpState(d *rig.Daemon, want float64, timeout time.Duration) error {
	_, err := l.await(timeout, fmt.Sprintf("%s reports xkeep_vrrp_state %v", d.Node.Name, want), func() error {
		m, err := d.Metrics(l.ctx)
		if err != nil {
			return err
		}
		v, err := m.Value("xkeep_vrrp_state", "iname", "VI_1", "ip_address", l.vip.String())
		if err != nil {
			return err
		}
		if v != want {
			return fmt.Errorf("xkeep_vrrp_state %v", v)
		}
		return nil
	})
	return err
}

// backendUp waits until d's xkeep_backend_up for the real server on node
// is want.
func (l *lab) backendUp(d *rig.Daemon, node *rig.Node, want bool, timeout time.Duration) (time.Duration, error) {
	wantV := 0.0
	if want {
		wantV = 1
	}
	be := netip.AddrPortFrom(node.Addr, rig.WebPort).String()
	return l.await(timeout, fmt.Sprintf("%s reports real server %s up=%v", d.Node.Name, node.Name, want), func() error {
		m, err := d.Metrics(l.ctx)
		if err != nil {
			return err
		}
		v, err := m.Value("xkeep_backend_up", "backend", be)
		if err != nil {
			return err
		}
		if v != wantV {
			return fmt.Errorf("xkeep_backend_up %v", v)
		}
		return nil
	})
}

// probed waits until d has probed the real server on n at least once.
func (l *lab) probed(d *rig.Daemon, n *rig.Node, timeout time.Duration) error {
	be := netip.AddrPortFrom(n.Addr, rig.WebPort).String()
	_, err := l.await(timeout, fmt.Sprintf("%s's first TCP_CHECK of %s", d.Node.Name, n.Name), func() error {
		m, err := d.Metrics(l.ctx)
		if err != nil {
			return err
		}
		v, err := m.Value("xkeep_check_probes_total", "backend", be)
		if err != nil {
			return err
		}
		if v < 1 {
			return errors.New("no probe yet")
		}
		return nil
	})
	return err
}

// Step 1.
func (l *lab) masterOwnsVIP() error {
	// Loading the configuration and the XDP program comes first; the
	// VRRP timers run from there.
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		if err := d.WaitReady(l.ctx, startupLimit); err != nil {
			return err
		}
	}
	l.tl.say("both daemons are up (configuration loaded, dataplane ready, /metrics answering)")
	bound := l.vi1.MasterDownInterval(l.vi1.Priority) + slack
	took, err := l.await(bound, "VIP only on lb1", rig.VIPOnlyOn(l.vip, l.lb1, l.lb2))
	if err != nil {
		return err
	}
	l.tl.say("lb1 holds %s on eth0, %v later (bound: its Master_Down_Interval %v + slack)", l.vip, round(took), round(l.vi1.MasterDownInterval(l.vi1.Priority)))
	if err := l.notified(l.lb1, "master", 0, slack); err != nil {
		return err
	}
	if err := l.notified(l.lb2, "backup", 0, slack); err != nil {
		return err
	}
	if err := l.vrrpState(l.x1, 2, slack); err != nil {
		return err
	}
	if err := l.vrrpState(l.x2, 1, slack); err != nil {
		return err
	}
	// Checks start after a random warmup of up to delay_loop; until their
	// first probe the real servers count as up. Waiting for it makes the
	// failure in step 3 go through the checks' retry rule.
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		for _, n := range []*rig.Node{l.lb1, l.lb2} {
			if err := l.probed(d, n, time.Second+l.vs.DelayLoop+l.vs.UpBound(l.vs.Reals[0])+slack); err != nil {
				return err
			}
			if _, err := l.backendUp(d, n, true, slack); err != nil {
				return err
			}
		}
	}
	l.tl.say("xkeep_vrrp_state: lb1 MASTER, lb2 BACKUP; both daemons have checked both real servers: up")
	return nil
}

// Step 2.
func (l *lab) requestsFlow() error {
	// The client learns the VIP's MAC first, so that every SYN leaves
	// from the CPU it pins its connects to (see rig.Client.Resolve).
	if err := l.cli.Resolve(l.ctx, l.vip); err != nil {
		return err
	}
	start := time.Now()
	l.load = l.cli.StartLoad(netip.AddrPortFrom(l.vip, rig.WebPort), requestEvery, l.cli.Addrs[:4]...)
	l.w.addLoad(l.load)
	l.tl.say("the client sends GET / to %s:80 from %s, every %v from each", l.vip, joinAddrs(l.cli.Addrs[:4]), requestEvery)
	const perSource = 10
	if _, err := l.await(perSource*(requestEvery+l.cli.Timeout)+slack, fmt.Sprintf("%d answers per client address", perSource), func() error {
		by := rig.BySource(l.load.Since(start))
		for _, a := range l.cli.Addrs[:4] {
			if n := len(by[a]); n < perSource {
				return fmt.Errorf("%s has %d results", a, n)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	results := l.load.Since(start)
	tally := rig.Count(results)
	l.w.printCounts(true)
	if tally.Failures > 0 {
		return fmt.Errorf("%d requests failed in steady state (last: %v)", tally.Failures, tally.LastErr)
	}
	pins := pinning(results)
	l.tl.say("persistence_timeout %v pins each client address to one real server: %s", secs(persistence), formatPins(pins))
	for src, backends := range pins {
		if len(backends) != 1 {
			return fmt.Errorf("client %s was answered by %v: persistence should keep it on one", src, backends)
		}
	}
	if tally.Answers["lb1"] == 0 || tally.Answers["lb2"] == 0 {
		return fmt.Errorf("rr over four client addresses should reach both real servers, got %s", formatTally(tally))
	}
	l.tl.say("rr spread the addresses' first connections over lb1 and lb2; every later connection of an address follows its pin")
	return nil
}

// Step 3.
func (l *lab) webServerStops() error {
	var onLB1 []netip.Addr
	for src, b := range pinning(l.load.Results()) {
		if slices.Contains(b, "lb1") {
			onLB1 = append(onLB1, src)
		}
	}
	sortAddrs(onLB1)
	masterBefore, backupBefore := countNotify(l.lb2, "master"), countNotify(l.lb1, "backup")
	failAt := time.Now()
	l.lb1.Web.Stop()
	l.tl.say("stopped lb1's web server (connections to lb1:80 are now refused); pinned to lb1: %s", joinAddrs(onLB1))

	// The check script fails within one interval; lb1 then advertises 100-20 = 80 < 90, which lb2 ignores,
	// so lb2 takes over when its Master_Down_Interval runs out.
	vipBound := scriptInterval + l.vi2.MasterDownInterval(l.vi2.Priority) + slack
	if _, err := l.await(vipBound, "VIP moves to lb2", rig.VIPOnlyOn(l.vip, l.lb2, l.lb1)); err != nil {
		return err
	}
	vipMoved := time.Since(failAt)
	if err := l.notified(l.lb2, "master", masterBefore, slack); err != nil {
		return err
	}
	if err := l.notified(l.lb1, "backup", backupBefore, slack); err != nil {
		return err
	}
	downBound := l.vs.DownBound(l.vs.Reals[0]) + slack
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		if _, err := l.backendUp(d, l.lb1, false, downBound-time.Since(failAt)); err != nil {
			return err
		}
	}
	// Every client address gets answers again: those pinned to lb1 once
	// the serving node's check has taken lb1 out.
	replyBound := max(vipBound, downBound) + l.cli.Timeout + slack
	if _, err := l.await(replyBound-time.Since(failAt), "every client answered after the failure", func() error {
		return answeredSince(l.load, l.cli.Addrs[:4], failAt)
	}); err != nil {
		return err
	}
	if err := l.onlyFrom(time.Now(), "lb2"); err != nil {
		return err
	}

	l.tl.say("what happened, timed from the failure:")
	if at, ok := l.w.eventAfter("lb1 priority", "80", failAt); ok {
		l.tl.plain("           %-8v lb1's httpd_check failed: effective priority 100-20 = 80 (bound: script interval %v)",
			round(at.Sub(failAt)), secs(scriptInterval))
	}
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		if at, ok := l.w.eventAfter(d.Node.Name+" up lb1", "DOWN", failAt); ok {
			l.tl.plain("           %-8v %s's TCP_CHECK took real server lb1 out (bound: delay_loop + (retry+1) x connect_timeout + retry x delay_before_retry = %v)",
				round(at.Sub(failAt)), d.Node.Name, round(downBound-slack))
		}
	}
	l.tl.plain("           %-8v lb2 took the VIP: lb1's adverts of priority 80 do not reset its Master_Down_Interval %v (bound %v)",
		round(vipMoved), round(l.vi2.MasterDownInterval(l.vi2.Priority)), round(vipBound-slack))
	first := firstAnswers(l.load.Since(failAt), failAt)
	var worst time.Duration
	for _, src := range onLB1 {
		worst = max(worst, first[src])
		l.tl.plain("           %-8v first good reply for %s, which lb1 had pinned to itself", round(first[src]), src)
	}
	// Which failures were due: before the VIP moved, those of clients
	// lb1 pinned to itself; in the moment it moved, any (until the
	// client has lb2's gratuitous ARP its SYN reaches lb1, no longer
	// master, whose own stack has no web server); after it moved, any
	// that lb2 sent to lb1 before its own check took lb1 out: lb2's
	// persistence table starts empty (the nodes do not share it), so it
	// pins clients afresh.
	vipAt := failAt.Add(vipMoved)
	lb2Out, ok := l.w.eventAfter("lb2 up lb1", "DOWN", failAt)
	if !ok {
		lb2Out = time.Now()
	}
	var pinned, moving, repinned int
	for _, r := range l.load.Since(failAt) {
		switch {
		case r.OK():
		case r.Start.Before(vipAt) && slices.Contains(onLB1, r.Source):
			pinned++
		case r.Start.After(vipAt) && r.Start.Before(lb2Out.Add(slack)):
			repinned++
		case r.End.After(vipAt.Add(-l.cli.Timeout)) && r.Start.Before(vipAt.Add(slack)):
			moving++
		default:
			return fmt.Errorf("a request from %s failed at %s (VIP moved at %s, lb2 took lb1 out at %s): %v",
				r.Source, l.tl.since(r.Start), l.tl.since(vipAt), l.tl.since(lb2Out), r.Err)
		}
	}
	l.tl.say("failure to first good reply: %v at worst. Failed on the way: %d requests of clients lb1 had pinned to itself, %d in the moment the VIP moved, "+
		"%d that lb2 pinned to lb1 before its check took lb1 out (the nodes do not share their persistence tables); nothing else",
		round(worst), pinned, moving, repinned)
	l.w.printCounts(true)
	return nil
}

// onlyFrom waits for two more answers per client address and checks
// that every answer since t came from backend.
func (l *lab) onlyFrom(t time.Time, backend string) error {
	mark := time.Now()
	if _, err := l.await(3*(requestEvery+l.cli.Timeout)+slack, "two more rounds of answers", func() error {
		for _, src := range l.cli.Addrs[:4] {
			n := 0
			for _, r := range l.load.Since(mark) {
				if r.Source == src && r.OK() {
					n++
				}
			}
			if n < 2 {
				return fmt.Errorf("%s has %d answers", src, n)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range l.load.Since(t) {
		if r.OK() && r.Backend != backend {
			return fmt.Errorf("request from %s at %s was answered by %s, want only %s", r.Source, l.tl.since(r.Start), r.Backend, backend)
		}
		if !r.OK() {
			return fmt.Errorf("request from %s at %s failed once lb1 was out: %v", r.Source, l.tl.since(r.Start), r.Err)
		}
	}
	return nil
}

// Step 4.
func (l *lab) webServerReturns() error {
	masterBefore, backupBefore := countNotify(l.lb1, "master"), countNotify(l.lb2, "backup")
	backAt := time.Now()
	if err := l.lb1.Web.Start(); err != nil {
		return err
	}
	l.tl.say("started lb1's web server again")
	// The check passes within an interval, lb1 advertises 100 again, and
	// as a backup with preemption it ignores lb2's lower adverts: it takes
	// over after its own Master_Down_Interval.
	bound := scriptInterval + l.vi1.MasterDownInterval(l.vi1.Priority) + slack
	if _, err := l.await(bound, "lb1 preempts", rig.VIPOnlyOn(l.vip, l.lb1, l.lb2)); err != nil {
		return err
	}
	l.tl.say("lb1 preempted: it holds the VIP again %v after its web server returned (bound: script interval + its Master_Down_Interval %v + slack = %v)",
		round(time.Since(backAt)), round(l.vi1.MasterDownInterval(l.vi1.Priority)), round(bound))
	if err := l.notified(l.lb1, "master", masterBefore, slack); err != nil {
		return err
	}
	if err := l.notified(l.lb2, "backup", backupBefore, slack); err != nil {
		return err
	}
	upBound := l.vs.UpBound(l.vs.Reals[0]) + slack
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		if _, err := l.backendUp(d, l.lb1, true, upBound-min(time.Since(backAt), upBound-slack)); err != nil {
			return err
		}
	}
	settled := time.Now()
	if _, err := l.await(3*(requestEvery+l.cli.Timeout)+slack, "every client answered after the preemption", func() error {
		return answeredSince(l.load, l.cli.Addrs[:4], settled)
	}); err != nil {
		return err
	}
	l.tl.say("the first four addresses now: %s", formatPins(pinning(l.load.Since(settled))))
	l.tl.plain("           (while lb1's real server was down, lb1 itself, still master for a moment, moved those pins to lb2;\n" +
		"           lb1's persistence table keeps them for as long as their clients keep sending within persistence_timeout)")

	// Addresses lb1 has no pin for yet are spread over both again.
	late := l.cli.Addrs[4:]
	joinAt := time.Now()
	l.late = l.cli.StartLoad(netip.AddrPortFrom(l.vip, rig.WebPort), requestEvery, late...)
	l.w.addLoad(l.late)
	l.tl.say("two more client addresses join: %s", joinAddrs(late))
	if _, err := l.await(5*(requestEvery+l.cli.Timeout)+slack, "answers for the new addresses", func() error {
		by := rig.BySource(l.late.Since(joinAt))
		for _, a := range late {
			if len(by[a]) < 5 {
				return fmt.Errorf("%s has %d results", a, len(by[a]))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	latePins := pinning(l.late.Since(joinAt))
	l.tl.say("rr pins them to: %s", formatPins(latePins))
	tally := rig.Count(l.late.Since(joinAt))
	if tally.Answers["lb1"] == 0 {
		return fmt.Errorf("lb1 is back in the pool, but neither new address was sent to it: %s", formatPins(latePins))
	}
	if tally.Failures > 0 {
		return fmt.Errorf("%d requests of the new addresses failed (last: %v)", tally.Failures, tally.LastErr)
	}
	l.w.printCounts(true)
	return nil
}

// Step 5.
func (l *lab) masterKilled() error {
	// lb1 served until now: keep its counters for step 6.
	m1, err := l.x1.Metrics(l.ctx)
	if err != nil {
		return fmt.Errorf("scrape lb1 before the kill: %w", err)
	}
	l.lb1Metrics = m1
	masterBefore := countNotify(l.lb2, "master")
	l.killAt = time.Now()
	l.x1.Kill()
	l.w.killed("lb1")
	l.tl.say("killed lb1's xkeep with SIGKILL: no priority-0 advert; its crash guard (xkeep guard) removes the VIP from eth0 at once")
	if attached, err := l.lb1.XDPAttached(); err == nil && attached {
		l.tl.say("lb1's XDP program stays attached (its link is pinned, so a restarted xkeep would adopt it) and balances until its lease lapses, 3 advert intervals after the kill: before lb2 can take over, so lb1 never bounces lb2's DR packets back")
	}
	bound := l.vi2.MasterDownInterval(l.vi2.Priority) + slack
	if _, err := l.await(bound, "lb2 holds the VIP", func() error {
		ok, err := l.lb2.HoldsVIP(l.vip)
		if err == nil && !ok {
			err = errors.New("not yet")
		}
		return err
	}); err != nil {
		return err
	}
	l.tl.say("lb2 took the VIP %v after the kill (bound: its Master_Down_Interval %v + slack); its gratuitous ARP moves the client to it",
		round(time.Since(l.killAt)), round(l.vi2.MasterDownInterval(l.vi2.Priority)))
	if err := l.notified(l.lb2, "master", masterBefore, slack); err != nil {
		return err
	}
	all := l.cli.Addrs
	replyBound := bound + l.cli.Timeout + slack
	if _, err := l.await(replyBound-time.Since(l.killAt), "every client answered after the kill", func() error {
		if err := answeredSince(l.load, all[:4], l.killAt); err != nil {
			return err
		}
		return answeredSince(l.late, all[4:], l.killAt)
	}); err != nil {
		return err
	}
	since := append(l.load.Since(l.killAt), l.late.Since(l.killAt)...)
	outage, who := rig.LongestOutage(since, l.killAt, time.Now())
	l.tl.say("the longest any client went without an answer since the kill: %v (%s); %d requests failed",
		round(outage), who, rig.Count(since).Failures)
	settled := time.Now()
	toLB1 := func() float64 {
		m, err := l.x2.Metrics(l.ctx)
		if err != nil {
			return 0
		}
		v, _ := m.Value("xkeep_backend_packets_total", "backend", netip.AddrPortFrom(l.lb1.Addr, rig.WebPort).String())
		return v
	}
	sentBefore := toLB1()
	if _, err := l.await(3*(requestEvery+l.cli.Timeout)+slack, "three more answers per client", func() error {
		for src, rs := range rig.BySource(append(l.load.Since(settled), l.late.Since(settled)...)) {
			if n := rig.Count(rs).Answers; n["lb1"]+n["lb2"] < 3 {
				return fmt.Errorf("%s: %v", src, n)
			}
		}
		return answeredSince(l.late, all[4:], settled)
	}); err != nil {
		// Say what the packets of the clients lb2 sends to lb1 do.
		sent := toLB1() - sentBefore
		requests := len(l.load.Since(settled)) + len(l.late.Since(settled))
		if sent > float64(20*(requests+len(all))) {
			return fmt.Errorf("%w: lb2 forwarded %.0f packets to lb1 meanwhile, for %d requests: they go round between lb2 and lb1, "+
				"whose XDP program still balances the VIP with the state its killed daemon left", err, sent, requests)
		}
		return err
	}
	for _, ld := range []*rig.Load{l.load, l.late} {
		if c := rig.Count(ld.Since(settled)); c.Failures > 0 {
			return fmt.Errorf("%d requests failed after lb2 took over (last: %v)", c.Failures, c.LastErr)
		}
	}
	l.tl.say("lb2 serves: %s", formatPins(pinning(append(l.load.Since(settled), l.late.Since(settled)...))))
	l.w.printCounts(true)
	return nil
}

// Step 6.
func (l *lab) counters() error {
	l.load.Stop()
	l.late.Stop()
	m2, err := l.x2.Metrics(l.ctx)
	if err != nil {
		return fmt.Errorf("scrape lb2: %w", err)
	}
	m1 := l.lb1Metrics
	l.printCounters("lb1, scraped just before the kill (it served steps 1-2 and 4):", m1)
	l.printCounters("lb2, serving now (it served step 3 and since the kill):", m2)
	l.tl.plain("           answers the client counted: %s", formatTally(rig.Count(l.w.results())))
	// lb1 forwarded to both real servers in step 2; lb2 forwarded to every
	// real server that answered since the kill.
	for _, n := range []*rig.Node{l.lb1, l.lb2} {
		if v, err := m1.Value("xkeep_backend_packets_total", "backend", netip.AddrPortFrom(n.Addr, rig.WebPort).String()); err != nil || v == 0 {
			return fmt.Errorf("lb1's xkeep_backend_packets_total for %s is %v (%v), but it forwarded requests to it in step 2", n.Name, v, err)
		}
	}
	since := rig.Count(append(l.load.Since(l.killAt), l.late.Since(l.killAt)...))
	for _, n := range []*rig.Node{l.lb1, l.lb2} {
		if since.Answers[n.Name] == 0 {
			continue
		}
		if v, err := m2.Value("xkeep_backend_packets_total", "backend", netip.AddrPortFrom(n.Addr, rig.WebPort).String()); err != nil || v == 0 {
			return fmt.Errorf("lb2's xkeep_backend_packets_total for %s is %v (%v), but %s answered %d requests since lb2 took over",
				n.Name, v, err, n.Name, since.Answers[n.Name])
		}
	}
	return nil
}

func (l *lab) printCounters(title string, m rig.Metrics) {
	l.tl.plain("           %s", title)
	l.tl.plain("             %-20s %10s %12s %13s %4s", "real server", "packets", "bytes", "active flows", "up")
	for _, n := range []*rig.Node{l.lb1, l.lb2} {
		be := netip.AddrPortFrom(n.Addr, rig.WebPort).String()
		get := func(name string) string {
			v, err := m.Value(name, "backend", be)
			if err != nil {
				return "?"
			}
			return fmt.Sprintf("%.0f", v)
		}
		l.tl.plain("             %-20s %10s %12s %13s %4s", be+" ("+n.Name+")", get("xkeep_backend_packets_total"),
			get("xkeep_backend_bytes_total"), get("xkeep_backend_active_flows"), get("xkeep_backend_up"))
	}
}

// Step 7.
func (l *lab) gracefulStop() error {
	l.w.stopped("lb2")
	took, err := l.x2.Stop(2 * time.Second)
	if err != nil {
		return err
	}
	if err := l.x2.ExitErr(); err != nil {
		return fmt.Errorf("lb2's xkeep exited with %v", err)
	}
	held, err := l.lb2.HoldsVIP(l.vip)
	if err != nil {
		return err
	}
	if held {
		return errors.New("lb2's xkeep exited but left the VIP on eth0")
	}
	if err := l.lb2.DataplaneGone(l.dataplane); err != nil {
		return fmt.Errorf("lb2's xkeep exited, but its dataplane is still there: %w", err)
	}
	l.tl.say("lb2's xkeep exited %v after SIGTERM (bound 2s): it sent priority 0, removed the VIP, detached its XDP program and removed its pins", round(took))
	return nil
}

// showLogs prints the end of each daemon's log after a failure.
func (l *lab) showLogs() {
	for _, d := range []*rig.Daemon{l.x1, l.x2} {
		if d == nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		l.tl.plain("--- last lines of %s's xkeep log ---\n%s", d.Node.Name, strings.Join(lines, "\n"))
	}
}

// pinning lists, per client address, the backends that answered it.
func pinning(results []rig.Result) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for _, r := range results {
		if r.OK() && !slices.Contains(out[r.Source], r.Backend) {
			out[r.Source] = append(out[r.Source], r.Backend)
		}
	}
	return out
}

func formatPins(pins map[netip.Addr][]string) string {
	srcs := make([]netip.Addr, 0, len(pins))
	for a := range pins {
		srcs = append(srcs, a)
	}
	sortAddrs(srcs)
	parts := make([]string, len(srcs))
	for i, a := range srcs {
		parts[i] = fmt.Sprintf("%s → %s", a, strings.Join(pins[a], "+"))
	}
	return strings.Join(parts, ", ")
}

// answeredSince returns nil once every address has an answered request
// that started at or after t.
func answeredSince(l *rig.Load, addrs []netip.Addr, t time.Time) error {
	got := map[netip.Addr]bool{}
	for _, r := range l.Since(t) {
		if r.OK() {
			got[r.Source] = true
		}
	}
	var missing []string
	for _, a := range addrs {
		if !got[a] {
			missing = append(missing, a.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no answer yet for %s", strings.Join(missing, ", "))
	}
	return nil
}

// firstAnswers is, per source, the time from t to the end of its first
// answered request.
func firstAnswers(results []rig.Result, t time.Time) map[netip.Addr]time.Duration {
	out := map[netip.Addr]time.Duration{}
	for _, r := range results {
		if _, ok := out[r.Source]; !ok && r.OK() {
			out[r.Source] = r.End.Sub(t)
		}
	}
	return out
}

func formatFirst(first map[netip.Addr]time.Duration, addrs []netip.Addr) string {
	parts := make([]string, 0, len(addrs))
	for _, a := range addrs {
		parts = append(parts, fmt.Sprintf("%s %v", a, round(first[a])))
	}
	return strings.Join(parts, ", ")
}

func sortAddrs(a []netip.Addr) {
	sort.Slice(a, func(i, j int) bool { return a[i].Less(a[j]) })
}

func joinAddrs(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func secs(d time.Duration) string { return fmt.Sprintf("%gs", d.Seconds()) }
