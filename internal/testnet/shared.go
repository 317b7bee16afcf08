package testnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FindShared returns the shared fixtures directory (the seed, keepalived's
// samples and manual, the VRRP captures): "shared" next to the
// repository root, found from the test's package directory, or
// $XKEEP_SHARED.
func FindShared() (string, error) {
	dir := os.Getenv("XKEEP_SHARED")
	if dir == "" {
		root, err := filepath.Abs(".")
		if err != nil {
			return "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				return "", errors.New("no go.mod above the package directory")
			}
			root = parent
		}
		dir = filepath.Join(filepath.Dir(root), "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "seed")); err != nil {
		return "", fmt.Errorf("shared fixtures (seed, keepalived samples) not found at %s: %w", dir, err)
	}
	return dir, nil
}

// SharedDir returns the shared fixtures directory, or skips the test
// saying why when it is not there; under CI, where it must be, it fails.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := FindShared()
	if err != nil {
		if InCI() {
			t.Fatalf("in CI: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return dir
}
