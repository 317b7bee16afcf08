package e2e

import (
	"testing"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// keepalivedPair is the seed's pair with one node on keepalived (VRRP
// only, -P: it holds the VIP and its own web server answers) and the
// other on xkeep, with the seed's VRRP settings: VRRPv2, PASS
// authentication, advert_int 1.
func keepalivedPair(t *testing.T) *pair {
	t.Helper()
	if inVM() {
		t.Skip("skipped: keepalived is not in the VM (it runs these on the host)")
	}
	p := newPair(t, pairOptions{})
	for _, c := range []*rig.Conf{&p.conf1, &p.conf2} {
		in := &c.Instances[0]
		in.Version, in.AdvertInt, in.AuthPass = 2, time.Second, "1"
	}
	return p
}

// keepalivedConf is c without what keepalived's VRRP process should not
// see: virtual servers (-P runs no checker) and the rig's notify scripts.
func keepalivedConf(c rig.Conf) rig.Conf {
	c.Services = nil
	c.Instances = append([]rig.Instance(nil), c.Instances...)
	for i := range c.Instances {
		c.Instances[i].NotifyMaster, c.Instances[i].NotifyBackup, c.Instances[i].NotifyFault = "", "", ""
	}
	return c
}

// TestKeepalivedBackupOfXkeep: xkeep on lb1 is master (priority 100) and
// keepalived on lb2 is backup (90). keepalived takes over when xkeep is
// killed, yields when xkeep returns, and takes over after its Skew_Time
// when xkeep stops gracefully (priority 0).
func TestKeepalivedBackupOfXkeep(t *testing.T) {
	t.Parallel()
	p := keepalivedPair(t)
	in1, in2 := p.in1(), p.in2()
	k := p.lb2.StartKeepalived(keepalivedConf(p.conf2))
	p.ready(k)
	p.start1()
	p.waitVIP(vip1, startBound(in1), p.lb1, p.lb2)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	// keepalived stays backup.
	p.holdsNot(p.lb2, vip1, in2.MasterDownInterval(in2.Priority)+in2.AdvertInt)
	l := p.load(vip1)
	p.waitAnswers(l, time.Now(), 3, steadyBound(3))

	killAt := time.Now()
	p.x1.Kill()
	bound := in2.MasterDownInterval(in2.Priority) + tm.slack
	took := p.r.Eventually(bound, "keepalived holds vip1", holds(p.lb2, vip1))
	t.Logf("keepalived took over %v after xkeep was killed (bound %v)", took.Round(time.Millisecond), bound)
	// keepalived balances nothing (-P): its own web server answers.
	p.checkOutage(l, killAt, bound+requestGap())

	restartAt := time.Now()
	p.start1()
	bound = in1.MasterDownInterval(in1.Priority) + tm.slack
	took = p.waitVIP(vip1, bound, p.lb1, p.lb2)
	t.Logf("xkeep preempted keepalived %v after its restart (bound %v)", took.Round(time.Millisecond), bound)
	p.waitServing(p.x1, vip1, p.lb1, p.lb2)
	p.checkOutage(l, restartAt, bound+requestGap())

	stopAt := time.Now()
	if _, err := p.x1.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The priority-0 advert goes out at once; keepalived waits Skew_Time.
	bound = max(in2.SkewTime(in2.Priority)+tm.slack, time.Since(stopAt)+tm.slack)
	took = p.waitVIP(vip1, bound-time.Since(stopAt), p.lb2, p.lb1)
	t.Logf("keepalived took over %v after xkeep's SIGTERM (Skew_Time %v)", time.Since(stopAt).Round(time.Millisecond), in2.SkewTime(in2.Priority))
	p.checkOutage(l, stopAt, bound+requestGap())
	if !k.Running() {
		t.Errorf("keepalived exited:\n%s", k.Log())
	}
}

// TestXkeepBackupOfKeepalived: keepalived on lb1 is master (100) and
// xkeep on lb2 backup (90): xkeep stays backup and leaves DR packets to
// its own web server; when keepalived's VRRP process is killed, xkeep
// takes the VIP within its Master_Down_Interval and balances over both
// real servers.
func TestXkeepBackupOfKeepalived(t *testing.T) {
	t.Parallel()
	p := keepalivedPair(t)
	in1, in2 := p.in1(), p.in2()
	k := p.lb1.StartKeepalived(keepalivedConf(p.conf1))
	p.ready(k)
	p.waitVIP(vip1, startBound(in1), p.lb1, p.lb2)
	p.start2()
	p.waitState(p.x2, "VI_1", vip1, stateBackup, startBound(in2))
	p.holdsNot(p.lb2, vip1, in2.MasterDownInterval(in2.Priority)+in2.AdvertInt)
	l := p.load(vip1)
	start := time.Now()
	p.waitAnswers(l, start, 3, steadyBound(3))
	for _, r := range l.Since(start) {
		if r.OK() && r.Backend != "lb1" {
			t.Fatalf("keepalived's node holds the VIP and balances nothing, but %s answered", r.Backend)
		}
	}

	killAt := time.Now()
	k.Kill()
	bound := in2.MasterDownInterval(in2.Priority) + tm.slack
	took := p.r.Eventually(bound, "xkeep holds vip1", holds(p.lb2, vip1))
	t.Logf("xkeep took over %v after keepalived was killed (bound %v)", took.Round(time.Millisecond), bound)
	p.waitState(p.x2, "VI_1", vip1, stateMaster, tm.slack)
	p.waitServing(p.x2, vip1, p.lb1, p.lb2)
	p.checkOutage(l, killAt, bound+requestGap())
	settled := time.Now()
	p.waitAnswers(l, settled, 4, steadyBound(4))
	c := rig.Count(l.Since(settled))
	if c.Answers["lb1"] == 0 || c.Answers["lb2"] == 0 {
		t.Errorf("after the takeover xkeep should balance over both real servers: %v", c.Answers)
	}
}
