package vrrpsuite

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVRRPThreadSettings runs xkeep with keepalived's vrrp child settings
// (vrrp_rt_priority, vrrp_cpu_affinity, vrrp_no_swap): exactly one thread
// of the daemon, its VRRP loop, runs SCHED_RR at that priority on that
// CPU while every other thread keeps normal scheduling and every CPU;
// the process is locked in memory; and the instance still wins, and
// hands over when SIGKILLed.
func TestVRRPThreadSettings(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.51.0.1")
	b := l.host("b", "10.51.0.2")
	vip := netip.MustParseAddr("10.51.0.100")
	const interval = 100 * time.Millisecond
	confA := strings.Replace(xkeepConf(150, 3, "0.1", vip.String()), "router_id test",
		"router_id test\n    vrrp_rt_priority 20\n    vrrp_cpu_affinity 0\n    vrrp_no_swap", 1)
	xa := a.startXkeep(confA)
	b.startXkeep(xkeepConf(100, 3, "0.1", vip.String()))
	waitVIP(t, 3*interval+skew(150, interval)+2*time.Second, vip, a, b)

	pid := xa.cmd.Process.Pid
	threads, err := threadScheduling(pid)
	if err != nil {
		t.Fatal(err)
	}
	var rt []threadSched
	for _, th := range threads {
		switch {
		case th.policy == schedRR:
			rt = append(rt, th)
		case th.policy != schedNormal || th.rtPriority != 0:
			t.Errorf("thread %d: policy %d rt_priority %d, want normal scheduling", th.tid, th.policy, th.rtPriority)
		case th.cpus == "0":
			t.Errorf("thread %d: normal thread confined to CPU 0", th.tid)
		}
	}
	if len(rt) != 1 {
		t.Fatalf("%d SCHED_RR threads among %d, want the VRRP loop's only: %+v", len(rt), len(threads), threads)
	}
	t.Logf("%d threads; the VRRP loop is thread %d", len(threads), rt[0].tid)
	if rt[0].rtPriority != 20 || rt[0].cpus != "0" {
		t.Errorf("VRRP thread %d: rt_priority %d on CPUs %q, want 20 on \"0\"", rt[0].tid, rt[0].rtPriority, rt[0].cpus)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if locked := statusField(string(status), "VmLck:"); locked == "" || locked == "0 kB" {
		t.Errorf("VmLck %q with vrrp_no_swap, want locked pages", locked)
	}

	xa.kill()
	limit := 3*interval + skew(100, interval) + 500*time.Millisecond
	took := waitVIP(t, limit, vip, b)
	t.Logf("b took over %v after the realtime master was SIGKILLed (limit %v)", took, limit)
}

const (
	schedNormal = 0
	schedRR     = 2
)

type threadSched struct {
	tid                int
	policy, rtPriority int
	cpus               string // Cpus_allowed_list
}

// threadScheduling reads every thread's policy and realtime priority
// (/proc/PID/task/TID/stat fields 41 and 40) and allowed CPUs.
func threadScheduling(pid int) ([]threadSched, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("threads of %d: %v", pid, err)
	}
	var out []threadSched
	for _, dir := range dirs {
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // the thread ended
		}
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces: field 3
		// is the first.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 39 {
			return nil, fmt.Errorf("%s/stat: %d fields", dir, len(fields)+2)
		}
		th := threadSched{cpus: statusField(string(status), "Cpus_allowed_list:")}
		th.tid, _ = strconv.Atoi(filepath.Base(dir))
		th.rtPriority, _ = strconv.Atoi(fields[40-3])
		th.policy, _ = strconv.Atoi(fields[41-3])
		out = append(out, th)
	}
	return out, nil
}

func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
