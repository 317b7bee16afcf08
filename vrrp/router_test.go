package vrrp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/packet"
	"github.com/xkeep/xkeep/vrrp/vrrptest"
)

// These tests run whole Routers against each other over the in-memory
// segment of vrrptest (a fake standing in for raw sockets and netlink,
// which need root; test/vrrp runs the real ones in namespaces).

type node struct {
	name    string
	host    *vrrptest.Host
	scripts *vrrptest.Scripts
	router  *vrrp.Router
	cancel  context.CancelFunc
	done    chan error
	changes chan vrrp.StateChanged
}

func startNode(t *testing.T, clock *vrrptest.Clock, seg *vrrptest.Segment, addr string, cfg vrrp.Config, setup ...func(*vrrptest.Host)) *node {
	t.Helper()
	n := &node{name: addr, host: seg.NewHost(netip.MustParseAddr(addr)), scripts: &vrrptest.Scripts{Result: map[string]error{}},
		changes: make(chan vrrp.StateChanged, 100)}
	for _, f := range setup {
		f(n.host)
	}
	deps := n.host.Deps(clock, n.scripts)
	deps.OnStateChange = func(sc vrrp.StateChanged) { n.changes <- sc }
	r, err := vrrp.NewRouter(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.router, n.cancel, n.done = r, cancel, make(chan error, 1)
	go func() { n.done <- r.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.cancel()
	<-n.done
	n.done <- nil
}

func (n *node) state(name string) vrrp.State {
	return n.status(name).State
}

func (n *node) status(name string) vrrp.InstanceStatus {
	for _, s := range n.router.Status() {
		if s.Name == name {
			return s
		}
	}
	return vrrp.InstanceStatus{}
}

// advanceUntil moves the fake clock in 5 ms steps, letting the routers
// run between steps, until cond holds or limit passes.
func advanceUntil(t *testing.T, clock *vrrptest.Clock, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for d := time.Duration(0); d <= limit; d += 5 * time.Millisecond {
		if cond() {
			return
		}
		clock.Advance(5 * time.Millisecond)
		time.Sleep(200 * time.Microsecond)
	}
	for range 200 { // let the last events land
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: not true after %v of fake time", what, limit)
}

func instCfg(prio uint8, mod ...func(*vrrp.InstanceConfig)) vrrp.Config {
	c := vrrp.InstanceConfig{Name: "VI_1", Interface: "eth0", VRID: 7, Version: 3, Priority: prio,
		AdvertInterval: 100 * time.Millisecond, GARP: vrrp.GARPConfig{MasterRepeat: 2},
		VIPs:   []vrrp.VIP{{Prefix: netip.MustParsePrefix("10.0.0.100/32")}},
		Notify: vrrp.NotifyConfig{Master: "/notify master", Any: "/notify-any"}}
	for _, f := range mod {
		f(&c)
	}
	return vrrp.Config{Instances: []vrrp.InstanceConfig{c}}
}

func TestRoutersElectFailOverAndPreempt(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	a := startNode(t, clock, seg, "10.0.0.1", instCfg(200))
	b := startNode(t, clock, seg, "10.0.0.2", instCfg(100))

	advanceUntil(t, clock, 2*time.Second, "a master, b backup", func() bool {
		return a.state("VI_1") == vrrp.StateMaster && b.state("VI_1") == vrrp.StateBackup
	})
	if got := a.host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32"}) {
		t.Fatalf("a holds %v", got)
	}
	if got := b.host.VIPs(); len(got) != 0 {
		t.Fatalf("b holds %v", got)
	}
	advanceUntil(t, clock, time.Second, "gratuitous ARPs", func() bool { return a.host.Announced(netip.MustParseAddr("10.0.0.100")) == 2 })

	// a stops gracefully: priority 0, b takes over after its skew.
	a.stop()
	if got := a.host.VIPs(); len(got) != 0 {
		t.Fatalf("a still holds %v after stopping", got)
	}
	advanceUntil(t, clock, 200*time.Millisecond, "b master after a's priority 0", func() bool { return b.state("VI_1") == vrrp.StateMaster })
	st := b.router.Status()[0]
	if st.Counters.PriorityZeroReceived != 1 || st.Counters.BecameMaster != 1 {
		t.Fatalf("b counters %+v", st.Counters)
	}

	// a comes back and preempts.
	a2 := startNode(t, clock, seg, "10.0.0.1", instCfg(200))
	advanceUntil(t, clock, 2*time.Second, "a preempts", func() bool {
		return a2.state("VI_1") == vrrp.StateMaster && b.state("VI_1") == vrrp.StateBackup
	})
	if got := b.host.VIPs(); len(got) != 0 {
		t.Fatalf("b holds %v after a preempted", got)
	}
	// notify_master and notify ran with keepalived's arguments, and the
	// state hook saw every transition in order (both run asynchronously).
	want := []string{"/notify master", "/notify-any INSTANCE VI_1 BACKUP 200", "/notify-any INSTANCE VI_1 MASTER 200"}
	var joined, seen []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		joined = nil
		for _, r := range a2.scripts.Runs() {
			joined = append(joined, strings.Join(r, " "))
		}
		for len(a2.changes) > 0 {
			sc := <-a2.changes
			seen = append(seen, fmt.Sprintf("%s->%s", sc.From, sc.To))
		}
		if len(seen) == 2 && !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(joined, w) }) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, w := range want {
		if !slices.Contains(joined, w) {
			t.Errorf("scripts run %q, missing %q", joined, w)
		}
	}
	if !slices.Equal(seen, []string{"INIT->BACKUP", "BACKUP->MASTER"}) {
		t.Fatalf("hook saw %v", seen)
	}
}

