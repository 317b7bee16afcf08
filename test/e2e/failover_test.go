package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// holds is a condition: n holds vip on eth0 (whatever other nodes hold:
// a SIGKILLed daemon leaves its VIP behind).
func holds(n *rig.Node, vip netip.Addr) func() error {
	return func() error {
		ok, err := n.HoldsVIP(vip)
		if err == nil && !ok {
			err = fmt.Errorf("%s does not hold %s", n.Name, vip)
		}
		return err
	}
}

// checkOutage fails the test when a client address went without an
// answer for longer than limit between from and now, and requires every
// request of the last rounds to succeed.
func (p *pair) checkOutage(l *rig.Load, from time.Time, limit time.Duration) {
	p.t.Helper()
	settled := time.Now()
	p.waitAnswers(l, settled, 3, steadyBound(3))
	outage, who := rig.LongestOutage(l.Results(), from, time.Now())
	p.t.Logf("longest time a client went unanswered: %v (%s), limit %v", outage.Round(time.Millisecond), who, limit)
	if outage > limit {
		p.t.Errorf("client %s went %v without an answer, more than the %v the timers allow", who, outage.Round(time.Millisecond), limit)
	}
	noFailures(p.t, l, settled, time.Now(), "after the failover settled")
}

// requestGap is what a client adds to a takeover before it sees an
// answer: a request lost at the failure times out, and the next one
// starts a round later.
func requestGap() time.Duration { return tm.request + tm.every }

// TestFailoverOnMasterLinkDown: lb1's eth0 goes down; lb1 goes to FAULT,
// lb2 takes the VIP within its Master_Down_Interval and takes lb1's real
// server out within the check's bound. When the link returns, lb1
// preempts.
func TestFailoverOnMasterLinkDown(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	downAt := time.Now()
	if err := p.lb1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	in1, in2 := p.in1(), p.in2()
	bound := in2.MasterDownInterval(in2.Priority) + tm.slack
	took := p.r.Eventually(bound, "lb2 holds vip1", holds(p.lb2, vip1))
	t.Logf("lb2 took over %v after lb1's link went down (bound %v)", took.Round(time.Millisecond), bound)
	p.waitState(p.x1, "VI_1", vip1, stateFault, tm.slack)
	p.waitState(p.x2, "VI_1", vip1, stateMaster, tm.slack)
	// lb1 is a real server too, now unreachable.
	vs := p.vs()
	downBound := vs.DownBound(vs.Reals[0]) + tm.slack
	p.waitBackendUp(p.x2, vip1, p.lb1, false, downBound-time.Since(downAt))
	p.checkOutage(l, downAt, max(bound, downBound)+requestGap())

	upAt := time.Now()
	if err := p.lb1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	bound = in1.MasterDownInterval(in1.Priority) + tm.slack
	took = p.waitVIP(vip1, bound, p.lb1, p.lb2)
	t.Logf("lb1 preempted %v after its link came back (bound %v)", took.Round(time.Millisecond), bound)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.waitState(p.x2, "VI_1", vip1, stateBackup, tm.slack)
	p.checkOutage(l, upAt, bound+requestGap())
}

// TestFailoverOnTrackScriptFailure: the seed's vrrp_script (weight -20)
// checks lb1's web server; stopping it lowers lb1's priority to 80 < 90,
// and lb2 takes the VIP within a script interval plus its
// Master_Down_Interval. lb1 stays up as a backup. When the web server
// returns, lb1 preempts (preemption on return).
func TestFailoverOnTrackScriptFailure(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{track: true})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	failAt := time.Now()
	p.lb1.Web.Stop()
	in1, in2 := p.in1(), p.in2()
	bound := tm.script + in2.MasterDownInterval(in2.Priority) + tm.slack
	took := p.waitVIP(vip1, bound, p.lb2, p.lb1)
	t.Logf("lb2 took over %v after lb1's web server stopped (bound %v)", took.Round(time.Millisecond), bound)
	p.waitState(p.x1, "VI_1", vip1, stateBackup, tm.slack)
	snap, err := p.x1.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 1 || snap.Instances[0].EffectivePriority != in1.Priority-20 {
		t.Errorf("lb1's status: instances %+v, want VI_1 with effective priority %d", snap.Instances, in1.Priority-20)
	}
	vs := p.vs()
	downBound := vs.DownBound(vs.Reals[0]) + tm.slack
	p.waitBackendUp(p.x2, vip1, p.lb1, false, downBound-time.Since(failAt))
	p.checkOutage(l, failAt, max(bound, downBound)+requestGap())

	backAt := time.Now()
	if err := p.lb1.Web.Start(); err != nil {
		t.Fatal(err)
	}
	bound = tm.script + in1.MasterDownInterval(in1.Priority) + tm.slack
	took = p.waitVIP(vip1, bound, p.lb1, p.lb2)
	t.Logf("lb1 preempted %v after its web server returned (bound %v)", took.Round(time.Millisecond), bound)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.checkOutage(l, backAt, bound+requestGap())
}

