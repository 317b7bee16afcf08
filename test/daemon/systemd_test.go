package daemontest

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotifications: with NOTIFY_SOCKET set, as under a
// Type=notify unit, xkeep says READY=1 once serving, RELOADING=1 (with
// MONOTONIC_USEC) then READY=1 around a reload, and STOPPING=1 on SIGTERM.
func TestSystemdNotifications(t *testing.T) {
	r := newRig(t)
	path := filepath.Join(r.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	next := func(want string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if got := string(buf[:n]); !strings.HasPrefix(got, want) {
			t.Fatalf("notification %q, want %s", got, want)
		}
	}
	x := r.startConf(conf{}.render(), []string{"NOTIFY_SOCKET=" + path})
	next("READY=1")
	x.waitServing(10 * time.Second)
	if err := x.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next("RELOADING=1\nMONOTONIC_USEC=")
	next("READY=1")
	x.signal(syscall.SIGTERM, 2*time.Second)
	next("STOPPING=1")
}
