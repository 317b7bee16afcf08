package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health/healthtest"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/vrrp"
)

// These tests need no root: the guard's cleaner records what it would
// remove. test/daemon SIGKILLs real daemons and watches real addresses.

// recordingCleaner records removals as text, in order.
type recordingCleaner struct {
	mu   sync.Mutex
	done []string
	fail map[string]bool // removals that fail
}

func (c *recordingCleaner) record(what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = append(c.done, what)
	if c.fail[what] {
		return errors.New("injected failure")
	}
	return nil
}

func (c *recordingCleaner) RemoveVIP(v vrrp.VIP) error {
	return c.record("vip " + v.Prefix.String() + " " + v.Dev)
}

func (c *recordingCleaner) RemoveServices(keys []dataplane.ServiceKey) error {
	var errs []error
	for _, k := range keys {
		if err := c.record("ipvs " + k.String()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *recordingCleaner) removed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.done)
}

func report(t *testing.T, w io.Writer, m guardMessage) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

var (
	guardVIP1  = guardVIP{Prefix: netip.MustParsePrefix("10.0.0.100/32"), Dev: "eth0"}
	guardVIP2  = guardVIP{Prefix: netip.MustParsePrefix("10.0.0.101/24"), Dev: "eth1", Label: "eth1:vip"}
	guardSvc80 = guardService{Addr: netip.MustParseAddr("10.0.0.100"), Port: 80, Protocol: uint8(dataplane.TCP)}
	guardFWM   = guardService{Addr: netip.IPv4Unspecified(), FWMark: 7}
)

// runGuard runs RunGuard on a pipe; the returned channel yields its
// result.
func runGuard(t *testing.T, c GuardCleaner) (*os.File, <-chan error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	done := make(chan error, 1)
	go func() {
		done <- RunGuard(r, c, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	return w, done
}

func waitGuard(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("RunGuard did not return within 5 s of the end of its input")
		return nil
	}
}

// TestGuardGoodbyeTouchesNothing: a daemon that stops cleanly says
// goodbye; the guard returns having removed nothing, whatever the last
// report held.
func TestGuardGoodbyeTouchesNothing(t *testing.T) {
	c := &recordingCleaner{}
	w, done := runGuard(t, c)
	report(t, w, guardMessage{guardState: guardState{VIPs: []guardVIP{guardVIP1}, Services: []guardService{guardSvc80}}})
	report(t, w, guardMessage{Goodbye: true})
	if err := waitGuard(t, done); err != nil {
		t.Fatalf("RunGuard after goodbye: %v", err)
	}
	w.Close()
	if got := c.removed(); len(got) != 0 {
		t.Errorf("removed %q after goodbye", got)
	}
}

// TestGuardEndOfFileRemovesTheLastState: the pipe ends without goodbye
// (the daemon died): the guard removes what the last report named, not
// what earlier ones did. A report cut short by the death, and a garbled
// one, are ignored.
func TestGuardEndOfFileRemovesTheLastState(t *testing.T) {
	c := &recordingCleaner{}
	w, done := runGuard(t, c)
	report(t, w, guardMessage{guardState: guardState{VIPs: []guardVIP{guardVIP1, guardVIP2}, Services: []guardService{guardSvc80}}})
	report(t, w, guardMessage{guardState: guardState{VIPs: []guardVIP{guardVIP1}, Services: []guardService{guardSvc80, guardFWM}}})
	io.WriteString(w, "{not json}\n")
	io.WriteString(w, `{"vips":[{"prefix":"10.9.9.9/32","dev":"eth0"}],"ipvs_serv`) // killed mid-write
	select {
	case err := <-done:
		t.Fatalf("RunGuard returned while the daemon's end is open: %v", err)
	default:
	}
	if got := c.removed(); len(got) != 0 {
		t.Fatalf("removed %q while the daemon's end is open", got)
	}
	w.Close()
	if err := waitGuard(t, done); err != nil {
		t.Fatal(err)
	}
	want := []string{"vip 10.0.0.100/32 eth0", "ipvs TCP 10.0.0.100:80", "ipvs fwmark 7"}
	if got := c.removed(); !slices.Equal(got, want) {
		t.Errorf("removed %q, want %q", got, want)
	}
}

// TestGuardEndOfFileWithNothingHeld: a daemon that held nothing (a
// backup, XDP) dies: nothing to remove.
func TestGuardEndOfFileWithNothingHeld(t *testing.T) {
	for _, reports := range []int{0, 1} {
		c := &recordingCleaner{}
		w, done := runGuard(t, c)
		if reports > 0 {
			report(t, w, guardMessage{})
		}
		w.Close()
		if err := waitGuard(t, done); err != nil {
			t.Fatal(err)
		}
		if got := c.removed(); len(got) != 0 {
			t.Errorf("%d reports: removed %q", reports, got)
		}
	}
}

// TestGuardRemovalFailuresDoNotStopTheOthers: a removal that fails is
// reported and the rest still happen.
func TestGuardRemovalFailuresDoNotStopTheOthers(t *testing.T) {
	c := &recordingCleaner{fail: map[string]bool{"vip 10.0.0.100/32 eth0": true}}
	w, done := runGuard(t, c)
	report(t, w, guardMessage{guardState: guardState{VIPs: []guardVIP{guardVIP1, guardVIP2}, Services: []guardService{guardSvc80}}})
	w.Close()
	err := waitGuard(t, done)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("RunGuard = %v, want the failure", err)
	}
	want := []string{"vip 10.0.0.100/32 eth0", "vip 10.0.0.101/24 eth1", "ipvs TCP 10.0.0.100:80"}
	if got := c.removed(); !slices.Equal(got, want) {
		t.Errorf("removed %q, want %q", got, want)
	}
}

