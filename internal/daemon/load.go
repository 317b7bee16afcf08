package daemon

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// loaded is one configuration read and translated for every part. A
// reload builds a whole new one before touching anything running.
type loaded struct {
	cfg    *config.Config
	vrrp   vrrp.Config
	health health.Config
	plan   servicePlan
	// scripts is the script security policy: enable_script_security,
	// and the daemon's --allow-insecure-scripts.
	scripts vrrp.ScriptSecurity
	// warnings are every configuration warning, located.
	warnings []string
	at       time.Time
}

// configErrors lists located configuration errors, one per line.
type configErrors []string

func (e configErrors) Error() string { return strings.Join(e, "\n") }

// ConfigErrors splits an error of New or Reload into its messages, each
// "file:line:col: what" when it is about the configuration.
func ConfigErrors(err error) []string {
	if err == nil {
		return nil
	}
	var le *config.LoadError
	if errors.As(err, &le) {
		out := make([]string, len(le.Diagnostics))
		for i, d := range le.Diagnostics {
			out[i] = d.String()
		}
		return out
	}
	var ce configErrors
	if errors.As(err, &ce) {
		return ce
	}
	return strings.Split(err.Error(), "\n")
}

// load reads the configuration file and translates it for VRRP, the
// health checker and the dataplane. Any error in any part rejects the
// whole file; every error is returned, not just the first part's.
func (d *Daemon) load() (*loaded, error) {
	cfg, diags, err := config.Load(d.opts.ConfigPath, d.opts.Load)
	l := &loaded{cfg: cfg, at: d.clock.Now()}
	for _, w := range diags.Warnings() {
		l.warnings = append(l.warnings, w.String())
	}
	if err != nil {
		return l, err
	}
	var errs configErrors
	add := func(warns []string, err error) {
		l.warnings = append(l.warnings, prefixWarnings(warns)...)
		if err != nil {
			errs = append(errs, ConfigErrors(err)...)
		}
	}
	var warns []string
	l.vrrp, warns, err = VRRPConfig(cfg)
	add(warns, err)
	l.health, warns, err = HealthConfig(cfg, d.opts.ReadFile)
	add(warns, err)
	l.plan, warns, err = ServicePlan(cfg)
	add(warns, err)
	if len(errs) > 0 {
		return l, errs
	}
	switch {
	case d.opts.AllowInsecureScripts:
		l.scripts = vrrp.AllowAllScripts
	case cfg.Global.EnableScriptSecurity:
		l.scripts = vrrp.RefuseNonRoot
	default:
		l.scripts = vrrp.RefuseWorldWritable
	}
	if len(l.vrrp.Scripts) > 0 || hasNotify(l.vrrp) || hasHealthScripts(l.health) {
		switch l.scripts {
		case vrrp.AllowAllScripts:
			l.warnings = append(l.warnings, fmt.Sprintf("%s: warning: --allow-insecure-scripts: scripts anyone can change still run", mainFile(cfg)))
		case vrrp.RefuseWorldWritable:
			l.warnings = append(l.warnings, fmt.Sprintf("%s: warning: scripts run without enable_script_security: those anyone can change are refused, those another non-root user can change still run", mainFile(cfg)))
		}
	}
	return l, nil
}

// prefixWarnings marks translation warnings ("file:line:col: msg") the
// way config's own read ("file:line:col: warning: msg").
func prefixWarnings(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		if pos, msg, ok := cutPos(w); ok {
			out[i] = pos + ": warning: " + msg
		} else {
			out[i] = "warning: " + w
		}
	}
	return out
}

// cutPos splits "file:line:col: msg" after the column.
func cutPos(s string) (pos, msg string, ok bool) {
	colons := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			colons++
			if colons == 3 && i+1 < len(s) && s[i+1] == ' ' {
				return s[:i], s[i+2:], true
			}
		}
	}
	return "", s, false
}

func hasNotify(c vrrp.Config) bool {
	for _, in := range c.Instances {
		if in.Notify != (vrrp.NotifyConfig{}) {
			return true
		}
	}
	for _, g := range c.SyncGroups {
		if g.Notify != (vrrp.NotifyConfig{}) {
			return true
		}
	}
	return false
}

func hasHealthScripts(c health.Config) bool {
	for _, vs := range c.VirtualServers {
		if !vs.QuorumUp.IsZero() || !vs.QuorumDown.IsZero() {
			return true
		}
		for _, rs := range vs.RealServers {
			if !rs.NotifyUp.IsZero() || !rs.NotifyDown.IsZero() {
				return true
			}
			for _, c := range rs.Checks {
				if c.Spec.Kind() == "MISC_CHECK" {
					return true
				}
			}
		}
	}
	return false
}

// mainFile is the configuration's main file, for messages about the
// whole of it.
func mainFile(cfg *config.Config) string {
	if len(cfg.Files) > 0 {
		return cfg.Files[0]
	}
	return "keepalived.conf"
}
