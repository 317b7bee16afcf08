package vrrpsuite

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTrackFileFailover: the master follows a track_file (weight 0, the
// maintenance-flag idiom, created by init_file): writing 1 to it puts the
// master in FAULT and the backup takes the VIP; writing 0 back (by
// rename, as editors do) brings it back and it preempts.
func TestTrackFileFailover(t *testing.T) {
	l := newLab(t)
	a := l.host("a", "10.53.0.1")
	b := l.host("b", "10.53.0.2")
	vip := netip.MustParseAddr("10.53.0.100")
	const interval = 100 * time.Millisecond
	flag := filepath.Join(a.dir, "maintenance")
	confA := fmt.Sprintf("track_file maint {\n    file %q\n    weight 0\n    init_file 0\n}\n", flag) +
		strings.Replace(xkeepConf(150, 3, "0.1", vip.String()), "    virtual_ipaddress {", "    track_file {\n        maint\n    }\n    virtual_ipaddress {", 1)
	a.startXkeep(confA)
	b.startXkeep(xkeepConf(100, 3, "0.1", vip.String()))
	waitVIP(t, 3*interval+skew(150, interval)+2*time.Second, vip, a, b)
	if got, err := os.ReadFile(flag); err != nil || strings.TrimSpace(string(got)) != "0" {
		t.Fatalf("init_file: %q, %v; want 0", got, err)
	}

	if err := os.WriteFile(flag, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	took := waitVIP(t, 3*interval+skew(100, interval)+time.Second, vip, b, a)
	t.Logf("maintenance flag set: b holds the VIP after %v", took)
	// xkeep status shows the value and why the instance is in FAULT.
	snap, out := a.status()
	if len(snap.TrackFiles) != 1 || snap.TrackFiles[0].Name != "maint" || snap.TrackFiles[0].Value != 1 {
		t.Errorf("status track_files %+v, want maint 1", snap.TrackFiles)
	}
	if !strings.Contains(string(out), "track_file maint holds 1") {
		t.Errorf("status does not say why VI_1 is in FAULT:\n%s", out)
	}

	tmp := flag + ".new"
	if err := os.WriteFile(tmp, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, flag); err != nil {
		t.Fatal(err)
	}
	took = waitVIP(t, 3*interval+skew(150, interval)+time.Second, vip, a, b)
	t.Logf("maintenance flag cleared: a holds the VIP again after %v", took)
}