func TestRouterTrackScriptAndLinkFault(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	cfg := instCfg(200, func(c *vrrp.InstanceConfig) { c.TrackScripts = []vrrp.TrackScript{{Name: "chk", Weight: -150}} })
	cfg.Scripts = []vrrp.ScriptConfig{{Name: "chk", Command: "/check", Interval: 50 * time.Millisecond}}
	a := startNode(t, clock, seg, "10.0.0.1", cfg)
	b := startNode(t, clock, seg, "10.0.0.2", instCfg(100))
	advanceUntil(t, clock, 2*time.Second, "a master", func() bool { return a.state("VI_1") == vrrp.StateMaster })

	a.scripts.SetResult("/check", errors.New("exit status 1"))
	advanceUntil(t, clock, 2*time.Second, "b preempts a at priority 50", func() bool {
		return b.state("VI_1") == vrrp.StateMaster && a.state("VI_1") == vrrp.StateBackup
	})
	if p := a.router.Status()[0].EffectivePriority; p != 50 {
		t.Fatalf("a effective priority %d", p)
	}

	b.host.SetLink("eth0", false)
	advanceUntil(t, clock, time.Second, "b in FAULT", func() bool { return b.state("VI_1") == vrrp.StateFault })
	advanceUntil(t, clock, 2*time.Second, "a master again", func() bool { return a.state("VI_1") == vrrp.StateMaster })
}

// A link watch that fails (a netlink socket overrun) is started again:
// a link going down after that still puts the instance in FAULT, and one
// removed while nobody watched is seen gone.
func TestRouterWatchesLinksAgainAfterAFailure(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	a := startNode(t, clock, seg, "10.0.0.1", instCfg(255))
	advanceUntil(t, clock, time.Second, "a master", func() bool { return a.state("VI_1") == vrrp.StateMaster })

	a.host.BreakWatch(errors.New("recvmsg: no buffer space available"))
	a.host.SetLink("eth0", false) // while nobody watches: seen when watching again
	advanceUntil(t, clock, 3*time.Second, "a in FAULT after the watch restarts", func() bool { return a.state("VI_1") == vrrp.StateFault })
	a.host.SetLink("eth0", true)
	advanceUntil(t, clock, 3*time.Second, "a master again", func() bool { return a.state("VI_1") == vrrp.StateMaster })

	a.host.BreakWatch(errors.New("recvmsg: no buffer space available"))
	a.host.RemoveLink("eth0")
	advanceUntil(t, clock, 3*time.Second, "a in FAULT: eth0 gone", func() bool { return a.state("VI_1") == vrrp.StateFault })
	if r := a.router.Status()[0].FaultReasons; len(r) == 0 || r[0] != "interface eth0 missing" {
		t.Fatalf("fault reasons %q", r)
	}
}

