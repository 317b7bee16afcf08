package daemon

import (
	"fmt"
	"os/exec"
	"sync/atomic"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// secureScripts applies keepalived's enable_script_security to the health
// checker's scripts (MISC_CHECK, notify_up/down, quorum_up/down), as the
// VRRP engine does to its own: a script a non-root user could replace is
// refused. A reload may switch it on or off.
type secureScripts struct {
	next   health.ScriptRunner
	secure *atomic.Bool
}

func (s secureScripts) Start(sc health.Script) (health.Process, error) {
	if s.secure.Load() && len(sc.Args) > 0 {
		path, err := exec.LookPath(sc.Args[0])
		if err != nil {
			return nil, err
		}
		if err := vrrp.CheckScriptSecurity(path); err != nil {
			return nil, fmt.Errorf("refusing %s (enable_script_security): %w", sc.Args[0], err)
		}
	}
	return s.next.Start(sc)
}
