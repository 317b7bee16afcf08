// Package daemon is what `xkeep run` runs: it reads keepalived.conf,
// translates it into each part's own types (vrrpconfig.go, healthconfig.go,
// dataplaneconfig.go) and runs the parts:
//
//   - the VRRP engine (vrrp.Router) moves the virtual addresses;
//   - the health checker (health.Manager) judges the real servers;
//   - one owner goroutine (reconcile.go) keeps the dataplane's desired
//     state equal to the configuration's services, the checkers' verdicts
//     and the VIPs this node is MASTER for. desired.go, pure and
//     table-tested, is the only place that knows what a VRRP state means
//     for the dataplane.
//
// Reload re-reads the file and, when every part accepts it, applies only
// the difference (unchanged instances keep their state and addresses,
// unchanged real servers their health, the dataplane's diff keeps flows
// of unchanged backends); on any error nothing changes. Snapshot builds
// the status that `xkeep status`, the control socket and the metrics
// share, reading counters from the dataplane at request time.
//
// # Decisions
//
//   - Served VIPs are those of MASTER instances that some service uses,
//     each on the interface the address lives on (its dev, else the
//     instance's interface). Other VIPs need no dataplane.
//   - A virtual server whose address no vrrp_instance manages is served
//     always, as keepalived serves it. IPVS needs nothing more; XDP serves
//     it on the (non-loopback) interface that holds the address, found
//     with netlink and followed as addresses change, and not at all (with
//     a warning) while no interface holds it.
//   - A fwmark service (IPVS only) is served while this node is MASTER for
//     any address of its family, or always when no vrrp_instance of that
//     family exists (a plain LVS node).
//   - After a restart that found the XDP program still attached (a killed
//     daemon, same --pin-dir), instances that have not yet heard a master
//     keep their VIPs served for up to 4 advert intervals + 1 s, so
//     forwarding has no gap while VRRP decides; a backup that hears its
//     master stops serving at once.
//   - Stop: the dataplane keeps forwarding while VRRP resigns (priority 0,
//     VIPs removed), so packets still sent here before the new master's
//     gratuitous ARP reach the real servers; then it is closed (XDP
//     detached and unpinned, IPVS services removed).
//   - Crash guard (guard.go): Run starts a small process beside the
//     daemon (`xkeep guard`, Options.Guard) and keeps it told, over a
//     pipe, of the VIPs the VRRP engine added and the IPVS services the
//     dataplane owns (each service before the Apply that may create it);
//     the stop says goodbye. When the daemon dies without one (SIGKILL,
//     crash, OOM) the guard removes them at once: the dead master's
//     kernel stops answering ARP for its VIPs against the new master, and
//     its IPVS services stop bouncing the DR packets the new master sends
//     it as a real server. XDP's program and pins it leaves alone (a
//     restart adopts them; the interception lease ends the bouncing). A
//     daemon started while a killed one's guard still works waits for it.
//   - A failed Apply is retried with backoff (200 ms doubling to 30 s);
//     the same state is not re-applied on every event meanwhile. Invalid
//     services (e.g. lb_kind NAT with XDP) keep failing and say so in the
//     log, the status and xkeep_dataplane_last_apply_successful.
//   - IPVS: net.ipv4.vs.expire_nodest_conn is left as the system has it,
//     as keepalived does: with 0 (the default) a removed real server's
//     established connections are still forwarded to it until they
//     expire; set it to 1 to cut them at once. XDP reschedules the flows
//     of a down backend (its clients' connections reset) and keeps those
//     of a draining one (inhibit_on_failure).
//   - Checkers xkeep lacks (BFD_CHECK, FILE_CHECK) are left out with a
//     warning: the real server is judged by its other checkers, or is
//     always up when it has none (keepalived's rule for a real server
//     without checkers). SSL_GET does not verify certificates (keepalived
//     does not either).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// Options configure a Daemon. Zero values pick the real thing.
type Options struct {
	// ConfigPath is the keepalived.conf to run.
	ConfigPath string
	// Load is passed to config.Load (config id, dataplane, ...).
	Load   config.LoadOptions
	Logger *slog.Logger
	// Dataplane says which forwarder to open and how.
	Dataplane DataplaneOptions
	// VRRPDeps builds the VRRP engine's I/O; nil uses the real ones in
	// the process's network namespace. Tests pass vrrptest fakes.
	// security is the script policy in force (a reload may change it).
	VRRPDeps func(security func() vrrp.ScriptSecurity) vrrp.Deps
	// AllowInsecureScripts runs scripts that others could change
	// (--allow-insecure-scripts); by default xkeep refuses scripts anyone
	// may write, and with enable_script_security any a non-root user may.
	AllowInsecureScripts bool
	// Health holds the health checker's edges (Clock, Dialer, Scripts,
	// Random); its Logger is set from Logger.
	Health health.Options
	// Clock drives the daemon's own timers: dataplane retries and the
	// startup hold (default health.SystemClock).
	Clock health.Clock
	// Addresses finds where addresses of unmanaged VIPs live (default:
	// netlink in the process's namespace).
	Addresses AddressBook
	// ReadFile reads the SSL block's certificates (default os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Guard starts the crash guard when Run starts (guard.go); the zero
	// value starts none.
	Guard GuardOptions
}

