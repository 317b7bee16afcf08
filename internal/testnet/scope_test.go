package testnet

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestScopeRunsCleanupsLastFirstOnClose(t *testing.T) {
	var log bytes.Buffer
	s := NewScope("lab", &log)
	var order []int
	err := s.Run(func() {
		s.Cleanup(func() { order = append(order, 1) })
		s.Cleanup(func() { order = append(order, 2) })
		s.Cleanup(func() { s.Fatalf("cleanup %d failed", 3) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Context().Err() != nil {
		t.Fatal("context cancelled before Close")
	}
	s.Close()
	s.Close() // again: nothing more happens
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("cleanups ran in order %v, want [2 1]", order)
	}
	if s.Context().Err() == nil {
		t.Error("context not cancelled by Close")
	}
	if !strings.Contains(log.String(), "cleanup failed: cleanup 3 failed") {
		t.Errorf("log %q lacks the failed cleanup", log.String())
	}
	ran := false
	s.Cleanup(func() { ran = true })
	if !ran {
		t.Error("a cleanup registered after Close did not run at once")
	}
}

func TestScopeFatalAndSkipEndRun(t *testing.T) {
	s := NewScope("lab", nil)
	defer s.Close()
	reached := false
	err := s.Run(func() {
		s.Fatalf("step %d: %s", 3, "no VIP")
		reached = true
	})
	if err == nil || err.Error() != "step 3: no VIP" || reached {
		t.Errorf("Run = %v (reached after Fatalf: %v), want the Fatalf message", err, reached)
	}
	if !s.Failed() {
		t.Error("Fatalf did not mark the scope failed")
	}
	// RequireRoot skips as non-root: in a program, that is a failure.
	other := NewScope("x", nil)
	defer other.Close()
	err = other.Run(func() { other.Skip("needs root") })
	if err == nil || err.Error() != "needs root" {
		t.Errorf("Skip: Run = %v", err)
	}
}

func TestScopeTempDirRemovedOnClose(t *testing.T) {
	s := NewScope("lab", nil)
	dir := s.TempDir()
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("TempDir %s: %v", dir, err)
	}
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", dir, err)
	}
}

func TestScopeRemovesNamespacesOnClose(t *testing.T) {
	RequireRoot(t)
	s := NewScope("lab", nil)
	var ns *Namespace
	if err := s.Run(func() { ns = NewNamespace(s, "scope") }); err != nil {
		s.Close()
		t.Fatal(err)
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		s.Close()
		t.Fatalf("namespace not created: %v", err)
	}
	s.Close()
	if _, err := os.Stat(ns.Path()); !os.IsNotExist(err) {
		t.Errorf("namespace %s left after Close: %v", ns.Name, err)
	}
}
