package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/health"
)

// TestUpdateKeepsHealth reloads a running checker: unchanged servers keep
// their verdict and schedule, new ones start afresh, removed ones leave
// with their notify_down, and quorum follows the new settings.
func TestUpdateKeepsHealth(t *testing.T) {
	l := newLab(t)
	for _, a := range []string{"10.77.0.2:80", "10.77.0.4:80", "10.77.0.5:80", "10.77.0.6:80"} {
		newTCPServer(t, l.rs, a)
	}
	s := newScriptDir(t)
	notify := s.notifier()
	script := func(args ...string) health.Script { return health.Script{Args: append([]string{notify}, args...)} }
	tm := timing(6*time.Second, time.Second, 0)
	rs := func(addr string, alpha bool) health.RealServer {
		return health.RealServer{Addr: ap(addr), Weight: 1, NotifyUp: script("up", addr), NotifyDown: script("down", addr),
			Checks: []health.Check{{Spec: health.TCPCheck{}, Alpha: alpha, Timing: tm}}}
	}
	vs := func(name string, quorum int, rss ...health.RealServer) health.VirtualServer {
		return health.VirtualServer{Name: name, Quorum: quorum, QuorumUp: script("quorum-up", name), QuorumDown: script("quorum-down", name), RealServers: rss}
	}
	h := start(t, l.lb, health.Config{VirtualServers: []health.VirtualServer{
		vs("one", 1, rs("10.77.0.2:80", false), rs("10.77.0.3:80", false)), // nothing listens on .3
		vs("two", 1, rs("10.77.0.4:80", false)),
	}}, health.Options{})
	h.round(time.Second, "10.77.0.2:80", "10.77.0.3:80", "10.77.0.4:80")
	h.waitState(ap("10.77.0.3:80"), health.StateDown, 0)
	s.waitLines("down_10.77.0.3:80")
	h.clk.Advance(2 * time.Second) // the kept checkers are due in 4 s
	before := h.check(ap("10.77.0.2:80"), 0)

	// A broken configuration changes nothing.
	bad := health.Config{VirtualServers: []health.VirtualServer{vs("one", 1)}}
	if err := h.m.Update(bad); err == nil || !strings.Contains(err.Error(), `virtual server "one": no real servers`) {
		t.Fatalf("Update(bad) = %v", err)
	}
	h.next(4*time.Second, 4*time.Second, 4*time.Second)

	err := h.m.Update(health.Config{VirtualServers: []health.VirtualServer{
		vs("one", 2, rs("10.77.0.2:80", false), rs("10.77.0.3:80", false), rs("10.77.0.5:80", true)),
		vs("three", 1, rs("10.77.0.6:80", false)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	// .2 and .3 keep their state and schedule (4 s); .5 and .6 are new
	// (bootstrap second); two's checker stopped.
	h.waitPending(time.Second, time.Second, 4*time.Second, 4*time.Second)
	snap := h.m.Snapshot()
	one, _ := snap.VirtualServer("one")
	if got := view(one); got != "quorum-up=false sorry=false 10.77.0.2:up/1 10.77.0.3:down/0 10.77.0.5:down/0" {
		t.Errorf("after reload %s", got)
	}
	if b, _ := one.Backend(ap("10.77.0.2:80"), false); b.Checks[0].Probes != before.Probes || !b.Checks[0].OK {
		t.Errorf("kept checker lost its results: %+v", b.Checks[0])
	}
	if _, ok := snap.VirtualServer("two"); ok {
		t.Error("removed virtual server still reported")
	}
	// quorum 2 > alive weight 1: lost; two's alive server leaves.
	s.waitLinesUnordered("down_10.77.0.3:80", "quorum-down_one", "down_10.77.0.4:80", "quorum-down_two")

	h.clk.Advance(time.Second)
	h.waitProbes(ap("10.77.0.5:80"), 0, 1)
	h.waitProbes(ap("10.77.0.6:80"), 0, 1)
	h.waitState(ap("10.77.0.5:80"), health.StateUp, 1)
	s.waitLinesUnordered("down_10.77.0.3:80", "quorum-down_one", "down_10.77.0.4:80", "quorum-down_two",
		"up_10.77.0.5:80", "quorum-up_one")
	h.round(3*time.Second, "10.77.0.2:80", "10.77.0.3:80")
	if st := h.check(ap("10.77.0.2:80"), 0); st.Probes != before.Probes+1 {
		t.Errorf("kept checker probed %d times, want %d", st.Probes, before.Probes+1)
	}

	// A changed checker starts over; a changed weight applies at once.
	changed := rs("10.77.0.2:80", false)
	changed.Weight = 4
	changed.Checks[0].Connect.Port = 8080 // nothing listens there
	if err := h.m.Update(health.Config{VirtualServers: []health.VirtualServer{
		vs("one", 2, changed, rs("10.77.0.3:80", false), rs("10.77.0.5:80", true)),
		vs("three", 1, rs("10.77.0.6:80", false)),
	}}); err != nil {
		t.Fatal(err)
	}
	h.waitState(ap("10.77.0.2:80"), health.StateUp, 4)
	if st := h.check(ap("10.77.0.2:80"), 0); st.Ran || st.Target != "10.77.0.2:8080" {
		t.Errorf("changed checker %+v, want a fresh one on :8080", st)
	}
	// Fresh: bootstrap second. .5 and .6 are due in 3 s, .3 in 6 s.
	h.waitPending(time.Second, 3*time.Second, 3*time.Second, 6*time.Second)
	h.clk.Advance(time.Second)
	h.waitProbes(ap("10.77.0.2:80"), 0, 1)
	h.waitState(ap("10.77.0.2:80"), health.StateDown, 0)

	h.stop()
	if err := h.m.Update(health.Config{VirtualServers: []health.VirtualServer{vs("one", 1, rs("10.77.0.2:80", false))}}); err == nil {
		t.Error("Update after stop succeeded")
	}
}

// TestUpdateBeforeRun applies a configuration change before Run starts.
func TestUpdateBeforeRun(t *testing.T) {
	s := newScriptDir(t)
	ok := s.write("ok.sh", "exit 0")
	cfg := func(n int) health.Config {
		var rss []health.RealServer
		for i := 0; i < n; i++ {
			rss = append(rss, health.RealServer{Addr: ap("10.77.0." + string(rune('2'+i)) + ":80"), Weight: 1, Checks: []health.Check{{
				Spec: health.MiscCheck{Script: health.Script{Args: []string{ok}}}, Timing: timing(5*time.Second, time.Second, 0)}}})
		}
		return oneServer(rss...)
	}
	m, err := health.New(cfg(1), health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(cfg(2)); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Snapshot().VirtualServers[0].Backends); n != 2 {
		t.Fatalf("%d backends after Update, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}
