package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

// TestSecureScriptsRefuseWritableScripts: with enable_script_security a
// health script anyone may change is refused; without it, it runs.
func TestSecureScriptsRefuseWritableScripts(t *testing.T) {
	// Script security trusts root-owned paths only: as another user the
	// test's own temp dir would be refused whatever the script's mode.
	testnet.RequireRoot(t)
	script := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o777); err != nil {
		t.Fatal(err)
	}
	secure := &atomic.Bool{}
	secure.Store(true)
	runner := secureScripts{next: health.ExecRunner{}, secure: secure}
	if _, err := runner.Start(health.Script{Args: []string{script}}); err == nil || !strings.Contains(err.Error(), "writable by everyone") {
		t.Fatalf("world-writable script: %v", err)
	}
	secure.Store(false)
	p, err := runner.Start(health.Script{Args: []string{script}})
	if err != nil {
		t.Fatal(err)
	}
	if exit, err := p.Wait(); err != nil || exit.Code != 0 {
		t.Fatalf("exit %v, %v", exit, err)
	}
}