func TestRouterReloadKeepsUnchangedInstance(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	cfg := instCfg(255)
	a := startNode(t, clock, seg, "10.0.0.1", cfg)
	advanceUntil(t, clock, time.Second, "a master", func() bool { return a.state("VI_1") == vrrp.StateMaster })
	before := a.router.Status()[0].LastTransition

	next := instCfg(255)
	second := next.Instances[0]
	second.Name, second.VRID = "VI_2", 8
	second.VIPs = []vrrp.VIP{{Prefix: netip.MustParsePrefix("10.0.0.200/32")}}
	next.Instances = append(next.Instances, second)
	if err := a.router.Reload(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clock, time.Second, "VI_2 master", func() bool { return a.state("VI_2") == vrrp.StateMaster })
	if st := a.router.Status()[0]; st.LastTransition != before || st.State != vrrp.StateMaster {
		t.Fatalf("VI_1 restarted on reload: %+v", st)
	}
	if got := a.host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32", "10.0.0.200/32"}) {
		t.Fatalf("VIPs %v", got)
	}
	if err := a.router.Reload(context.Background(), instCfg(255, func(c *vrrp.InstanceConfig) { c.VRID = 0 })); err == nil {
		t.Fatal("reload accepted VRID 0")
	}
}

// An instance whose interface does not exist waits in FAULT (Run does not
// fail); when the interface appears its socket opens and it runs, when it
// vanishes it is FAULT again, and the instance on another interface never
// notices.
func TestRouterInterfaceAppearsAndVanishes(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	late := func(prio uint8) vrrp.InstanceConfig {
		c := instCfg(prio).Instances[0]
		c.Name, c.Interface, c.VRID = "VI_2", "late0", 8
		c.VIPs = []vrrp.VIP{{Prefix: netip.MustParsePrefix("10.0.1.100/32")}}
		return c
	}
	cfgA := instCfg(200)
	cfgA.Instances = append(cfgA.Instances, late(100))
	a := startNode(t, clock, seg, "10.0.0.1", cfgA, func(h *vrrptest.Host) { h.RemoveLink("late0") })
	// The peer on late0 has the higher priority: a hears it once its
	// socket is open, and stays backup.
	b := startNode(t, clock, seg, "10.0.0.2", vrrp.Config{Instances: []vrrp.InstanceConfig{late(250)}})

	advanceUntil(t, clock, 2*time.Second, "VI_1 master, VI_2 in FAULT", func() bool {
		return a.state("VI_1") == vrrp.StateMaster && a.state("VI_2") == vrrp.StateFault && b.state("VI_2") == vrrp.StateMaster
	})
	if r := a.status("VI_2").FaultReasons; !slices.Equal(r, []string{"interface late0 missing"}) {
		t.Fatalf("VI_2 fault reasons %q", r)
	}
	if n := a.host.Listens("late0"); n != 0 {
		t.Fatalf("%d sockets opened on the missing interface", n)
	}
	vi1 := a.status("VI_1").LastTransition

	for round := 1; round <= 2; round++ {
		a.host.SetLink("late0", true)
		advanceUntil(t, clock, 2*time.Second, "VI_2 backup once late0 exists", func() bool {
			return a.state("VI_2") == vrrp.StateBackup && a.host.Listens("late0") == round
		})
		// Longer than its Master_Down_Interval: it hears b on the new
		// socket and stays backup.
		advanceUntil(t, clock, time.Second, "a hears b on late0", func() bool {
			return a.status("VI_2").Counters.AdvertsReceived >= uint64(5*round)
		})
		if s := a.state("VI_2"); s != vrrp.StateBackup {
			t.Fatalf("round %d: VI_2 %v while b is master", round, s)
		}

		a.host.RemoveLink("late0")
		advanceUntil(t, clock, time.Second, "VI_2 in FAULT once late0 is gone", func() bool {
			return a.state("VI_2") == vrrp.StateFault
		})
		if r := a.status("VI_2").FaultReasons; !slices.Equal(r, []string{"interface late0 missing"}) {
			t.Fatalf("VI_2 fault reasons %q", r)
		}
	}
	if st := a.status("VI_1"); st.State != vrrp.StateMaster || st.LastTransition != vi1 {
		t.Fatalf("VI_1 was disturbed: %+v", st)
	}
	if got := a.host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32"}) {
		t.Fatalf("a holds %v", got)
	}

	// Alone on late0 (b stopped), a's VI_2 becomes master when the link
	// is back, and releases its address when it goes.
	b.stop()
	a.host.SetLink("late0", true)
	advanceUntil(t, clock, 2*time.Second, "VI_2 master without a peer", func() bool { return a.state("VI_2") == vrrp.StateMaster })
	if got := a.host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32", "10.0.1.100/32"}) {
		t.Fatalf("a holds %v", got)
	}
	a.host.SetLink("late0", false)
	advanceUntil(t, clock, time.Second, "VI_2 in FAULT with late0 down", func() bool { return a.state("VI_2") == vrrp.StateFault })
	if r := a.status("VI_2").FaultReasons; !slices.Equal(r, []string{"interface late0 down"}) {
		t.Fatalf("VI_2 fault reasons %q", r)
	}
	if got := a.host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32"}) {
		t.Fatalf("a holds %v", got)
	}
}

