package vrrp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`/scripts/notify.sh master 192.168.8.100`: {"/scripts/notify.sh", "master", "192.168.8.100"},
		`"/path with/space.sh"  'a b' c\ d`:       {"/path with/space.sh", "a b", "c d"},
		``:                                        nil,
	} {
		if got := SplitCommand(in); !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExecRunnerScriptSecurityAndTimeout(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runner := func(s ScriptSecurity) ExecRunner { return ExecRunner{Security: func() ScriptSecurity { return s }} }
	def := ExecRunner{} // RefuseWorldWritable
	if os.Geteuid() == 0 {
		for _, r := range []ExecRunner{def, runner(RefuseNonRoot)} {
			if err := r.Run(ctx, Command{Argv: []string{script, "0"}}); err != nil {
				t.Fatalf("secure script refused or failed: %v", err)
			}
			if err := r.Run(ctx, Command{Argv: []string{script, "3"}}); err == nil || errors.Is(err, ErrInsecureScript) {
				t.Fatalf("exit 3: %v", err)
			}
		}
		// Group-writable (group 0 is root's own: give it another).
		if err := os.Chown(script, 0, 4); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(script, 0o775); err != nil {
			t.Fatal(err)
		}
		if err := def.Run(ctx, Command{Argv: []string{script, "0"}}); err != nil {
			t.Fatalf("by default only what everyone may write is refused: %v", err)
		}
		err := runner(RefuseNonRoot).Run(ctx, Command{Argv: []string{script, "0"}})
		if !errors.Is(err, ErrInsecureScript) || !strings.Contains(err.Error(), "writable by group 4") {
			t.Fatalf("enable_script_security, group-writable script: %v", err)
		}
	}
	if err := os.Chmod(script, 0o757); err != nil {
		t.Fatal(err)
	}
	for _, r := range []ExecRunner{def, runner(RefuseNonRoot)} {
		err := r.Run(ctx, Command{Argv: []string{script, "0"}})
		if !errors.Is(err, ErrInsecureScript) || !strings.Contains(err.Error(), "writable by everyone") {
			t.Fatalf("world-writable script: %v", err)
		}
	}
	if err := runner(AllowAllScripts).Run(ctx, Command{Argv: []string{script, "0"}}); err != nil && os.Geteuid() == 0 {
		t.Fatalf("allowed insecure script: %v", err)
	}
	slow := filepath.Join(dir, "slow.sh")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nsleep 5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := runner(AllowAllScripts).Run(ctx, Command{Argv: []string{slow}, Timeout: 100 * time.Millisecond})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("timeout not enforced: %v after %v", err, time.Since(start))
	}
}
