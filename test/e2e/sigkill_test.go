package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestFailoverOnMasterCrash: lb1's xkeep is SIGKILLed (no priority 0
// advert); lb2 takes the VIP within its Master_Down_Interval and serves
// both real servers (lb1's web server still runs); the client's requests
// go unanswered no longer than that plus a request.
//
// lb1's crash guard (`xkeep guard`, which its daemon started) removes
// the VIP from lb1's eth0 at once, so lb1 stops answering ARP for it
// against lb2, and with IPVS removes lb1's services, so lb1 answers the DR
// packets lb2 sends it instead of bouncing them back (a loop). XDP: the
// killed daemon's program stops intercepting when its lease (3 advert
// intervals) lapses, before lb2 can take over.
func TestFailoverOnMasterCrash(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	p.startBoth()
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	killAt := time.Now()
	p.x1.Kill()
	in2 := p.in2()
	bound := in2.MasterDownInterval(in2.Priority) + tm.slack
	p.r.Eventually(tm.slack, "lb1's crash guard removed vip1 from lb1", func() error {
		if ok, err := p.lb1.HoldsVIP(vip1); err != nil || ok {
			return fmt.Errorf("lb1 holds %s (%v)", vip1, err)
		}
		return nil
	})
	t.Logf("vip1 gone from lb1 within %v of the kill", time.Since(killAt).Round(time.Millisecond))
	took := p.r.Eventually(bound, "lb2 holds vip1", holds(p.lb2, vip1))
	t.Logf("lb2 took over %v after the kill (Master_Down_Interval %v, bound %v)", took.Round(time.Millisecond), in2.MasterDownInterval(in2.Priority), bound)
	p.waitState(p.x2, "VI_1", vip1, stateMaster, tm.slack)
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)
	p.checkNoLoop(l, p.x2, vip1, p.lb1)
	p.checkOutage(l, killAt, bound+requestGap())
	if !slices.Contains(p.lb2.NotifyLog(), "master "+vip1.String()) {
		t.Errorf("lb2's notify_master did not run: %q", p.lb2.NotifyLog())
	}
}
