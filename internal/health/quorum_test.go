package health_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

// round advances the clock by d, which must start a probe of every
// listed real server's first checker, and waits for them all.
func (h *harness) round(d time.Duration, rss ...string) {
	h.t.Helper()
	before := map[string]uint64{}
	for _, rs := range rss {
		before[rs] = h.check(ap(rs), 0).Probes
	}
	h.clk.Advance(d)
	for _, rs := range rss {
		h.waitProbes(ap(rs), 0, before[rs]+1)
	}
}

// view renders a virtual server as "quorum sorry backends...".
func view(vs health.VirtualServerStatus) string {
	parts := []string{fmt.Sprintf("quorum-up=%v sorry=%v", vs.QuorumUp, vs.SorryActive)}
	for _, b := range vs.Backends {
		name := b.Addr.Addr().String()
		if b.Sorry {
			name = "sorry"
		}
		parts = append(parts, fmt.Sprintf("%s:%s/%d", name, b.State, b.Weight))
	}
	return strings.Join(parts, " ")
}

func (h *harness) waitView(want string) {
	h.t.Helper()
	testnet.Eventually(h.t, 10*time.Second, want, func() error {
		if got := view(h.m.Snapshot().VirtualServers[0]); got != want {
			return fmt.Errorf("got %s", got)
		}
		return nil
	})
}

// waitChange expects a signal on Changes.
func (h *harness) waitChange() {
	h.t.Helper()
	select {
	case <-h.m.Changes():
	case <-time.After(10 * time.Second):
		h.t.Fatal("no change signalled")
	}
}

// waitLinesUnordered waits until the notify log holds want in any order
// (scripts run concurrently).
func (s *scriptDir) waitLinesUnordered(want ...string) {
	s.t.Helper()
	want = slices.Sorted(slices.Values(want))
	testnet.Eventually(s.t, 10*time.Second, fmt.Sprintf("notify log %v", want), func() error {
		got := slices.Sorted(slices.Values(s.lines()))
		if !slices.Equal(got, want) {
			return fmt.Errorf("log %v", got)
		}
		return nil
	})
}

// TestQuorumSorryServerInhibitOmega runs a virtual server of three real
// TCP servers (the third with inhibit_on_failure), quorum 2, a sorry
// server and omega, and takes servers down and up.
func TestQuorumSorryServerInhibitOmega(t *testing.T) {
	l := newLab(t)
	addrs := []string{"10.77.0.2:80", "10.77.0.3:80", "10.77.0.4:80"}
	srv := map[string]*tcpServer{}
	for _, a := range addrs {
		srv[a] = newTCPServer(t, l.rs, a)
	}
	s := newScriptDir(t)
	notify := s.notifier()
	script := func(args ...string) health.Script { return health.Script{Args: append([]string{notify}, args...)} }
	tm := timing(5*time.Second, time.Second, 0)
	var rss []health.RealServer
	for i, a := range addrs {
		rss = append(rss, health.RealServer{
			Addr: ap(a), Weight: 1, Inhibit: i == 2,
			NotifyUp: script("up", a), NotifyDown: script("down", a),
			Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: tm}},
		})
	}
	h := start(t, l.lb, health.Config{VirtualServers: []health.VirtualServer{{
		Name: "TCP 10.77.9.9:80", Quorum: 2, Omega: true,
		QuorumUp: script("quorum-up"), QuorumDown: script("quorum-down"),
		Sorry:       &health.SorryServer{Addr: ap("10.77.0.9:80")},
		RealServers: rss,
	}}}, health.Options{})

	h.round(time.Second, addrs...)
	h.waitView("quorum-up=true sorry=false 10.77.0.2:up/1 10.77.0.3:up/1 10.77.0.4:up/1 sorry:down/0")

	// Two of three down: quorum lost, the sorry server replaces the real
	// servers; the inhibited one stays with weight 0.
	srv[addrs[0]].Stop()
	srv[addrs[1]].Stop()
	h.round(5*time.Second, addrs...)
	h.waitChange()
	h.waitView("quorum-up=false sorry=true 10.77.0.2:down/0 10.77.0.3:down/0 10.77.0.4:draining/0 sorry:up/1")
	s.waitLinesUnordered("down_10.77.0.2:80", "down_10.77.0.3:80", "quorum-down")

	// One back: quorum regained, the sorry server leaves.
	srv[addrs[0]].Start()
	h.round(5*time.Second, addrs...)
	h.waitView("quorum-up=true sorry=false 10.77.0.2:up/1 10.77.0.3:down/0 10.77.0.4:up/1 sorry:down/0")
	s.waitLinesUnordered("down_10.77.0.2:80", "down_10.77.0.3:80", "quorum-down", "up_10.77.0.2:80", "quorum-up")

	// The inhibited server fails: draining, and quorum lost again.
	srv[addrs[2]].Stop()
	h.round(5*time.Second, addrs...)
	h.waitView("quorum-up=false sorry=true 10.77.0.2:down/0 10.77.0.3:down/0 10.77.0.4:draining/0 sorry:up/1")
	if b := h.backend(ap(addrs[2])); b.Alive || b.Checks[0].Up {
		t.Errorf("inhibited failed server %+v", b)
	}
	srv[addrs[2]].Start()
	h.round(5*time.Second, addrs...)
	h.waitView("quorum-up=true sorry=false 10.77.0.2:up/1 10.77.0.3:down/0 10.77.0.4:up/1 sorry:down/0")
	s.waitLinesUnordered("down_10.77.0.2:80", "down_10.77.0.3:80", "quorum-down", "up_10.77.0.2:80", "quorum-up",
		"down_10.77.0.4:80", "quorum-down", "up_10.77.0.4:80", "quorum-up")

	// Omega: shutting down runs the alive servers' notify_down and
	// quorum_down.
	h.stop()
	h.waitView("quorum-up=false sorry=false 10.77.0.2:down/0 10.77.0.3:down/0 10.77.0.4:draining/0 sorry:down/0")
	s.waitLinesUnordered("down_10.77.0.2:80", "down_10.77.0.3:80", "quorum-down", "up_10.77.0.2:80", "quorum-up",
		"down_10.77.0.4:80", "quorum-down", "up_10.77.0.4:80", "quorum-up",
		"down_10.77.0.2:80", "down_10.77.0.4:80", "quorum-down")
}

