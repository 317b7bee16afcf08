package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health/healthtest"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/vrrptest"
)

// These tests run the daemon without root: VRRP on vrrptest's fake
// segment and clock, and a recording dataplane, because neither raw VRRP
// sockets nor an XDP program can run unprivileged. test/daemon runs the
// same daemon for real, as root, in network namespaces.

// recordingDataplane records every desired state it is given. It can be
// told to fail applies.
type recordingDataplane struct {
	mu      sync.Mutex
	states  []dataplane.DesiredState
	fail    int // applies left to fail
	closed  bool
	applied chan dataplane.DesiredState
}

func newRecorder() *recordingDataplane {
	return &recordingDataplane{applied: make(chan dataplane.DesiredState, 100)}
}

func (r *recordingDataplane) Apply(ds dataplane.DesiredState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("apply after close")
	}
	r.states = append(r.states, ds)
	r.applied <- ds
	if r.fail > 0 {
		r.fail--
		return errors.New("injected failure")
	}
	return nil
}

func (r *recordingDataplane) Stats() (dataplane.Stats, error) { return dataplane.Stats{}, nil }

func (r *recordingDataplane) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordingDataplane) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// next waits for the next applied state.
func (r *recordingDataplane) next(t *testing.T) dataplane.DesiredState {
	t.Helper()
	select {
	case ds := <-r.applied:
		return ds
	case <-time.After(5 * time.Second):
		t.Fatal("no apply within 5 s")
		return dataplane.DesiredState{}
	}
}

// noApply checks that nothing is applied for a little while.
func (r *recordingDataplane) noApply(t *testing.T) {
	t.Helper()
	select {
	case ds := <-r.applied:
		t.Fatalf("unexpected apply %+v", ds)
	case <-time.After(50 * time.Millisecond):
	}
}

// noAddresses is an AddressBook for a node with no unmanaged VIPs.
type noAddresses struct{}

func (noAddresses) Local([]netip.Addr) (map[netip.Addr]string, error) { return nil, nil }
func (noAddresses) Watch(ctx context.Context, _ func()) error {
	<-ctx.Done()
	return nil
}

type fakeRig struct {
	t      *testing.T
	path   string
	host   *vrrptest.Host
	vclock *vrrptest.Clock
	clock  *healthtest.Clock
	dp     *recordingDataplane
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
}

const fakeInstance = `vrrp_instance VI_1 {
    state %s
    interface eth0
    virtual_router_id 1
    priority %d
    advert_int 1
    virtual_ipaddress {
        10.0.0.100
    }
}
`

func fakeServer(realServers ...string) string {
	s := "virtual_server 10.0.0.100 80 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n"
	for _, rs := range realServers {
		s += "    real_server " + rs + " 80 {\n    }\n"
	}
	return s + "}\n"
}

