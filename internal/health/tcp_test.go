package health_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/health"
)

// TestTCPCheckSchedule walks TCP_CHECK through keepalived's schedule on
// the fake clock: bootstrap second, delay_loop between passing checks,
// retry attempts delay_before_retry apart before the server goes down,
// retries cycling while down, and recovery.
func TestTCPCheckSchedule(t *testing.T) {
	l := newLab(t)
	srv := newTCPServer(t, l.rs, "10.77.0.2:80")
	scripts := newScriptDir(t)
	notify := scripts.notifier()
	rs := ap("10.77.0.2:80")
	h := start(t, l.lb, oneServer(health.RealServer{
		Addr: rs, Weight: 3,
		NotifyUp:   health.Script{Args: []string{notify, "up"}},
		NotifyDown: health.Script{Args: []string{notify, "down"}},
		Checks:     []health.Check{{Spec: health.TCPCheck{}, Timing: timing(6*time.Second, 2*time.Second, 2)}},
	}), health.Options{})

	// Servers without alpha start in the pool, before any check.
	if b := h.backend(rs); b.State != health.StateUp || b.Weight != 3 {
		t.Fatalf("at start %s/%d, want up/3", b.State, b.Weight)
	}
	h.next(health.BootstrapDelay)
	st := h.probe(rs, 0, time.Second)
	if !st.OK || !st.Up || st.Error != "" {
		t.Fatalf("first probe %+v", st)
	}
	h.next(6 * time.Second)

	srv.Stop()
	for i := 1; i <= 2; i++ {
		st = h.probe(rs, 0, h.mustNext())
		if st.OK || !st.Up || st.Retrying != i || !strings.Contains(st.Error, "connection refused") {
			t.Fatalf("failure %d: %+v, want a retry (refused, still up)", i, st)
		}
		h.next(2 * time.Second)
		if b := h.backend(rs); b.State != health.StateUp {
			t.Fatalf("down after %d failures of retry 2", i)
		}
	}
	st = h.probe(rs, 0, 2*time.Second)
	if st.Up {
		t.Fatalf("still up after retry+1 failures: %+v", st)
	}
	h.waitState(rs, health.StateDown, 0)
	h.next(6 * time.Second)
	scripts.waitLines("down")

	// TCP_CHECK cycles through its retries while down.
	h.probe(rs, 0, 6*time.Second)
	h.next(2 * time.Second)
	srv.Start()
	st = h.probe(rs, 0, 2*time.Second)
	if !st.OK || !st.Up {
		t.Fatalf("recovery probe %+v", st)
	}
	h.waitState(rs, health.StateUp, 3)
	h.next(6 * time.Second)
	scripts.waitLines("down", "up")
	if st.Probes != 6 || st.Failures != 4 {
		t.Errorf("probes %d failures %d, want 6 and 4", st.Probes, st.Failures)
	}
}

// mustNext returns the time to the soonest pending timer.
func (h *harness) mustNext() time.Duration {
	h.t.Helper()
	d, ok := h.clk.Next()
	if !ok {
		h.t.Fatal("no timer pending")
	}
	return d
}

// TestWarmup: the first check waits the bootstrap second plus a random
// share of warmup, drawn from the injected source over [0, warmup].
func TestWarmup(t *testing.T) {
	l := newLab(t)
	newTCPServer(t, l.rs, "10.77.0.2:80")
	newTCPServer(t, l.rs, "10.77.0.3:80")
	tm := timing(6*time.Second, time.Second, 1)
	tm.Warmup = 10 * time.Second
	noWarmup := tm
	noWarmup.Warmup = 0
	var asked []int64
	h := start(t, l.lb, oneServer(
		health.RealServer{Addr: ap("10.77.0.2:80"), Weight: 1, Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: tm}}},
		health.RealServer{Addr: ap("10.77.0.3:80"), Weight: 1, Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: noWarmup}}},
	), health.Options{Random: func(n int64) int64 { asked = append(asked, n); return n - 1 }})
	h.waitPending(time.Second, 11*time.Second)
	if len(asked) != 1 || asked[0] != int64(10*time.Second)+1 {
		t.Errorf("random asked for %v, want one draw over [0, 10s]", asked)
	}
	h.probe(ap("10.77.0.3:80"), 0, time.Second)
	h.next(6*time.Second, 10*time.Second)
	h.probe(ap("10.77.0.3:80"), 0, 6*time.Second)
	h.next(4*time.Second, 6*time.Second)
	st := h.probe(ap("10.77.0.2:80"), 0, 4*time.Second)
	if st.Probes != 1 || !st.OK {
		t.Fatalf("warmed-up checker %+v, want its first probe at 11 s", st)
	}
	if got := st.LastRun.Sub(epoch); got != 11*time.Second {
		t.Errorf("first probe at %v, want 11s", got)
	}
}

