package daemon

import (
	"fmt"
	"os/exec"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// secureScripts applies the daemon's script security to the health
// checker's scripts (MISC_CHECK, notify_up/down, quorum_up/down), as the
// VRRP engine applies it to its own: a script that others could replace
// is refused. A reload may change the policy.
type secureScripts struct {
	next     health.ScriptRunner
	security func() vrrp.ScriptSecurity
}

func (s secureScripts) Start(sc health.Script) (health.Process, error) {
	if len(sc.Args) > 0 {
		path, err := exec.LookPath(sc.Args[0])
		if err != nil {
			return nil, err
		}
		if err := s.security().Check(path); err != nil {
			return nil, fmt.Errorf("refusing %s (fix its permissions; xkeep run --allow-insecure-scripts runs it anyway): %w", sc.Args[0], err)
		}
	}
	return s.next.Start(sc)
}
