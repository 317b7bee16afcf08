package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Options are the Manager's edges. Zero values pick the real thing.
type Options struct {
	// Clock drives every delay and timeout (default SystemClock).
	Clock Clock
	// Dialer opens the checkers' connections (default NetDialer).
	Dialer Dialer
	// Scripts runs MISC_CHECK programs and notify scripts (default
	// ExecRunner).
	Scripts ScriptRunner
	// Logger receives state changes at Info and probe failures at Debug
	// (default: discard).
	Logger *slog.Logger
	// Random returns a uniform integer in [0, n). It spreads the first
	// checks over the warmup and picks DNS query IDs, echo sequence
	// numbers and UDP payloads (default math/rand/v2).
	Random func(n int64) int64
	// NotifyTimeout kills notify and quorum scripts that run longer
	// (default 1 minute).
	NotifyTimeout time.Duration
	// ShutdownTimeout bounds the omega scripts at shutdown and kills any
	// notify script still running (default 1 s, as keepalived).
	ShutdownTimeout time.Duration
}

// Manager runs the checkers of a Config, keeps keepalived's real server
// and virtual server state from their results, and runs the notify and
// quorum scripts. Read the results with Snapshot; Changes signals when the
// forwarder's view (backend states and weights, quorum, sorry server)
// changed.
type Manager struct {
	d       deps
	opts    Options
	changes chan struct{}

	mu       sync.Mutex
	pool     *pool
	runs     []*checkerRun
	initial  []action        // scripts to run when Run starts
	runCtx   context.Context // set while Run runs
	scripts  context.Context // notify scripts' context
	started  bool
	stopping bool

	checkers  sync.WaitGroup
	scriptsWG sync.WaitGroup
}

// checkerRun is one checker's goroutine state.
type checkerRun struct {
	state     *checkState // guarded by Manager.mu; Update re-points it
	retired   bool        // guarded by Manager.mu; Update removed it
	prober    prober
	policy    policy
	fromStart bool // MISC_CHECK times its delay loop from the start of a run
	warmup    time.Duration
	cancel    context.CancelFunc
}

func (m *Manager) newRun(c *checkState) *checkerRun {
	pr, pol := c.cfg.Spec.newProber(&c.cfg, &c.rs.cfg, &m.d)
	_, isMisc := pr.(*miscProber)
	return &checkerRun{state: c, prober: pr, policy: pol, fromStart: isMisc, warmup: c.cfg.Timing.Warmup}
}

// startLocked starts r's goroutine; m.mu is held and Run is running.
func (m *Manager) startLocked(r *checkerRun) {
	ctx, cancel := context.WithCancel(m.runCtx)
	r.cancel = cancel
	scripts := m.scripts
	m.checkers.Go(func() { m.runChecker(ctx, scripts, r) })
}

// New validates cfg and prepares its checkers. It starts nothing; Run
// does. keepalived's corrections apply, with a warning: a quorum above
// the total weight is lowered to it, a hysteresis not below the quorum is
// lowered to quorum-1.
func New(cfg Config, opts Options) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("health config: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Dialer == nil {
		opts.Dialer = NetDialer{}
	}
	if opts.Scripts == nil {
		opts.Scripts = ExecRunner{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Random == nil {
		opts.Random = rand.Int64N
	}
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = time.Minute
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = time.Second
	}
	m := &Manager{
		opts:    opts,
		changes: make(chan struct{}, 1),
		d: deps{
			clock:   opts.Clock,
			dialer:  opts.Dialer,
			scripts: opts.Scripts,
			random:  opts.Random,
		},
	}
	cfg = adjustQuorum(cfg, opts.Logger)
	m.pool, m.initial = newPool(&cfg)
	for _, vs := range m.pool.vss {
		for _, rs := range vs.rss {
			for _, c := range rs.checks {
				m.runs = append(m.runs, m.newRun(c))
			}
		}
	}
	return m, nil
}

// adjustQuorum applies validate_check_config's quorum corrections to a
// copy of cfg.
func adjustQuorum(cfg Config, log *slog.Logger) Config {
	vss := make([]VirtualServer, len(cfg.VirtualServers))
	copy(vss, cfg.VirtualServers)
	for i := range vss {
		vs := &vss[i]
		total := 0
		for _, rs := range vs.RealServers {
			total += realWeight(rs.Weight)
		}
		if vs.Quorum > total {
			log.Warn("quorum exceeds the total weight of the real servers; lowering it", "vs", vs.Name, "quorum", vs.Quorum, "total", total)
			vs.Quorum = total
		}
		if vs.Hysteresis > 0 && vs.Hysteresis >= vs.Quorum {
			log.Warn("hysteresis not below quorum; lowering it", "vs", vs.Name, "hysteresis", vs.Hysteresis, "quorum", vs.Quorum)
			vs.Hysteresis = max(vs.Quorum-1, 0)
		}
	}
	return Config{VirtualServers: vss}
}