// Daemon runs one configuration. Create it with New, then Run it; Reload
// and Snapshot may be called from any goroutine while it runs.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	clock health.Clock
	caps  capabilities

	router   *vrrp.Router
	checks   *health.Manager
	security atomic.Int32 // the vrrp.ScriptSecurity every script runs under

	reloadMu sync.Mutex // one reload at a time
	wake     chan struct{}

	mu      sync.Mutex
	cur     *loaded
	started time.Time
	reloads reloadStats
	// transitions counts each instance's state changes (the engine
	// reports them; it does not count them).
	transitions map[string]uint64
	hooks       []func(vrrp.StateChanged)
	dp          dataplane.Dataplane // nil until a service needs one
	resumed     bool                // dp was still forwarding from a previous run
	apply       applyStats

	// held is what a crash guard must remove if this daemon dies; guard
	// keeps one told of it while Run runs (guard is nil without one).
	held  *held
	guard *guardLink
}

type reloadStats struct {
	count, failures uint64
	lastAt          time.Time
	lastOK          bool
	lastErr         string
	lastTook        time.Duration
}

// New loads the configuration and prepares every part; it starts
// nothing. Configuration warnings are logged; errors are returned, each
// with its file:line:col (ConfigErrors lists them). The dataplane is
// opened here when the configuration has virtual servers (or a previous
// run left XDP state pinned), so a missing kernel feature fails the start.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.VRRPDeps == nil {
		opts.VRRPDeps = vrrp.LinuxDeps
	}
	if opts.Clock == nil {
		opts.Clock = health.SystemClock{}
	}
	if opts.Addresses == nil {
		opts.Addresses = netlinkAddresses{}
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	d := &Daemon{
		opts:        opts,
		log:         opts.Logger,
		clock:       opts.Clock,
		caps:        opts.Dataplane.capabilities(),
		wake:        make(chan struct{}, 1),
		transitions: map[string]uint64{},
		held:        newHeld(),
	}
	l, err := d.load()
	d.logWarnings(l)
	if err != nil {
		return nil, err
	}
	d.cur = l
	d.security.Store(int32(l.scripts))

	deps := opts.VRRPDeps(d.scriptSecurity)
	deps.Logger = d.log.With("part", "vrrp")
	deps.OnStateChange = d.stateChanged
	if deps.Addrs != nil {
		deps.Addrs = heldAddrs{next: deps.Addrs, held: d.held}
	}
	if d.router, err = vrrp.NewRouter(l.vrrp, deps); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.ConfigPath, err)
	}

	hopts := opts.Health
	hopts.Logger = d.log.With("part", "health")
	if hopts.Scripts == nil {
		hopts.Scripts = health.ExecRunner{}
	}
	hopts.Scripts = secureScripts{next: hopts.Scripts, security: d.scriptSecurity}
	if hopts.ShutdownTimeout <= 0 || hopts.ShutdownTimeout > time.Second {
		hopts.ShutdownTimeout = time.Second // the whole stop takes 2 s at most
	}
	if d.checks, err = health.New(l.health, hopts); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.ConfigPath, err)
	}

	if len(l.plan.Services) > 0 || opts.Dataplane.leftover() {
		if err := d.openDataplane(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// scriptSecurity is the policy notify, track and check scripts run under.
func (d *Daemon) scriptSecurity() vrrp.ScriptSecurity {
	return vrrp.ScriptSecurity(d.security.Load())
}

func (d *Daemon) logWarnings(l *loaded) {
	if l == nil {
		return
	}
	for _, w := range l.warnings {
		d.log.Warn("configuration", "warning", w)
	}
}

// openDataplane opens the forwarder; the owner loop retries on failure.
func (d *Daemon) openDataplane() error {
	d.mu.Lock()
	lease := interceptLease(d.cur.vrrp)
	d.mu.Unlock()
	dp, resumed, err := d.opts.Dataplane.open(d.log.With("part", "dataplane"), lease)
	if err != nil {
		return fmt.Errorf("dataplane %s: %w", d.opts.Dataplane.name(), err)
	}
	d.mu.Lock()
	d.dp, d.resumed = dp, resumed
	d.mu.Unlock()
	if resumed {
		d.log.Info("dataplane still forwarding from the previous run: adopted its state; it keeps serving until VRRP decides")
	}
	return nil
}

// OnStateChange registers fn to be told of every VRRP transition, in
// order. Register before Run. fn runs on the VRRP notification
// goroutine: keep it short.
func (d *Daemon) OnStateChange(fn func(vrrp.StateChanged)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks = append(d.hooks, fn)
}

func (d *Daemon) stateChanged(sc vrrp.StateChanged) {
	d.mu.Lock()
	d.transitions[sc.Instance]++
	hooks := d.hooks
	d.mu.Unlock()
	d.kick()
	for _, h := range hooks {
		h(sc)
	}
}

// kick makes the owner loop recompute the desired state.
func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run runs until ctx ends, then stops within 2 s: the owner loop stops
// applying; VRRP masters send priority 0 and remove their addresses (the
// dataplane keeps forwarding meanwhile, so packets that still reach this
// node before the new master's gratuitous ARP are not lost) while the
// health checker runs its omega scripts; then the dataplane is closed
// (detached, pins removed). It returns early with an error when the VRRP
// engine cannot start.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	d.started = d.clock.Now()
	cur, resumed := d.cur, d.resumed
	d.mu.Unlock()
	d.log.Info("running", "config", d.opts.ConfigPath, "vrrp_instances", len(cur.cfg.Instances),
		"virtual_servers", len(cur.cfg.VirtualServers), "services", len(cur.plan.Services), "dataplane", d.opts.Dataplane.name())

	if cur.cfg.Global.VRRPNoSwap {
		if err := lockMemory(); err != nil {
			d.log.Warn("vrrp_no_swap: xkeep is not locked in memory", "err", err)
		}
	}
	// The guard first: it must hear of every address and service before
	// they exist (and a killed predecessor's guard must be done).
	d.guard = startGuard(ctx, d.opts.Guard, d.held, d.log.With("part", "guard"), d.clock)

	bg := context.WithoutCancel(ctx)
	vctx, stopVRRP := context.WithCancel(bg)
	hctx, stopHealth := context.WithCancel(bg)
	rctx, stopReconcile := context.WithCancel(bg)
	defer stopVRRP()
	defer stopHealth()
	defer stopReconcile()

	vrrpDone := make(chan error, 1)
	go func() { vrrpDone <- d.router.Run(vctx) }()
	healthDone := make(chan error, 1)
	go func() { healthDone <- d.checks.Run(hctx) }()
	var hold time.Duration
	if resumed {
		hold = holdWindow(cur.vrrp)
	}
	reconcileDone := make(chan struct{})
	go func() {
		defer close(reconcileDone)
		d.reconcile(rctx, hold)
	}()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		d.watchAddresses(rctx)
	}()

	var runErr error
	vrrpEnded := false
	select {
	case <-ctx.Done():
	case err := <-vrrpDone:
		vrrpEnded = true
		runErr = err
		if err == nil {
			runErr = errors.New("vrrp engine stopped unexpectedly")
		}
	}
	stopAt := d.clock.Now()
	stopReconcile()
	<-reconcileDone
	<-watchDone
	stopVRRP()
	stopHealth()
	if !vrrpEnded {
		if err := <-vrrpDone; err != nil {
			d.log.Error("vrrp stop", "err", err)
		}
	}
	if err := <-healthDone; err != nil {
		d.log.Error("health checks stop", "err", err)
	}
	d.mu.Lock()
	dp := d.dp
	d.dp = nil
	d.mu.Unlock()
	if dp != nil {
		if err := dp.Close(); err != nil {
			d.log.Error("dataplane close", "err", err)
		}
		d.held.setServices(nil)
	}
	// Everything is removed (or failed to be, and said so): the guard has
	// nothing to do.
	d.guard.close()
	d.log.Info("stopped", "took", d.clock.Now().Sub(stopAt).Round(time.Millisecond))
	return runErr
}

