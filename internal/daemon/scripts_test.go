package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/vrrp"
)

// TestSecureScriptsRefuseWritableScripts: a health script anyone may
// change is refused unless --allow-insecure-scripts; a group-writable one
// only with enable_script_security.
func TestSecureScriptsRefuseWritableScripts(t *testing.T) {
	// Script security trusts root-owned paths only: as another user the
	// test's own temp dir would be refused whatever the script's mode.
	testnet.RequireRoot(t)
	script := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := func(policy vrrp.ScriptSecurity) error {
		runner := secureScripts{next: health.ExecRunner{}, security: func() vrrp.ScriptSecurity { return policy }}
		p, err := runner.Start(health.Script{Args: []string{script}})
		if err != nil {
			return err
		}
		if exit, err := p.Wait(); err != nil || exit.Code != 0 {
			t.Fatalf("exit %v, %v", exit, err)
		}
		return nil
	}
	if err := os.Chown(script, 0, 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := runs(vrrp.RefuseWorldWritable); err != nil {
		t.Fatalf("group-writable script, default policy: %v", err)
	}
	if err := runs(vrrp.RefuseNonRoot); err == nil || !strings.Contains(err.Error(), "writable by group 4") {
		t.Fatalf("group-writable script, enable_script_security: %v", err)
	}
	if err := os.Chmod(script, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := runs(vrrp.RefuseWorldWritable); err == nil || !strings.Contains(err.Error(), "writable by everyone") || !strings.Contains(err.Error(), "--allow-insecure-scripts") {
		t.Fatalf("world-writable script, default policy: %v", err)
	}
	if err := runs(vrrp.AllowAllScripts); err != nil {
		t.Fatalf("--allow-insecure-scripts: %v", err)
	}
}