// Run checks until ctx is canceled, then shuts down: probes in flight are
// abandoned, omega scripts run (bounded by ShutdownTimeout), scripts still
// running are killed, and every goroutine has ended when Run returns. A
// Manager runs once.
func (m *Manager) Run(ctx context.Context) error {
	// Notify scripts outlive a canceled ctx until shutdown ends.
	scriptCtx, stopScripts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopScripts()

	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("health: manager already ran")
	}
	m.started = true
	m.runCtx, m.scripts = ctx, scriptCtx
	m.runScripts(scriptCtx, m.initial)
	m.initial = nil
	for _, r := range m.runs {
		m.startLocked(r)
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.mu.Lock()
	m.stopping = true // no Update starts a checker from now on
	m.mu.Unlock()
	m.checkers.Wait()

	m.mu.Lock()
	acts := m.pool.shutdown()
	m.mu.Unlock()
	m.signal()
	m.opts.Logger.Info("health checks stopped")

	// Omega scripts, then a deadline for everything still running.
	stopCtx, cancelStop := context.WithCancel(scriptCtx)
	deadline := m.d.clock.AfterFunc(m.opts.ShutdownTimeout, cancelStop)
	var omega sync.WaitGroup
	for _, a := range acts {
		omega.Go(func() { m.runScript(stopCtx, a, m.opts.ShutdownTimeout) })
	}
	omega.Wait()
	stopScripts()
	m.scriptsWG.Wait()
	deadline.Stop()
	cancelStop()
	return nil
}

// runChecker is one checker's loop: wait, probe, record, repeat.
func (m *Manager) runChecker(ctx, scriptCtx context.Context, r *checkerRun) {
	delay := BootstrapDelay
	if r.warmup > 0 {
		// keepalived: warmup * random() / RAND_MAX, so 0..warmup.
		delay += time.Duration(m.d.random(int64(r.warmup) + 1))
	}
	timer, fired := m.d.clock.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fired:
		}
		start := m.d.clock.Now()
		out := r.prober.probe(ctx, r.policy.url())
		if ctx.Err() != nil {
			return // shutting down: the probe was cut short, not failed
		}
		end := m.d.clock.Now()
		dec, next := r.policy.result(out.ok)
		if d, ok := r.prober.(decider); ok {
			d.decided(out, dec)
		}
		if r.fromStart {
			next = max(next-end.Sub(start), 0)
		}
		// Arm the next probe before publishing this one, so whoever sees
		// the result also sees the schedule.
		timer.Reset(next)
		m.record(scriptCtx, r, out, dec, start, end.Sub(start))
	}
}

// record applies one probe's outcome to the pool.
func (m *Manager) record(scriptCtx context.Context, r *checkerRun, out outcome, dec decision, start time.Time, took time.Duration) {
	m.mu.Lock()
	if r.retired {
		m.mu.Unlock()
		return
	}
	c := r.state
	rs := c.rs
	vs := rs.vs
	before := vs.fingerprint()
	wasAlive, wasQuorum := rs.alive, vs.quorumUp
	c.probes++
	c.ran = true
	c.lastOK = out.ok
	c.lastRun = start
	c.latency = took
	c.lastErr = ""
	if !out.ok {
		c.failures++
		c.lastErr = out.err.Error()
	}
	c.retrying = r.policy.retrying()
	var acts []action
	if out.setWeight {
		acts = append(acts, m.pool.setWeight(rs, out.weight)...)
	}
	switch dec {
	case decideUp:
		acts = append(acts, m.pool.checkerDecision(c, true)...)
	case decideDown:
		acts = append(acts, m.pool.checkerDecision(c, false)...)
	}
	changed := !before.equal(vs.fingerprint())
	isAlive, isQuorum, weight, aliveWeight := rs.alive, vs.quorumUp, realWeight(rs.weight), vs.aliveWeight()
	m.mu.Unlock()

	log := m.opts.Logger.With("vs", vs.cfg.Name, "rs", rs.cfg.Addr.String(), "check", c.cfg.Spec.Kind(), "target", c.target)
	if !out.ok {
		log.Debug("check failed", "err", out.err, "retrying", r.policy.retrying())
	}
	if dec != noDecision {
		attrs := []any{"verdict", dec.String()}
		if out.err != nil {
			attrs = append(attrs, "err", out.err)
		}
		log.Info("checker verdict", attrs...)
	}
	if out.setWeight {
		log.Info("dynamic weight", "weight", weight)
	}
	if isAlive != wasAlive {
		log.Info("real server "+map[bool]string{true: "up", false: "down"}[isAlive], "inhibit", rs.cfg.Inhibit)
	}
	if isQuorum != wasQuorum {
		m.opts.Logger.Info("quorum "+map[bool]string{true: "gained", false: "lost"}[isQuorum], "vs", vs.cfg.Name, "alive_weight", aliveWeight, "quorum", vs.quorum, "hysteresis", vs.hysteresis)
	}
	m.runScripts(scriptCtx, acts)
	if changed {
		m.signal()
	}
}

// runScripts starts notify scripts without waiting for them, as
// keepalived does.
func (m *Manager) runScripts(ctx context.Context, acts []action) {
	for _, a := range acts {
		m.scriptsWG.Go(func() { m.runScript(ctx, a, m.opts.NotifyTimeout) })
	}
}

func (m *Manager) runScript(ctx context.Context, a action, timeout time.Duration) {
	log := m.opts.Logger.With("script", a.script.String(), "why", a.why)
	proc, err := m.d.scripts.Start(a.script)
	if err != nil {
		log.Warn("notify script failed to start", "err", err)
		return
	}
	r := supervise(ctx, m.d.clock, proc, timeout)
	switch {
	case r.timedOut:
		log.Warn("notify script timed out", "timeout", timeout)
	case r.exit.Code != 0:
		log.Warn("notify script failed", "exit", r.exit.String())
	default:
		log.Debug("notify script ran")
	}
}

// Changes receives a value when a virtual server's backends, weights,
// quorum or sorry server changed. Signals coalesce: read Snapshot after
// each.
func (m *Manager) Changes() <-chan struct{} { return m.changes }

func (m *Manager) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Snapshot returns the current state of every virtual server.
func (m *Manager) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pool.snapshot()
}