// holdWindow bounds how long unsettled instances keep serving after a
// restart: long enough for any instance to hear a master or become one
// (three adverts plus the skew, which is below one).
func holdWindow(c vrrp.Config) time.Duration {
	longest := time.Second
	for _, in := range c.Instances {
		longest = max(longest, in.AdvertInterval)
	}
	return 4*longest + time.Second
}

// Reload re-reads the configuration file and applies the difference:
// new instances start, removed ones stop, unchanged ones keep their
// state and addresses; real servers that did not change keep their
// health; the dataplane changes only what differs. A configuration with
// any error is rejected and the running one stays: the error lists every
// problem (ConfigErrors splits them). The warnings come back either way.
func (d *Daemon) Reload(ctx context.Context) ([]string, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	start := d.clock.Now()
	l, err := d.load()
	d.logWarnings(l)
	var warns []string
	if l != nil {
		warns = l.warnings
	}
	if err == nil {
		err = d.router.Reload(ctx, l.vrrp)
	}
	if err == nil {
		warns = append(warns, d.restartOnly(l)...)
	}
	if err == nil {
		// The health configuration was validated with the rest, so this
		// only fails when the checker is stopping.
		err = d.checks.Update(l.health)
	}
	took := d.clock.Now().Sub(start)
	d.mu.Lock()
	d.reloads.count++
	d.reloads.lastAt, d.reloads.lastTook = start, took
	d.reloads.lastOK = err == nil
	d.reloads.lastErr = ""
	if err != nil {
		d.reloads.failures++
		d.reloads.lastErr = err.Error()
	} else {
		d.cur = l
	}
	d.mu.Unlock()
	if err != nil {
		for _, e := range ConfigErrors(err) {
			d.log.Error("reload rejected", "error", e)
		}
		d.log.Error("reload rejected: still running the previous configuration", "config", d.opts.ConfigPath)
		return warns, fmt.Errorf("reload rejected, still running the previous configuration: %w", err)
	}
	d.security.Store(int32(l.scripts))
	d.kick()
	d.log.Info("reloaded", "config", d.opts.ConfigPath, "vrrp_instances", len(l.cfg.Instances),
		"services", len(l.plan.Services), "took", took.Round(time.Microsecond))
	return warns, nil
}

// addressRewatchDelay is how long after a failed address watch (a
// netlink socket overrun, say) the daemon watches again.
const addressRewatchDelay = time.Second

// watchAddresses kicks the owner loop on every address change, so a
// VIP that no vrrp_instance manages is served where it is configured. A
// watch that fails is started again, with a kick for what it missed.
func (d *Daemon) watchAddresses(ctx context.Context) {
	for {
		err := d.opts.Addresses.Watch(ctx, d.kick)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("watching addresses failed; watching again", "err", err, "in", addressRewatchDelay)
		t, c := d.clock.NewTimer(addressRewatchDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c:
		}
		d.kick()
	}
}

// Config returns the configuration running now.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur.cfg
}

// VRRPStatus returns every instance's state, base and effective
// priority, master address and counters.
func (d *Daemon) VRRPStatus() []vrrp.InstanceStatus { return d.router.Status() }

// VRRPErrors counts received packets dropped before an instance could be
// told (malformed, unknown VRID), by reason.
func (d *Daemon) VRRPErrors() map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range d.router.Errors() {
		out[string(k)] = v
	}
	return out
}

// Warnings returns the running configuration's warnings.
func (d *Daemon) Warnings() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.cur.warnings)
}
