package daemontest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// The crash guard: `xkeep run` starts `xkeep guard` beside itself; when
// the daemon dies without stopping, the guard removes the VIPs it added
// (and with IPVS its services); otherwise it touches nothing.

// guardBound is how long the guard may take, from the daemon's death, to
// have removed what the daemon held: it wakes on the pipe's end of file
// and makes a few netlink requests.
const guardBound = time.Second

// guardPID returns the pid of the daemon's crash guard: its child running
// `xkeep guard`.
func (x *xkeep) guardPID() int {
	x.r.t.Helper()
	var pid int
	testnet.Eventually(x.r.t, 5*time.Second, "the daemon's crash guard runs", func() error {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", x.cmd.Process.Pid))
		if err != nil {
			return err
		}
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, field := range strings.Fields(string(b)) {
				child, _ := strconv.Atoi(field)
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
				if args := strings.Split(string(cmdline), "\x00"); len(args) > 1 && args[1] == "guard" {
					pid = child
					return nil
				}
			}
		}
		return fmt.Errorf("no child of %d runs `xkeep guard`", x.cmd.Process.Pid)
	})
	return pid
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int, bound time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	testnet.Eventually(t, bound, what+" exited", func() error {
		if alive(pid) {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	})
	return time.Since(start)
}

// TestSIGKILLGuardRemovesTheVIP: the master is SIGKILLed; its crash
// guard removes the VIP from eth0 within guardBound, says so in the
// daemon's log, and exits. With IPVS it removes the daemon's services;
// the XDP program it leaves alone (attached and pinned, for the next
// start to adopt; its lease stops the interception).
func TestSIGKILLGuardRemovesTheVIP(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)
	guard := x.guardPID()
	if !r.hasVIP() || !r.forwarding() {
		t.Fatalf("before the kill: VIP %v, forwarding %v", r.hasVIP(), r.forwarding())
	}

	killed := time.Now()
	if err := x.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, guardBound, "the VIP gone from eth0", func() error {
		if r.hasVIP() {
			return fmt.Errorf("%s still on eth0", vip)
		}
		return nil
	})
	took := time.Since(killed)
	waitGone(t, guard, guardBound, "the crash guard")
	t.Logf("VIP removed %v after the SIGKILL; the guard exited %v after it", took.Round(time.Microsecond), time.Since(killed).Round(time.Microsecond))
	<-x.proc.Done()

	out := x.log.String()
	if !strings.Contains(out, "part=guard") || !strings.Contains(out, `msg="removed virtual address" part=guard`) {
		t.Errorf("the daemon's log does not show the guard's removal:\n%s", out)
	}
	switch dataplaneKind {
	case "ipvs":
		if svcs := r.ipvsServices(); len(svcs) != 0 {
			t.Errorf("IPVS services left after the kill: %v", svcs)
		}
		if !strings.Contains(out, "ipvs remove service") {
			t.Errorf("the guard's log does not name the IPVS services it removed")
		}
	default:
		if !r.xdpAttached() || len(r.pinned()) == 0 {
			t.Errorf("the guard touched the XDP dataplane: attached %v, pins %v", r.xdpAttached(), r.pinned())
		}
	}
}

// TestSIGTERMGuardTouchesNothing: a graceful stop removes the VIP itself
// (once) and says goodbye: the guard exits with the daemon, having
// removed nothing.
func TestSIGTERMGuardTouchesNothing(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)
	guard := x.guardPID()
	events := r.watchAddrs()
	x.signal(syscall.SIGTERM, 2*time.Second)
	waitGone(t, guard, guardBound, "the crash guard")
	if r.hasVIP() || r.forwarding() {
		t.Errorf("after the stop: VIP %v, forwarding %v", r.hasVIP(), r.forwarding())
	}
	// The daemon's own removal, and no other.
	testnet.Eventually(t, time.Second, "the daemon's removal of the VIP seen", func() error {
		if !slices.Contains(events.list(), "-"+vip.String()) {
			return fmt.Errorf("address events %v", events.list())
		}
		return nil
	})
	out := x.log.String()
	if !strings.Contains(out, "said goodbye") {
		t.Errorf("the guard did not hear goodbye:\n%s", out)
	}
	if strings.Contains(out, "without saying goodbye") || strings.Contains(out, `msg="removed virtual address" part=guard`) {
		t.Errorf("the guard acted on a graceful stop:\n%s", out)
	}
	if n := slices.Index(events.list(), "-"+vip.String()); n >= 0 && slices.Contains(events.list()[n+1:], "-"+vip.String()) {
		t.Errorf("the VIP was removed twice: %v", events.list())
	}
}

// TestGuardNeverActsWhileTheDaemonLives: a daemon that is stopped for a
// while (SIGSTOP: a debugger, memory pressure) is alive, and so is one
// that reloads: the guard removes nothing. A guard killed while the
// daemon runs touches nothing either; the daemon starts another, which
// removes the VIP when the daemon is then killed.
func TestGuardNeverActsWhileTheDaemonLives(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)
	first := x.guardPID()
	events := r.watchAddrs()
	untouched := func(when string) {
		t.Helper()
		if !r.hasVIP() || !r.forwarding() || slices.Contains(events.list(), "-"+vip.String()) {
			t.Fatalf("%s: VIP %v, forwarding %v, address events %v", when, r.hasVIP(), r.forwarding(), events.list())
		}
	}

	// Stopped for three advert intervals (the XDP lease), watched all along.
	if err := x.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		untouched("the daemon stopped")
		if !alive(first) {
			t.Fatal("the guard exited while the daemon was stopped")
		}
		time.Sleep(20 * time.Millisecond) // watching that nothing happens: no condition to wait on
	}
	if err := x.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := x.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "the reload done", func() error {
		snap, err := x.status()
		if err != nil {
			return err
		}
		if snap.Config.Reloads != 1 {
			return fmt.Errorf("%d reloads", snap.Config.Reloads)
		}
		return nil
	})
	x.waitServing(10 * time.Second)
	untouched("after a reload")

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first, guardBound, "the killed guard")
	var second int
	testnet.Eventually(t, 5*time.Second, "the daemon started another guard", func() error {
		if second = x.guardPID(); second == first {
			return fmt.Errorf("still guard %d", first)
		}
		return nil
	})
	untouched("after the guard was killed")
	if !strings.Contains(x.log.String(), "crash guard exited while the daemon runs") {
		t.Error("the daemon did not say its guard died")
	}

	if err := x.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, guardBound, "the VIP gone from eth0", func() error {
		if r.hasVIP() {
			return fmt.Errorf("%s still on eth0", vip)
		}
		return nil
	})
	waitGone(t, second, guardBound, "the second guard")
}