// notify_master_rx_lower_pri runs each time the master hears a lower
// priority (here a stray advert from a third host).
func TestRouterNotifyMasterRxLowerPri(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	a := startNode(t, clock, seg, "10.0.0.1", instCfg(200, func(c *vrrp.InstanceConfig) {
		c.Notify = vrrp.NotifyConfig{MasterRxLowerPri: "/rx-lower 'a b'"}
	}))
	advanceUntil(t, clock, 2*time.Second, "a master", func() bool { return a.state("VI_1") == vrrp.StateMaster })

	stray, err := seg.NewHost(netip.MustParseAddr("10.0.0.9")).Listen("eth0", false)
	if err != nil {
		t.Fatal(err)
	}
	adv := packet.Advert{Version: 3, VRID: 7, Priority: 50, Interval: 100 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	msg, err := adv.Marshal(netip.MustParseAddr("10.0.0.9"), packet.GroupIPv4, packet.PseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	if err := stray.Write(netip.MustParseAddr("10.0.0.9"), packet.GroupIPv4, packet.TTL, msg); err != nil {
		t.Fatal(err)
	}
	testEventually(t, "notify_master_rx_lower_pri ran", func() bool {
		for _, r := range a.scripts.Runs() {
			if slices.Equal(r, []string{"/rx-lower", "a b"}) {
				return true
			}
		}
		return false
	})
	if st := a.status("VI_1"); st.State != vrrp.StateMaster {
		t.Fatalf("a %v after a lower priority", st.State)
	}
}

// mcast_dst_ip: two pairs run the same VRID on one segment, each on its
// own multicast group, and elect a master each.
func TestRouterMcastGroups(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	group := func(g string) func(*vrrp.InstanceConfig) {
		return func(c *vrrp.InstanceConfig) {
			if g != "" {
				c.McastGroup = netip.MustParseAddr(g)
			}
		}
	}
	a1 := startNode(t, clock, seg, "10.0.0.1", instCfg(200, group("224.0.0.99")))
	a2 := startNode(t, clock, seg, "10.0.0.2", instCfg(100, group("224.0.0.99")))
	b1 := startNode(t, clock, seg, "10.0.0.3", instCfg(150, group("")))
	b2 := startNode(t, clock, seg, "10.0.0.4", instCfg(50, group("")))
	advanceUntil(t, clock, 3*time.Second, "a master per group", func() bool {
		return a1.state("VI_1") == vrrp.StateMaster && b1.state("VI_1") == vrrp.StateMaster &&
			a2.state("VI_1") == vrrp.StateBackup && b2.state("VI_1") == vrrp.StateBackup
	})
	// Long enough for every backup's Master_Down_Interval: they hear
	// their own group's master only.
	advanceUntil(t, clock, time.Second, "backups hear their masters", func() bool {
		return a2.status("VI_1").Counters.AdvertsReceived > 5 && b2.status("VI_1").Counters.AdvertsReceived > 5
	})
	for _, n := range []*node{a1, a2, b1, b2} {
		if st := n.status("VI_1"); st.Counters.BecameMaster > 1 || st.Counters.ReleasedMaster > 0 {
			t.Fatalf("%s: %+v", n.name, st)
		}
	}
	if m := a2.status("VI_1").MasterAddr; m != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("a2 follows %v", m)
	}
	if m := b2.status("VI_1").MasterAddr; m != netip.MustParseAddr("10.0.0.3") {
		t.Fatalf("b2 follows %v", m)
	}
}

func testEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A reload that cannot open a socket (for another reason than a missing
// interface) changes nothing: an error, and the sockets it opened for
// its other new instances are closed again.
func TestRouterFailedReloadClosesItsSockets(t *testing.T) {
	clock := vrrptest.NewClock(time.Unix(1000, 0))
	seg := &vrrptest.Segment{}
	a := startNode(t, clock, seg, "10.0.0.1", instCfg(255))
	advanceUntil(t, clock, time.Second, "a master", func() bool { return a.state("VI_1") == vrrp.StateMaster })
	a.host.FailListen("eth2", errors.New("operation not permitted"))

	next := instCfg(255)
	for i, ifname := range []string{"eth1", "eth2"} {
		c := next.Instances[0]
		c.Name, c.Interface, c.VRID = fmt.Sprintf("VI_%d", i+2), ifname, uint8(8+i)
		next.Instances = append(next.Instances, c)
	}
	err := a.router.Reload(context.Background(), next)
	if err == nil || !strings.Contains(err.Error(), "vrrp_instance VI_3: open VRRP socket on eth2") {
		t.Fatalf("Reload = %v", err)
	}
	if n := a.host.OpenConns("eth1"); a.host.Listens("eth1") != 1 || n != 0 {
		t.Fatalf("eth1: %d opened, %d still open", a.host.Listens("eth1"), n)
	}
	if st := a.router.Status(); len(st) != 1 || st[0].State != vrrp.StateMaster {
		t.Fatalf("status after the failed reload: %+v", st)
	}
}

// The router fills defaults (source address, script timers) into a copy:
// the caller's configuration, which a daemon keeps to diff the next
// reload against, stays as it was.
func TestRouterLeavesTheCallersConfigAlone(t *testing.T) {
	clock := vrrptest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	seg := &vrrptest.Segment{}
	cfg := instCfg(100)
	cfg.Scripts = []vrrp.ScriptConfig{{Name: "chk", Command: "/bin/true"}}
	before := fmt.Sprintf("%+v", cfg)
	n := startNode(t, clock, seg, "10.0.0.1", cfg)
	if err := n.router.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%+v", cfg); after != before {
		t.Fatalf("config changed by NewRouter/Reload:\nbefore %s\nafter  %s", before, after)
	}
}