// TestFailoverOnGracefulStop: SIGTERM makes lb1 send priority 0, remove
// the VIP and exit within 2 s; lb2 takes over after its Skew_Time only.
func TestFailoverOnGracefulStop(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	stopAt := time.Now()
	type stopped struct {
		took time.Duration
		err  error
	}
	done := make(chan stopped, 1)
	go func() {
		took, err := p.x1.Stop(2 * time.Second)
		done <- stopped{took, err}
	}()
	in2 := p.in2()
	bound := in2.SkewTime(in2.Priority) + tm.slack
	took := p.waitVIP(vip1, bound, p.lb2, p.lb1)
	t.Logf("lb2 took over %v after SIGTERM (Skew_Time %v, bound %v)", took.Round(time.Millisecond), in2.SkewTime(in2.Priority), bound)
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	if err := p.x1.ExitErr(); err != nil {
		t.Errorf("lb1's xkeep exited with %v after SIGTERM, want status 0", err)
	}
	t.Logf("lb1's xkeep exited %v after SIGTERM", s.took.Round(time.Millisecond))
	if err := p.lb1.DataplaneGone(dataplane()); err != nil {
		t.Errorf("after a graceful stop the dataplane should be gone: %v", err)
	}
	if v, err := metric(p.x2, "xkeep_priority_zero_received_total", "iname", "VI_1"); err != nil || v < 1 {
		t.Errorf("lb2 counted %v priority-0 adverts (%v), want at least 1", v, err)
	}
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)
	p.checkOutage(l, stopAt, bound+requestGap())
}

// TestPreemptionOnReturn: after lb1's xkeep was killed and lb2 took
// over, a new xkeep on lb1 (same pin directory: it finds what the killed
// one left) takes the VIP back within its Master_Down_Interval, and lb2
// returns to BACKUP.
func TestPreemptionOnReturn(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	p.x1.Kill()
	in1, in2 := p.in1(), p.in2()
	p.r.Eventually(in2.MasterDownInterval(in2.Priority)+tm.slack, "lb2 holds vip1", holds(p.lb2, vip1))
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)

	restartAt := time.Now()
	p.start1()
	bound := in1.MasterDownInterval(in1.Priority) + tm.slack
	took := p.waitVIP(vip1, bound, p.lb1, p.lb2)
	t.Logf("the restarted lb1 preempted %v after its start (bound %v)", took.Round(time.Millisecond), bound)
	p.waitState(p.x1, "VI_1", vip1, stateMaster, tm.slack)
	p.waitState(p.x2, "VI_1", vip1, stateBackup, tm.slack)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.checkOutage(l, restartAt, bound+requestGap())
}

// TestNopreemptHonoured: with nopreempt (both in state BACKUP), lb1 of
// priority 100 joining while lb2 (90) is master stays backup for as long
// as lb2 lives, and takes over when lb2 dies.
func TestNopreemptHonoured(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{nopreempt: true})
	in1, in2 := p.in1(), p.in2()
	p.start2()
	p.waitVIP(vip1, startBound(in2), p.lb2, p.lb1)
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)

	p.start1()
	p.waitState(p.x1, "VI_1", vip1, stateBackup, tm.slack)
	// Without nopreempt lb1 would take over within its
	// Master_Down_Interval; watch for three of them.
	window := 3 * in1.MasterDownInterval(in1.Priority)
	p.holdsNot(p.lb1, vip1, window)
	p.waitState(p.x2, "VI_1", vip1, stateMaster, tm.slack)

	p.x2.Kill()
	bound := in1.MasterDownInterval(in1.Priority) + tm.slack
	took := p.r.Eventually(bound, "lb1 holds vip1", holds(p.lb1, vip1))
	t.Logf("lb1 took over %v after lb2 was killed (bound %v)", took.Round(time.Millisecond), bound)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
}