// guardHelperEnv makes the test binary act as `xkeep guard` (TestMain),
// with a cleaner that prints what it would remove to stdout.
const guardHelperEnv = "XKEEP_TEST_GUARD_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(guardHelperEnv) != "" {
		os.Exit(guardHelper())
	}
	os.Exit(m.Run())
}

func guardHelper() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if target, err := os.Readlink("/proc/self/fd/3"); err == nil {
		log.Debug("fd 3 is " + target) // the lock
	}
	c := &recordingCleaner{}
	err := RunGuard(os.Stdin, c, log)
	for _, r := range c.removed() {
		fmt.Println(r)
	}
	if err != nil {
		return 1
	}
	return 0
}

// helperGuard is a guard process (the test binary as guard) whose output
// and log the test reads.
type helperGuard struct {
	mu       sync.Mutex
	out, log strings.Builder
	started  int
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (h *helperGuard) command() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Under -race the child would sleep 1 s at exit (atexit_sleep_ms).
	cmd.Env = append(os.Environ(), guardHelperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Stdout = lockedWriter{&h.mu, &h.out}
	cmd.Stderr = lockedWriter{&h.mu, &h.log}
	h.mu.Lock()
	h.started++
	h.mu.Unlock()
	return cmd
}

func (h *helperGuard) output() (out, log string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String(), h.log.String()
}

// waitLog waits until the guards' log has n lines containing s.
func (h *helperGuard) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	testnet.Eventually(t, 10*time.Second, fmt.Sprintf("%d guard log lines with %q", n, s), func() error {
		_, log := h.output()
		if got := strings.Count(log, s); got < n {
			return fmt.Errorf("%d in:\n%s", got, log)
		}
		return nil
	})
}

func newLink(t *testing.T, h *helperGuard, hd *held, lockPath string, clock *healthtest.Clock) *guardLink {
	t.Helper()
	l := startGuard(context.Background(), GuardOptions{Command: h.command, LockPath: lockPath}, hd,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), clock)
	if l == nil {
		t.Fatal("no guard link")
	}
	return l
}

func (l *guardLink) current() *guardProc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proc
}

// TestGuardLinkKeepsTheGuardToldAndSaysGoodbye: the guard hears every
// change of what the daemon holds, and at stop it is told goodbye and
// exits having removed nothing.
func TestGuardLinkKeepsTheGuardToldAndSaysGoodbye(t *testing.T) {
	h := &helperGuard{}
	hd := newHeld()
	l := newLink(t, h, hd, "", healthtest.NewClock(time.Unix(0, 0)))
	h.waitLog(t, "vips=0 ipvs_services=0", 1)
	hd.addVIP(vrrp.VIP{Prefix: guardVIP1.Prefix, Dev: "eth0"})
	h.waitLog(t, "vips=1 ipvs_services=0", 1)
	hd.setServices([]dataplane.ServiceKey{guardSvc80.key()})
	h.waitLog(t, "vips=1 ipvs_services=1", 1)
	p := l.current()
	l.close()
	if p.cmd.ProcessState == nil || !p.cmd.ProcessState.Success() {
		_, log := h.output()
		t.Errorf("guard after goodbye: %v\n%s", p.cmd.ProcessState, log)
	}
	out, log := h.output()
	if out != "" || !strings.Contains(log, "said goodbye") {
		t.Errorf("after goodbye the guard removed %q; log:\n%s", out, log)
	}
}