func newFakeRig(t *testing.T, conf string, resumed bool, adjust ...func(*Options)) *fakeRig {
	t.Helper()
	r := &fakeRig{
		t:      t,
		path:   filepath.Join(t.TempDir(), "keepalived.conf"),
		host:   (&vrrptest.Segment{}).NewHost(netip.MustParseAddr("10.0.0.1")),
		vclock: vrrptest.NewClock(time.Unix(0, 0)),
		clock:  healthtest.NewClock(time.Unix(0, 0)),
		dp:     newRecorder(),
	}
	r.write(conf)
	opts := Options{
		ConfigPath: r.path,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		VRRPDeps:   func(func() vrrp.ScriptSecurity) vrrp.Deps { return r.host.Deps(r.vclock, &vrrptest.Scripts{}) },
		Dataplane: DataplaneOptions{Open: func(*slog.Logger) (dataplane.Dataplane, bool, error) {
			return r.dp, resumed, nil
		}},
		Clock:     r.clock,
		Addresses: noAddresses{},
	}
	for _, f := range adjust {
		f(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

func (r *fakeRig) write(conf string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(conf), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.d.Run(ctx) }()
	r.t.Cleanup(r.stop)
}

func (r *fakeRig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func servedAddrs(ds dataplane.DesiredState) []string {
	var out []string
	for _, v := range ds.Served {
		out = append(out, v.Addr.String()+"@"+v.Interface)
	}
	return out
}

// TestDaemonServesWhileMasterAndReloads: the instance becomes master
// and the dataplane is told to serve its VIP; a reload adding a real
// server changes the backends and nothing else; a broken file is
// rejected with every error located and no apply; the stop closes the
// dataplane after VRRP stopped.
func TestDaemonServesWhileMasterAndReloads(t *testing.T) {
	r := newFakeRig(t, fmt.Sprintf(fakeInstance, "MASTER", 255)+fakeServer("10.0.0.11"), false)
	r.run()
	var ds dataplane.DesiredState
	for !slices.Equal(servedAddrs(ds), []string{"10.0.0.100@eth0"}) {
		ds = r.dp.next(t)
	}
	if len(ds.Services) != 1 || len(ds.Services[0].Backends) != 1 || ds.Services[0].Backends[0].State != dataplane.BackendUp {
		t.Fatalf("desired state %+v", ds)
	}

	r.write(fmt.Sprintf(fakeInstance, "MASTER", 255) + fakeServer("10.0.0.11", "10.0.0.12"))
	if _, err := r.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds = r.dp.next(t)
	if len(ds.Services[0].Backends) != 2 || !slices.Equal(servedAddrs(ds), []string{"10.0.0.100@eth0"}) {
		t.Fatalf("after reload %+v", ds)
	}
	if st := r.d.VRRPStatus(); st[0].State != vrrp.StateMaster || st[0].Counters.BecameMaster != 1 {
		t.Fatalf("VRRP after reload %+v", st)
	}

	r.write(fmt.Sprintf(fakeInstance, "MASTER", 255) + strings.Replace(fakeServer("10.0.0.11"), "lb_algo rr", "lb_algo nope", 1) + "bogus_keyword\n")
	warns, err := r.d.Reload(context.Background())
	errs := ConfigErrors(err)
	if err == nil || len(errs) != 1 || !strings.HasPrefix(errs[0], r.path+":12:13: unknown lb_algo \"nope\"") {
		t.Fatalf("broken reload: %q", errs)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0], r.path+":18:1: warning: unknown keyword \"bogus_keyword\"") {
		t.Errorf("warnings %q", warns)
	}
	r.dp.noApply(t)
	snap, _ := r.d.Snapshot(context.Background())
	if snap.Config.Reloads != 2 || snap.Config.ReloadFailures != 1 || len(snap.Services[0].Backends) != 2 || !snap.Services[0].Active {
		t.Fatalf("snapshot after the rejected reload %+v", snap)
	}

	r.stop()
	if !r.dp.isClosed() {
		t.Error("dataplane not closed at stop")
	}
	if got := r.host.VIPs(); len(got) != 0 {
		t.Errorf("VIPs left after stop: %v", got)
	}
}

// TestApplyFailuresAreRetriedWithBackoff: a failing apply is retried on
// the daemon's clock, each wait twice the one before, until it succeeds;
// the failures show in the snapshot.
func TestApplyFailuresAreRetriedWithBackoff(t *testing.T) {
	r := newFakeRig(t, fmt.Sprintf(fakeInstance, "MASTER", 255)+fakeServer("10.0.0.11"), false)
	r.dp.fail = 1000 // every apply fails until told otherwise
	r.run()
	var ds dataplane.DesiredState
	for !slices.Equal(servedAddrs(ds), []string{"10.0.0.100@eth0"}) {
		ds = r.dp.next(t)
	}
	// After k failed applies the one retry timer waits 200 ms << (k-1):
	// it is armed anew after each failure.
	retryAfter := func() time.Duration {
		r.dp.mu.Lock()
		k := len(r.dp.states)
		r.dp.mu.Unlock()
		return min(minRetry<<(k-1), maxRetry)
	}
	var wait time.Duration
	for range 3 {
		wait = retryAfter()
		waitPending(t, r.clock, wait)
		if p := r.clock.Pending(); len(p) != 1 {
			t.Fatalf("pending timers %v, want the retry only", p)
		}
		r.clock.Advance(wait - time.Nanosecond)
		r.dp.noApply(t)
		r.clock.Advance(time.Nanosecond)
		if got := r.dp.next(t); !slices.Equal(servedAddrs(got), servedAddrs(ds)) {
			t.Fatalf("retry applied %+v", got)
		}
	}
	wait = retryAfter()
	waitPending(t, r.clock, wait)
	snap, _ := r.d.Snapshot(context.Background())
	if snap.Apply.Failures < 4 || !strings.Contains(snap.Apply.LastError, "injected failure") {
		t.Fatalf("apply status %+v", snap.Apply)
	}
	r.dp.mu.Lock()
	r.dp.fail = 0
	r.dp.mu.Unlock()
	r.clock.Advance(wait)
	r.dp.next(t)
	testnet.Eventually(t, 5*time.Second, "the snapshot shows the apply succeeded", func() error {
		snap, _ := r.d.Snapshot(context.Background())
		if snap.Apply.LastError != "" {
			return errors.New(snap.Apply.LastError)
		}
		return nil
	})
	if _, ok := r.clock.Next(); ok {
		t.Errorf("timers still pending after a successful apply: %v", r.clock.Pending())
	}
}

// TestRestartKeepsServingUntilVRRPDecides: after a restart that found the
// dataplane still forwarding, an instance that has heard no master yet
// keeps its VIP served (no forwarding gap) until the hold ends.
func TestRestartKeepsServingUntilVRRPDecides(t *testing.T) {
	r := newFakeRig(t, fmt.Sprintf(fakeInstance, "BACKUP", 100)+fakeServer("10.0.0.11"), true)
	r.run()
	ds := r.dp.next(t)
	if !slices.Equal(servedAddrs(ds), []string{"10.0.0.100@eth0"}) {
		t.Fatalf("first apply after a restart serves %v, want the held VIP", servedAddrs(ds))
	}
	hold := holdWindow(r.d.cur.vrrp)
	waitPending(t, r.clock, hold)
	r.clock.Advance(hold)
	if ds = r.dp.next(t); len(ds.Served) != 0 {
		t.Fatalf("after the hold a backup still serves %v", servedAddrs(ds))
	}
}

func TestRunFailsWhenVRRPCannotStart(t *testing.T) {
	r := newFakeRig(t, fmt.Sprintf(fakeInstance, "MASTER", 255)+fakeServer("10.0.0.11"), false)
	r.d.router = mustRouter(t, r.d, failingNetwork{r.host})
	err := r.d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no such interface") {
		t.Fatalf("Run = %v", err)
	}
	if !r.dp.isClosed() {
		t.Error("dataplane not closed")
	}
}

type failingNetwork struct{ *vrrptest.Host }

func (failingNetwork) Listen(ifname string, _ bool) (vrrp.Conn, error) {
	return nil, fmt.Errorf("listen on %s: no such interface", ifname)
}

func mustRouter(t *testing.T, d *Daemon, network vrrp.Network) *vrrp.Router {
	t.Helper()
	deps := vrrptest.NewClock(time.Unix(0, 0))
	h := network.(failingNetwork).Host
	vd := h.Deps(deps, &vrrptest.Scripts{})
	vd.Network = network
	vd.OnStateChange = d.stateChanged
	r, err := vrrp.NewRouter(d.cur.vrrp, vd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitPending waits until the fake clock has a timer d from now (the
// owner loop arms it after an apply, on its own goroutine).
func waitPending(t *testing.T, c *healthtest.Clock, d time.Duration) {
	t.Helper()
	testnet.Eventually(t, 5*time.Second, fmt.Sprintf("a timer %v from now", d), func() error {
		if slices.Contains(c.Pending(), d) {
			return nil
		}
		return fmt.Errorf("pending %v", c.Pending())
	})
}

// flakyAddresses fails its first watch, as a netlink socket overrun ends
// one, and counts the watches.
type flakyAddresses struct {
	noAddresses
	watches atomic.Int32
}

func (f *flakyAddresses) Watch(ctx context.Context, changed func()) error {
	if f.watches.Add(1) == 1 {
		return errors.New("recvmsg: no buffer space available")
	}
	return f.noAddresses.Watch(ctx, changed)
}

// A failed address watch is started again a second later, with a kick
// for the changes it may have missed.
func TestAddressWatchStartsAgainAfterAFailure(t *testing.T) {
	addrs := &flakyAddresses{}
	r := newFakeRig(t, "", false, func(o *Options) { o.Addresses = addrs })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.d.watchAddresses(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitPending(t, r.clock, addressRewatchDelay)
	select {
	case <-r.d.wake:
		t.Fatal("kicked before watching again")
	default:
	}
	r.clock.Advance(addressRewatchDelay)
	testnet.Eventually(t, 5*time.Second, "a second watch", func() error {
		if n := addrs.watches.Load(); n != 2 {
			return fmt.Errorf("%d watches", n)
		}
		return nil
	})
	select {
	case <-r.d.wake:
	default:
		t.Fatal("no kick for what the failed watch missed")
	}
}
