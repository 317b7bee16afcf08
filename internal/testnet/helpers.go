package testnet

import (
	"bytes"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// PrivateBPFFS mounts a bpf filesystem for this test only, so pins never
// touch /sys/fs/bpf, and unmounts it (and the pins in it) when the test
// ends.
func PrivateBPFFS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// SyncBuffer is a bytes.Buffer that a process's stdout and stderr and the
// test may use at once (a daemon's log, read while it runs).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