// TestGuardLinkDaemonDeath: when the daemon's end of the pipe closes
// without goodbye (what its death does), the guard removes the VIPs and
// IPVS services of the last report; sync returns once the report is in
// the pipe, so a death right after it loses nothing. The link then starts a new guard
// (after its backoff, on the daemon's clock) and tells it the state.
func TestGuardLinkDaemonDeath(t *testing.T) {
	h := &helperGuard{}
	hd := newHeld()
	clock := healthtest.NewClock(time.Unix(0, 0))
	l := newLink(t, h, hd, "", clock)
	hd.addVIP(vrrp.VIP{Prefix: guardVIP1.Prefix, Dev: "eth0"})
	hd.addVIP(vrrp.VIP{Prefix: guardVIP2.Prefix, Dev: "eth1"})
	hd.removeVIP(vrrp.VIP{Prefix: guardVIP2.Prefix, Dev: "eth1"})
	l.sync(hd.setServices([]dataplane.ServiceKey{guardSvc80.key()}))
	first := l.current()
	// The daemon dies: the kernel closes its end. Holding held's lock
	// keeps the link (which would otherwise notice the closed pipe and
	// kill the guard) from acting meanwhile, as a dead daemon would.
	hd.mu.Lock()
	first.w.Close()
	testnet.Eventually(t, 10*time.Second, "the guard removed what the daemon held", func() error {
		if out, _ := h.output(); out != "vip 10.0.0.100/32 eth0\nipvs TCP 10.0.0.100:80\n" {
			return fmt.Errorf("removed %q", out)
		}
		return nil
	})
	hd.mu.Unlock()
	waitPending(t, clock, guardMinRestart)
	clock.Advance(guardMinRestart)
	testnet.Eventually(t, 10*time.Second, "a second guard, told the state", func() error {
		if p := l.current(); p == nil || p == first {
			return errors.New("no new guard")
		}
		return nil
	})
	h.waitLog(t, "vips=1 ipvs_services=1", 2)
	l.close()
	if out, _ := h.output(); strings.Count(out, "vip ") != 1 {
		t.Errorf("the second guard removed something after goodbye: %q", out)
	}
}

// TestGuardLinkRestartsAKilledGuard: a guard killed while the daemon
// runs touches nothing and is replaced.
func TestGuardLinkRestartsAKilledGuard(t *testing.T) {
	h := &helperGuard{}
	hd := newHeld()
	clock := healthtest.NewClock(time.Unix(0, 0))
	l := newLink(t, h, hd, "", clock)
	hd.addVIP(vrrp.VIP{Prefix: guardVIP1.Prefix, Dev: "eth0"})
	h.waitLog(t, "vips=1", 1)
	first := l.current()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPending(t, clock, guardMinRestart)
	clock.Advance(guardMinRestart)
	h.waitLog(t, "vips=1", 2)
	l.close()
	if out, _ := h.output(); out != "" {
		t.Errorf("removed %q", out)
	}
}

