// Package daemon is what `xkeep run` runs: it reads the configuration,
// translates it into each part's own types and runs the parts. Today that
// is the VRRP engine; health checks and the dataplane attach here through
// the same pattern (translate in a <part>config.go file, start in Run,
// diff on Reload, react to VRRP transitions with OnStateChange).
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/vrrp"
)

// Options configure a Daemon.
type Options struct {
	// ConfigPath is the keepalived.conf to run.
	ConfigPath string
	// Load is passed to config.Load (config id, dataplane, ...).
	Load   config.LoadOptions
	Logger *slog.Logger
	// VRRPDeps builds the VRRP engine's I/O; nil uses the real ones in
	// the process's network namespace. Tests pass vrrptest fakes.
	VRRPDeps func(allowInsecureScripts bool) vrrp.Deps
}

// Daemon runs one configuration. Create it with New, register hooks,
// then Run it; Reload and the status methods may be called while it runs.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	cfg    *config.Config
	router *vrrp.Router
	hooks  []func(vrrp.StateChanged)
}

// New loads and checks the configuration. Configuration warnings are
// logged; errors are returned with their file:line:col.
func New(opts Options) (*Daemon, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.VRRPDeps == nil {
		opts.VRRPDeps = vrrp.LinuxDeps
	}
	d := &Daemon{opts: opts, log: log}
	cfg, vcfg, err := d.load()
	if err != nil {
		return nil, err
	}
	deps := opts.VRRPDeps(vcfg.AllowInsecureScripts)
	deps.Logger = log.With("part", "vrrp")
	deps.OnStateChange = d.stateChanged
	r, err := vrrp.NewRouter(vcfg, deps)
	if err != nil {
		return nil, err
	}
	d.cfg, d.router = cfg, r
	return d, nil
}

// load reads and translates the configuration file.
func (d *Daemon) load() (*config.Config, vrrp.Config, error) {
	cfg, diags, err := config.Load(d.opts.ConfigPath, d.opts.Load)
	for _, w := range diags.Warnings() {
		d.log.Warn("configuration", "warning", w.String())
	}
	if err != nil {
		return nil, vrrp.Config{}, err
	}
	vcfg, warns, err := VRRPConfig(cfg)
	for _, w := range warns {
		d.log.Warn("configuration", "warning", w)
	}
	if err != nil {
		return nil, vrrp.Config{}, fmt.Errorf("%s: %w", d.opts.ConfigPath, err)
	}
	if len(cfg.VirtualServers) > 0 {
		d.log.Warn("virtual_server blocks are read but not run yet: this daemon runs VRRP only", "count", len(cfg.VirtualServers))
	}
	if !vcfg.AllowInsecureScripts {
		d.log.Info("script security on: scripts a non-root user can change are refused")
	} else if len(vcfg.Scripts) > 0 || hasNotify(vcfg) {
		d.log.Warn("scripts are run without enable_script_security: a script writable by a non-root user would still run")
	}
	return cfg, vcfg, nil
}

func hasNotify(c vrrp.Config) bool {
	for _, in := range c.Instances {
		if in.Notify != (vrrp.NotifyConfig{}) {
			return true
		}
	}
	return false
}

// OnStateChange registers fn to be told of every VRRP transition, in
// order (the dataplane attaches on MASTER and detaches on BACKUP, FAULT
// and STOP). Register before Run. fn runs on the VRRP notification
// goroutine: keep it short, it delays later notifications, never the
// protocol.
func (d *Daemon) OnStateChange(fn func(vrrp.StateChanged)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks = append(d.hooks, fn)
}

func (d *Daemon) stateChanged(sc vrrp.StateChanged) {
	d.mu.Lock()
	hooks := d.hooks
	d.mu.Unlock()
	for _, h := range hooks {
		h(sc)
	}
}

// Run runs until ctx ends, then stops gracefully (VRRP masters send
// priority 0 and release their addresses; vrrp.StopTimeout bounds it).
func (d *Daemon) Run(ctx context.Context) error {
	d.log.Info("running", "config", d.opts.ConfigPath, "vrrp_instances", len(d.cfg.Instances))
	err := d.router.Run(ctx)
	d.log.Info("stopped")
	return err
}

// Reload re-reads the configuration file and applies the difference:
// new instances start, removed ones stop, unchanged ones keep their
// state and addresses. A configuration with errors is rejected and the
// running one stays.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, vcfg, err := d.load()
	if err != nil {
		return fmt.Errorf("reload rejected, still running the previous configuration: %w", err)
	}
	if err := d.router.Reload(ctx, vcfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("reloaded", "config", d.opts.ConfigPath, "vrrp_instances", len(cfg.Instances))
	return nil
}

// Config returns the configuration running now.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
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
