package rig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CheckScript writes the node's stand-in for the seed's check_h.sh, which
// asks whether an httpd process exists: it succeeds while the node's web
// server runs (the server keeps a run file while it listens). It returns
// the script's path.
func (n *Node) CheckScript() string {
	return n.writeScript("check_web.sh", fmt.Sprintf(`#!/bin/sh
# Stand-in for the seed's check_h.sh: is this node's web server running?
test -e %s
`, shellQuote(n.Web.runFile)))
}

// NotifyScript writes the node's stand-in for the seed's notify.sh: it
// appends its arguments (state and VIP) to NotifyLogPath, one line per
// call, instead of starting httpd and sending mail.
func (n *Node) NotifyScript() string {
	return n.writeScript("notify.sh", fmt.Sprintf(`#!/bin/sh
# Stand-in for the seed's notify.sh: log the transition.
echo "$1 $2" >> %s
`, shellQuote(n.NotifyLogPath())))
}

// NotifyLogPath is where the notify script logs.
func (n *Node) NotifyLogPath() string { return filepath.Join(n.Dir, "notify.log") }

// NotifyLog returns the lines the notify script logged so far, as
// "master 10.77.0.200".
func (n *Node) NotifyLog() []string {
	b, err := os.ReadFile(n.NotifyLogPath())
	if err != nil {
		return nil
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (n *Node) writeScript(name, text string) string {
	path := filepath.Join(n.Dir, name)
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		n.rig.T.Fatalf("%s: %v", name, err)
	}
	return path
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