// TestGuardLockMakesTheNextDaemonWait: a daemon started while a dead
// one's guard still runs waits for that guard to exit before it starts
// its own (and so before it adds anything). The lock outlives the dead
// daemon's own descriptor: the guard holds it.
func TestGuardLockMakesTheNextDaemonWait(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "xkeep.guard.lock")
	h1, h2 := &helperGuard{}, &helperGuard{}
	hd := newHeld()
	l1 := newLink(t, h1, hd, lock, healthtest.NewClock(time.Unix(0, 0)))
	h1.waitLog(t, "fd 3 is "+lock, 1)
	dead := l1.current()
	l1.lock.Close() // the first daemon dies: its descriptor goes

	var logs strings.Builder
	var logMu sync.Mutex
	started := make(chan *guardLink, 1)
	go func() {
		started <- startGuard(context.Background(), GuardOptions{Command: h2.command, LockPath: lock}, newHeld(),
			slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil)), healthtest.NewClock(time.Unix(0, 0)))
	}()
	testnet.Eventually(t, 10*time.Second, "the second daemon waits for the first one's guard", func() error {
		logMu.Lock()
		defer logMu.Unlock()
		if !strings.Contains(logs.String(), "waiting for the previous daemon's crash guard") {
			return errors.New(logs.String())
		}
		return nil
	})
	select {
	case <-started:
		t.Fatal("the second daemon's guard started while the first one's still runs")
	default:
	}
	dead.w.Close() // the first guard cleans up and exits
	var l2 *guardLink
	select {
	case l2 = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the second daemon still waits after the first guard exited")
	}
	if l2 == nil {
		t.Fatal("no guard link")
	}
	h2.waitLog(t, "fd 3 is "+lock, 1)
	l2.close()
	l1.close()
}

// ownerDataplane is a recording dataplane that, as IPVS does, owns the
// services it is given. It notes every Apply made before the daemon had
// recorded the services for its guard.
type ownerDataplane struct {
	*recordingDataplane
	held *held // the daemon's, set once New returned

	mu     sync.Mutex
	owned  []dataplane.ServiceKey
	unsaid []string
}

func (o *ownerDataplane) Apply(ds dataplane.DesiredState) error {
	st, _ := o.held.snapshot()
	o.mu.Lock()
	for _, s := range ds.Services {
		if !slices.ContainsFunc(st.Services, func(g guardService) bool { return g.key() == s.Key }) {
			o.unsaid = append(o.unsaid, s.Key.String())
		}
		if !slices.Contains(o.owned, s.Key) {
			o.owned = append(o.owned, s.Key)
		}
	}
	o.mu.Unlock()
	return o.recordingDataplane.Apply(ds)
}

func (o *ownerDataplane) Owned() []dataplane.ServiceKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.owned)
}

func (o *ownerDataplane) Close() error {
	o.mu.Lock()
	o.owned = nil
	o.mu.Unlock()
	return o.recordingDataplane.Close()
}

// TestDaemonKeepsItsGuardTold: the daemon's guard hears of the VIP the
// VRRP engine adds on MASTER (with its interface) and of the services an
// IPVS-like dataplane owns, each service before the Apply that creates
// it; at stop, after VRRP removed the VIP and the dataplane closed, the
// guard is told goodbye and removes nothing.
func TestDaemonKeepsItsGuardTold(t *testing.T) {
	h := &helperGuard{}
	dp := &ownerDataplane{recordingDataplane: newRecorder()}
	r := newFakeRig(t, fmt.Sprintf(fakeInstance, "MASTER", 255)+fakeServer("10.0.0.11"), false, func(o *Options) {
		o.Guard = GuardOptions{Command: h.command}
		o.Dataplane.Open = func(*slog.Logger) (dataplane.Dataplane, bool, error) { return dp, false, nil }
	})
	dp.held = r.d.held
	r.run()
	var ds dataplane.DesiredState
	for !slices.Equal(servedAddrs(ds), []string{"10.0.0.100@eth0"}) {
		ds = dp.next(t)
	}
	h.waitLog(t, "vips=1 ipvs_services=1", 1)
	st, _ := r.d.held.snapshot()
	if want := []guardVIP{{Prefix: netip.MustParsePrefix("10.0.0.100/32"), Dev: "eth0"}}; !slices.Equal(st.VIPs, want) {
		t.Errorf("held VIPs %+v, want %+v", st.VIPs, want)
	}
	dp.mu.Lock()
	unsaid := slices.Clone(dp.unsaid)
	dp.mu.Unlock()
	if len(unsaid) > 0 {
		t.Errorf("applied before the guard was told: %v", unsaid)
	}

	r.stop()
	if st, _ := r.d.held.snapshot(); len(st.VIPs) != 0 || len(st.Services) != 0 {
		t.Errorf("held after stop: %+v", st)
	}
	out, log := h.output()
	if out != "" || !strings.Contains(log, "said goodbye") || !strings.Contains(log, "vips=0 ipvs_services=0") {
		t.Errorf("guard removed %q; its log:\n%s", out, log)
	}
}