// TestShutdownLeavesNothing: canceling Run with probes hung in connect,
// in an HTTP read, in an ICMP wait and in a script returns at once, kills
// the script and leaves no goroutine behind.
func TestShutdownLeavesNothing(t *testing.T) {
	l := newLab(t)
	listen(t, l.rs, "tcp4", "10.77.0.2:8080") // never accepts: requests go unanswered
	s := newScriptDir(t)
	slow := s.write("slow.sh", `echo $$ > "`+s.dir+`/pid"; exec sleep 600`)
	tm := timing(5*time.Second, time.Second, 0)
	tm.ConnectTimeout = time.Minute
	baseline := runtime.NumGoroutine()

	h := start(t, l.lb, oneServer(
		health.RealServer{Addr: ap(blackhole + ":80"), Weight: 1, Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: tm}}},
		health.RealServer{Addr: ap("10.77.0.2:8080"), Weight: 1, Checks: []health.Check{
			{Spec: health.HTTPCheck{URLs: []health.URL{{Path: "/"}}}, Timing: tm},
			{Spec: health.MiscCheck{Script: health.Script{Args: []string{slow}}, Timeout: time.Minute}, Timing: tm},
		}},
		health.RealServer{Addr: ap(blackhole + ":0"), Weight: 1, Checks: []health.Check{{Spec: health.PingCheck{}, Timing: tm}}},
	), health.Options{})
	h.clk.Advance(time.Second)
	pid := readPID(t, filepath.Join(s.dir, "pid"))
	h.waitPending(time.Minute, time.Minute, time.Minute, time.Minute) // four probes in flight
	for _, st := range h.m.Snapshot().VirtualServers[0].Backends {
		for _, c := range st.Checks {
			if c.Probes != 0 {
				t.Fatalf("%s finished: %+v", c.Type, c)
			}
		}
	}

	began := time.Now()
	h.stop()
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Run took %v to return after cancel, want under 2 s", took)
	}
	testnet.Eventually(t, 10*time.Second, "goroutines back to baseline", func() error {
		if n := runtime.NumGoroutine(); n > baseline {
			return fmt.Errorf("%d goroutines, %d before", n, baseline)
		}
		return nil
	})
	testnet.Eventually(t, 10*time.Second, "script killed", func() error {
		if procAlive(pid) {
			return fmt.Errorf("pid %d runs", pid)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(s.dir, "pid")); err != nil {
		t.Fatal(err)
	}
}

// TestMultipleCheckersPerServer: a real server with a TCP_CHECK and an
// HTTP_GET goes down when either fails and comes back when both pass.
func TestMultipleCheckersPerServer(t *testing.T) {
	l := newLab(t)
	tcp := newTCPServer(t, l.rs, "10.77.0.2:80")
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:80")
	tm := timing(5*time.Second, time.Second, 0)
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		{Spec: health.TCPCheck{}, Timing: tm},
		{Spec: health.HTTPCheck{URLs: []health.URL{{Path: "/"}}}, Timing: tm, Connect: health.Connect{Port: 8080}},
	}}), health.Options{})
	both := func(d time.Duration) {
		t.Helper()
		b := h.backend(rs)
		h.clk.Advance(d)
		h.waitProbes(rs, 0, b.Checks[0].Probes+1)
		h.waitProbes(rs, 1, b.Checks[1].Probes+1)
	}
	both(time.Second)
	h.waitState(rs, health.StateUp, 1)
	tcp.Stop()
	both(5 * time.Second)
	h.waitState(rs, health.StateDown, 0)
	web.setMode(webFail)
	tcp.Start()
	both(5 * time.Second)
	if b := h.backend(rs); b.State != health.StateDown || !b.Checks[0].Up || b.Checks[1].Up {
		t.Fatalf("TCP passing, HTTP failing: %+v", b)
	}
	web.setMode(webOK)
	both(5 * time.Second) // the failed URL passes: all URLs are checked again
	both(5 * time.Second)
	h.waitState(rs, health.StateUp, 1)
}