// TestAlpha: an alpha checker starts failed, keeping its server out of the
// pool until a check passes; keepalived then runs notify_up.
func TestAlpha(t *testing.T) {
	l := newLab(t)
	newTCPServer(t, l.rs, "10.77.0.2:80")
	scripts := newScriptDir(t)
	notify := scripts.notifier()
	rs := ap("10.77.0.2:80")
	h := start(t, l.lb, oneServer(health.RealServer{
		Addr: rs, Weight: 1,
		NotifyUp: health.Script{Args: []string{notify, "up"}},
		Checks:   []health.Check{{Spec: health.TCPCheck{}, Alpha: true, Timing: timing(6*time.Second, time.Second, 1)}},
	}), health.Options{})
	if b := h.backend(rs); b.State != health.StateDown || b.Alive {
		t.Fatalf("alpha server at start %+v, want down", b)
	}
	if vs := h.m.Snapshot().VirtualServers[0]; vs.QuorumUp {
		t.Fatal("quorum up with every server down")
	}
	h.probe(rs, 0, time.Second)
	h.waitState(rs, health.StateUp, 1)
	scripts.waitLines("up")
}

// TestConnectOptions: connect_ip and connect_port pick what is checked,
// bindto and bind_port the source.
func TestConnectOptions(t *testing.T) {
	l := newLab(t)
	srv := newTCPServer(t, l.rs, "10.77.0.4:8081")
	rs := ap("10.77.0.3:80") // nothing listens here
	h := start(t, l.lb, oneServer(health.RealServer{
		Addr: rs, Weight: 1,
		Checks: []health.Check{{
			Spec:    health.TCPCheck{},
			Timing:  timing(6*time.Second, time.Second, 1),
			Connect: health.Connect{IP: ap("10.77.0.4:1").Addr(), Port: 8081, BindTo: ap("10.77.0.1:1").Addr(), BindPort: 40001},
		}},
	}), health.Options{})
	st := h.probe(rs, 0, time.Second)
	if !st.OK || st.Target != "10.77.0.4:8081" {
		t.Fatalf("probe %+v, want a pass against 10.77.0.4:8081", st)
	}
	if got := srv.lastPeer(); got != "10.77.0.1:40001" {
		t.Errorf("connection came from %s, want 10.77.0.1:40001", got)
	}
}

// TestConnectTimeout: a connect that hangs fails after connect_timeout on
// the checker's clock.
func TestConnectTimeout(t *testing.T) {
	l := newLab(t)
	rs := ap(blackhole + ":80")
	h := start(t, l.lb, oneServer(health.RealServer{
		Addr: rs, Weight: 1,
		Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: timing(6*time.Second, time.Second, 0)}},
	}), health.Options{})
	h.clk.Advance(time.Second)
	h.waitPending(3 * time.Second) // the probe's connect timeout
	if st := h.check(rs, 0); st.Probes != 0 {
		t.Fatalf("probe finished before its timeout: %+v", st)
	}
	h.clk.Advance(3 * time.Second)
	st := h.waitProbes(rs, 0, 1)
	if st.OK || !strings.Contains(st.Error, "timeout connecting to "+blackhole+":80") {
		t.Fatalf("probe %+v, want a connect timeout", st)
	}
	if st.Latency != 3*time.Second {
		t.Errorf("latency %v, want 3s on the checker clock", st.Latency)
	}
	h.waitState(rs, health.StateDown, 0)
	// The next check is a delay loop after the failure.
	h.next(6 * time.Second)
}

// TestChecksDoNotBlockEachOther: a server whose connect hangs does not
// delay the checks of another.
func TestChecksDoNotBlockEachOther(t *testing.T) {
	l := newLab(t)
	newTCPServer(t, l.rs, "10.77.0.2:80")
	tm := timing(2*time.Second, time.Second, 0)
	tm.ConnectTimeout = 30 * time.Second
	good := ap("10.77.0.2:80")
	h := start(t, l.lb, oneServer(
		health.RealServer{Addr: ap(blackhole + ":80"), Weight: 1, Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: tm}}},
		health.RealServer{Addr: good, Weight: 1, Checks: []health.Check{{Spec: health.TCPCheck{}, Timing: tm}}},
	), health.Options{})
	h.probe(good, 0, time.Second)
	for i := 0; i < 5; i++ {
		h.probe(good, 0, 2*time.Second)
	}
	if st := h.check(ap(blackhole+":80"), 0); st.Probes != 0 {
		t.Fatalf("hung check finished: %+v", st)
	}
}
