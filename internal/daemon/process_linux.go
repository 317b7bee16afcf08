package daemon

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/config"
)

// lockMemory is vrrp_no_swap. keepalived locks its VRRP child with
// mlockall(MCL_FUTURE); xkeep is one process, so all of it is locked.
// MCL_ONFAULT locks pages as they are touched: the Go runtime reserves
// large address ranges that locking up front would fill.
func lockMemory() error {
	return unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
}

// restartOnly names the settings of l that differ from the running
// ones but, as with keepalived, apply only when xkeep starts: the VRRP
// thread's placement and vrrp_no_swap. The lines are reload warnings.
func (d *Daemon) restartOnly(l *loaded) []string {
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	was, now := cur.cfg.Global, l.cfg.Global
	var warns []string
	for _, s := range []struct {
		name    string
		changed bool
	}{
		{"vrrp_rt_priority", was.VRRPRealtimePriority != now.VRRPRealtimePriority},
		{"vrrp_rlimit_rttime", was.VRRPRlimitRTTime != now.VRRPRlimitRTTime},
		{"vrrp_priority", was.VRRPNice != now.VRRPNice},
		{"vrrp_cpu_affinity", !slices.Equal(was.VRRPCPUs, now.VRRPCPUs)},
		{"vrrp_no_swap", was.VRRPNoSwap != now.VRRPNoSwap},
	} {
		if s.changed {
			pos, ok := now.Explicit[s.name]
			if !ok {
				pos = now.Pos // the global_defs block, or the file
				if !pos.IsValid() {
					pos = config.Pos{File: d.opts.ConfigPath}
				}
			}
			warns = append(warns, fmt.Sprintf("%s: warning: %s changed; it takes effect when xkeep restarts", pos, s.name))
			d.log.Warn(s.name+" changed; it takes effect when xkeep restarts", "at", pos.String())
		}
	}
	return warns
}
