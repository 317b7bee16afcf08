package xdp

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// inMountNamespace runs fn on a throwaway thread with a private mount
// namespace, so mounts it makes vanish with the thread.
func inMountNamespace(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestEnsureBPFFSMountsWhenMissing(t *testing.T) {
	testnet.RequireRoot(t)
	inMountNamespace(t, func() error {
		// Start from a /sys/fs/bpf with nothing mounted on it.
		if onBPFFS("/sys/fs/bpf") {
			if err := unix.Unmount("/sys/fs/bpf", unix.MNT_DETACH); err != nil {
				return err
			}
		}
		if onBPFFS("/sys/fs/bpf") {
			return errors.New("could not get an unmounted /sys/fs/bpf")
		}
		dir := "/sys/fs/bpf/xkeep/test"
		if err := ensureBPFFS(dir); err != nil {
			return err
		}
		if !onBPFFS(dir) {
			return errors.New("ensureBPFFS returned but the directory is not on bpffs")
		}
		return nil
	})
}

func TestPinDirMustBeOnBPFFS(t *testing.T) {
	testnet.RequireRoot(t)
	_, err := New(Options{PinDir: filepath.Join(t.TempDir(), "pins")})
	if err == nil || !strings.Contains(err.Error(), "is not on a bpf filesystem (mount one: mount -t bpf bpf DIR)") {
		t.Errorf("pin dir on tmpfs: %v", err)
	}
}

// TestIncompatiblePinsAreReplaced: a daemon built with other map sizes
// starts with fresh maps instead of failing.
func TestIncompatiblePinsAreReplaced(t *testing.T) {
	testnet.RequireRoot(t)
	dir := filepath.Join(testnet.PrivateBPFFS(t), "xkeep")
	first, err := New(Options{PinDir: dir, SweepInterval: -1, FlowTableSize: 1 << 12, MaxBackends: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	second, err := New(Options{PinDir: dir, SweepInterval: -1, FlowTableSize: 1 << 13, MaxBackends: 1 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("new over pins of another size: %v", err)
	}
	if !strings.Contains(logs.String(), "pinned maps do not fit this build") {
		t.Errorf("no warning about replaced maps:\n%s", logs.String())
	}
	if err := second.Apply(dataplane.DesiredState{}); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins left after Close: %v", err)
	}
}

// TestPinDirIsOneDaemonsAtATime: a second dataplane on the same pin
// directory is refused while the first is open, and adopts the pins once
// the first has released them.
func TestPinDirIsOneDaemonsAtATime(t *testing.T) {
	testnet.RequireRoot(t)
	dir := filepath.Join(testnet.PrivateBPFFS(t), "xkeep")
	opts := Options{PinDir: dir, SweepInterval: -1, FlowTableSize: 1 << 12, MaxBackends: 1 << 10}
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "is in use by another xkeep (give each daemon its own --pin-dir)") {
		t.Fatalf("second dataplane on the same pins: %v", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := New(opts)
	if err != nil {
		t.Fatalf("after the first released the pins: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}
