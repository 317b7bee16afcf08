package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// findShared returns /work/shared (the seed, keepalived's samples and
// manual), found next to the repository root; XKEEP_SHARED overrides it.
func findShared() (string, error) {
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

// sharedDir returns the shared fixtures directory or skips the test, saying
// why, when it is not there. In CI (XKEEP_CI set) it fails instead.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := findShared()
	if err != nil {
		if os.Getenv("XKEEP_CI") != "" {
			t.Fatalf("in CI: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return dir
}

func globT(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

// configIDs gives the files whose @id lines need a config id the ids to
// read them with (the file says so in its first line).
var configIDs = map[string][]string{
	"keepalived.conf.conditional_conf": {"high", "low"},
	"node.conf":                        {"main", "backup", ""},
}

func loadValid(t *testing.T, file string, opts LoadOptions) *Config {
	t.Helper()
	cfg, diags, err := Load(file, opts)
	for _, d := range diags {
		t.Log(d)
	}
	if err != nil {
		t.Fatalf("Load(%s, id %q): %v", file, opts.ConfigID, err)
	}
	for _, d := range diags {
		if !d.Pos.IsValid() || d.Pos.File == "" {
			t.Errorf("diagnostic without a position: %v", d)
		}
	}
	return cfg
}

// TestSharedConfigsAreValid reads every seed configuration and every
// keepalived sample: each must load without errors (warnings are listed).
func TestSharedConfigsAreValid(t *testing.T) {
	shared := sharedDir(t)
	files := append(globT(t, filepath.Join(shared, "seed", "*.conf")),
		globT(t, filepath.Join(shared, "corpus", "keepalived-samples", "*"))...)
	for _, file := range files {
		ids, ok := configIDs[filepath.Base(file)]
		if !ok {
			ids = []string{""}
		}
		for _, id := range ids {
			for _, dp := range []Dataplane{DataplaneXDP, DataplaneIPVS} {
				t.Run(filepath.Base(file)+"/"+id+"/"+string(dp), func(t *testing.T) {
					cfg := loadValid(t, file, LoadOptions{ConfigID: id, Dataplane: dp})
					if len(cfg.Instances)+len(cfg.VirtualServers) == 0 {
						t.Error("no vrrp_instance and no virtual_server read")
					}
				})
			}
		}
	}
}

// TestTestdataConfigsAreValid reads the configurations xkeep's own tests
// wrote (testdata/*/*.conf): warning-free, except testdata/adjusted (values
// keepalived adjusts, with warnings) and testdata/invalid (errors).
func TestTestdataConfigsAreValid(t *testing.T) {
	for _, file := range globT(t, filepath.Join("testdata", "*", "*.conf")) {
		switch filepath.Base(filepath.Dir(file)) {
		case "invalid":
			continue
		case "adjusted":
			t.Run(file, func(t *testing.T) { loadValid(t, file, LoadOptions{}) })
			continue
		}
		ids, ok := configIDs[filepath.Base(file)]
		if !ok {
			ids = []string{""}
		}
		for _, id := range ids {
			t.Run(file+"/"+id, func(t *testing.T) {
				cfg, diags, err := Load(file, LoadOptions{ConfigID: id, Strict: true})
				if err != nil {
					t.Fatalf("testdata must be warning-free, even with Strict:\n%v", err)
				}
				if len(diags) != 0 {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				if len(cfg.Instances)+len(cfg.VirtualServers) == 0 {
					t.Error("no vrrp_instance and no virtual_server read")
				}
			})
		}
	}
	t.Run("invalid", func(t *testing.T) {
		for _, file := range globT(t, filepath.Join("testdata", "invalid", "*.conf")) {
			if _, _, err := Load(file, LoadOptions{}); err == nil {
				t.Errorf("%s: loaded without errors", file)
			}
		}
	})
}

// TestSeedModel checks the seed's model field by field, for the seed itself
// and for the copy in testdata written in its shape.
func TestSeedModel(t *testing.T) {
	type seedCase struct {
		file   string
		master bool
	}
	var cases []seedCase
	for _, f := range []string{"master.conf", "backup.conf"} {
		cases = append(cases, seedCase{filepath.Join("testdata", "seed", f), f == "master.conf"})
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) { checkSeedModel(t, c.file, c.master, c.master) })
	}
	t.Run("shared", func(t *testing.T) {
		shared := sharedDir(t)
		for _, f := range []string{"master.conf", "backup.conf", "master-lvs.conf", "backup-lvs.conf"} {
			file := filepath.Join(shared, "seed", f)
			master := f == "master.conf" || f == "master-lvs.conf"
			withScript := f == "master.conf"
			t.Run(f, func(t *testing.T) { checkSeedModel(t, file, master, withScript) })
		}
	})
}

func checkSeedModel(t *testing.T, file string, master, withScript bool) {
	cfg := loadValid(t, file, LoadOptions{Strict: true})

	wantRouter, wantState, wantPrio := "lb02", StateBackup, 90
	if master {
		wantRouter, wantState, wantPrio = "lb01", StateMaster, 100
	}
	if cfg.Global.RouterID != wantRouter {
		t.Errorf("router_id = %q, want %q", cfg.Global.RouterID, wantRouter)
	}

	// vrrp_script httpd_check (master.conf only).
	if withScript {
		if len(cfg.Scripts) != 1 {
			t.Fatalf("vrrp_scripts = %d, want 1", len(cfg.Scripts))
		}
		s := cfg.Scripts[0]
		if s.Name != "httpd_check" || s.Script == nil || s.Script.Cmd != "/scripts/check_h.sh" ||
			!slices.Equal(s.Script.Args, []string{"/scripts/check_h.sh"}) {
			t.Errorf("vrrp_script = %+v, script %+v", s, s.Script)
		}
		if s.Interval != time.Second || s.Timeout != time.Second || s.Weight != -20 || s.Reverse ||
			s.Rise != 1 || s.Fall != 1 || s.InitFail {
			t.Errorf("vrrp_script timing = interval %v timeout %v weight %d rise %d fall %d", s.Interval, s.Timeout, s.Weight, s.Rise, s.Fall)
		}
		// "vrrp_script httpd_check{" has its brace glued to the name; the
		// script line ends in a tab and a UTF-8 comment.
		if want := (Pos{File: file, Line: 7, Col: 1}); s.Pos != want {
			t.Errorf("vrrp_script at %v, want %v", s.Pos, want)
		}
		if want := (Pos{File: file, Line: 8, Col: 12}); s.Script.Pos != want {
			t.Errorf("script at %v, want %v", s.Script.Pos, want)
		}
	} else if len(cfg.Scripts) != 0 {
		t.Errorf("vrrp_scripts = %d, want 0", len(cfg.Scripts))
	}

	// vrrp_instance VI_1.
	if len(cfg.Instances) != 1 {
		t.Fatalf("vrrp_instances = %d, want 1", len(cfg.Instances))
	}
	in := cfg.Instances[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", in.Name, "VI_1"},
		{"state", in.State, wantState},
		{"interface", in.Interface, "ens160"},
		{"virtual_router_id", in.VRID, 51},
		{"priority", in.Priority, wantPrio},
		{"advert_int", in.AdvertInterval, time.Second},
		{"version", in.Version, 2},
		{"family", in.Family, IPv4},
		{"auth", *in.Auth, Authentication{Type: AuthPass, Pass: "1", Pos: in.Auth.Pos}},
		{"vips", len(in.VIPs), 1},
		{"vip", in.VIPs[0].Prefix, netip.MustParsePrefix("192.168.8.100/32")},
		{"vip dev", in.VIPs[0].Dev, ""},
		{"nopreempt", in.Nopreempt, false},
		{"accept", in.Accept, true},
		{"garp_master_delay", in.GarpMasterDelay, 5 * time.Second},
		{"garp_master_repeat", in.GarpMasterRepeat, 5},
		{"garp_master_refresh", in.GarpMasterRefresh, time.Duration(0)},
		{"down_timer_adverts", in.DownTimerAdverts, 3},
		{"unicast", in.Unicast(), false},
		{"track_interface", len(in.TrackInterfaces), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("VI_1 %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if withScript {
		if len(in.TrackScripts) != 1 || in.TrackScripts[0].Name != "httpd_check" || in.TrackScripts[0].Weight != -20 || in.TrackScripts[0].WeightSet {
			t.Errorf("track_script = %+v, want httpd_check with the script's weight -20", in.TrackScripts)
		}
	} else if len(in.TrackScripts) != 0 {
		t.Errorf("track_script = %+v, want none", in.TrackScripts)
	}
	if filepath.Base(file) == "master.conf" || filepath.Base(file) == "backup.conf" {
		for _, n := range []struct {
			c    *Command
			role string
		}{{in.Notify.Master, "master"}, {in.Notify.Backup, "backup"}} {
			want := []string{"/scripts/notify.sh", n.role, "192.168.8.100"}
			if n.c == nil || !slices.Equal(n.c.Args, want) {
				t.Errorf("notify_%s = %+v, want args %q", n.role, n.c, want)
			}
		}
		if in.Notify.Fault != nil || in.Notify.Any != nil {
			t.Errorf("unexpected notify scripts %+v", in.Notify)
		}
	}

	// virtual_server 192.168.8.100 80.
	if len(cfg.VirtualServers) != 1 {
		t.Fatalf("virtual_servers = %d, want 1", len(cfg.VirtualServers))
	}
	vs := cfg.VirtualServers[0]
	vsChecks := []struct {
		name      string
		got, want any
	}{
		{"addr", vs.Addr, netip.MustParseAddr("192.168.8.100")},
		{"port", vs.Port, uint16(80)},
		{"delay_loop", vs.DelayLoop, 6 * time.Second},
		{"lb_algo", vs.LBAlgo, "rr"},
		{"lb_kind", vs.LBKind, LBKindDR},
		{"persistence_timeout", vs.PersistenceTimeout, 50 * time.Second},
		{"persistence_granularity", vs.PersistenceGranularity, 0},
		{"protocol", vs.Protocol, TCP},
		{"family", vs.Family, IPv4},
		{"quorum", vs.Quorum, 1},
		{"hysteresis", vs.Hysteresis, 0},
		{"sorry_server", vs.SorryServer == nil, true},
		{"real_servers", len(vs.RealServers), 2},
		{"key", vs.Key(), "192.168.8.100:80 TCP"},
	}
	for _, c := range vsChecks {
		if c.got != c.want {
			t.Errorf("virtual_server %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for i, addr := range []string{"192.168.8.130", "192.168.8.131"} {
		rs := vs.RealServers[i]
		if rs.Addr != netip.MustParseAddr(addr) || rs.Port != 80 || rs.Weight != 1 || rs.LBKind != LBKindDR ||
			rs.InhibitOnFailure || rs.DelayLoop != 6*time.Second {
			t.Errorf("real_server %d = %+v", i, rs)
		}
		if len(rs.Checkers) != 1 {
			t.Fatalf("real_server %s checkers = %d, want 1", addr, len(rs.Checkers))
		}
		c := rs.Checkers[0]
		chk := []struct {
			name      string
			got, want any
		}{
			{"type", c.Type, TCPCheck},
			{"target", c.Target, netip.AddrPortFrom(netip.MustParseAddr(addr), 80)},
			{"connect_timeout", c.ConnectTimeout, 3 * time.Second},
			// nb_get_retry is retry's old name.
			{"retry", c.Retry, 3},
			{"retry explicit", c.Explicit.Has("nb_get_retry"), true},
			{"delay_before_retry", c.DelayBeforeRetry, 3 * time.Second},
			{"delay_loop", c.DelayLoop, 6 * time.Second},
			{"warmup", c.Warmup, 6 * time.Second},
		}
		for _, x := range chk {
			if x.got != x.want {
				t.Errorf("real_server %s TCP_CHECK %s = %v, want %v", addr, x.name, x.got, x.want)
			}
		}
	}
}
