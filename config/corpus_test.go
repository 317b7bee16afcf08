package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

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
	shared := testnet.SharedDir(t)
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
		shared := testnet.SharedDir(t)
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

// TestSampleModels spot-checks what keepalived's samples resolve to, one
// feature per sample.
func TestSampleModels(t *testing.T) {
	dir := filepath.Join(testnet.SharedDir(t), "corpus", "keepalived-samples")
	load := func(t *testing.T, name string) *Config {
		return loadValid(t, filepath.Join(dir, "keepalived.conf."+name), LoadOptions{Dataplane: DataplaneIPVS})
	}
	ap := netip.MustParseAddrPort
	t.Run("virtual_server_group", func(t *testing.T) {
		c := load(t, "virtual_server_group")
		g := c.VirtualServerGroup("VSG_1")
		if g == nil || len(g.Entries) != 6 || c.VirtualServers[0].Group != "VSG_1" {
			t.Fatalf("group = %+v", g)
		}
		if e := g.Entries[3]; e.First.String() != "192.168.200.3" || e.Last.String() != "192.168.200.10" || e.Port != 80 {
			t.Errorf("range entry = %+v", e)
		}
		if g.Entries[4].FWMark != 1 || g.Entries[5].FWMark != 2 {
			t.Errorf("fwmark entries = %+v", g.Entries[4:])
		}
		u := c.VirtualServers[0].RealServers[0].Checkers[0].HTTP.URLs[0]
		if u.Path != "/testurl3/test.jsp" || u.Digest != "640205b7b0fc66c1ea91c463fac6334d" || !slices.Equal(u.StatusCodes, []StatusRange{{200, 299}}) {
			t.Errorf("url = %+v", u)
		}
	})
	t.Run("status_code", func(t *testing.T) {
		h := load(t, "status_code").VirtualServers[0].RealServers[0].Checkers[0].HTTP
		want := []StatusRange{{200, 299}, {400, 499}, {503, 503}, {505, 505}}
		if len(h.URLs) != 2 || !slices.Equal(h.URLs[0].StatusCodes, want) || !slices.Equal(h.URLs[1].StatusCodes, []StatusRange{{200, 200}}) {
			t.Errorf("urls = %+v", h.URLs)
		}
	})
	t.Run("SMTP_CHECK", func(t *testing.T) {
		vs := load(t, "SMTP_CHECK").VirtualServers[0]
		if vs.DelayLoop != 60*time.Second || len(vs.RealServers) != 3 {
			t.Fatalf("virtual server = %+v", vs)
		}
		c := vs.RealServers[2].Checkers[0]
		hosts := c.SMTP.Hosts
		if c.SMTP.HeloName != "foo.bar.com" || c.Retry != 2 || c.DelayBeforeRetry != 5*time.Second || c.ConnectTimeout != 10*time.Second || len(hosts) != 3 {
			t.Fatalf("SMTP_CHECK = %+v %+v", c, c.SMTP)
		}
		if hosts[0].Target != ap("172.16.1.12:25") || hosts[0].BindTo.String() != "172.16.1.2" ||
			hosts[1].Target != ap("192.168.155.11:25") || hosts[2].Target != ap("64.233.167.100:587") {
			t.Errorf("hosts = %+v", hosts)
		}
	})
	t.Run("IPv6", func(t *testing.T) {
		vs := load(t, "IPv6").VirtualServers[0]
		c := vs.RealServers[0].Checkers[0]
		if vs.Family != IPv6 || vs.Key() != "[ae00::1]:80 TCP" || c.Type != SMTPCheck || c.Target != ap("[ae00::10]:25") || c.Retry != 3 {
			t.Errorf("virtual server %s, checker %+v", vs.Key(), c)
		}
		if g := load(t, "IPv6").VirtualServerGroup("IPv6_group"); g == nil || g.Entries[0].Last.String() != "ae00::9" {
			t.Errorf("group = %+v", g)
		}
	})
	t.Run("misc_check_arg", func(t *testing.T) {
		m := load(t, "misc_check_arg").VirtualServers[0].RealServers[0].Checkers[0]
		if m.Type != MiscCheck || !slices.Equal(m.Misc.Path.Args, []string{"/usr/local/bin/script.sh", "arg1", "arg2"}) ||
			m.Retry != 0 || m.Misc.Timeout != 6*time.Second {
			t.Errorf("MISC_CHECK = %+v %+v", m, m.Misc.Path)
		}
	})
	t.Run("quorum", func(t *testing.T) {
		vs := load(t, "quorum").VirtualServers[0]
		if vs.Quorum != 7 || vs.Hysteresis != 2 || !vs.Alpha || !vs.Omega || vs.LBAlgo != "wrr" ||
			vs.PersistenceTimeout != 900*time.Second || vs.QuorumUp.Cmd != "/usr/local/sbin/quorum-up.sh" || len(vs.RealServers) != 10 {
			t.Errorf("virtual server = %+v", vs)
		}
		if rs := vs.RealServers[9]; rs.Port != 8080 || rs.Checkers[0].Target != ap("10.0.0.10:80") || !rs.Alpha || !rs.Checkers[0].Alpha {
			t.Errorf("real server = %+v", rs)
		}
	})
	t.Run("fwmark", func(t *testing.T) {
		vs := load(t, "fwmark").VirtualServers[0]
		if vs.FWMark != 1 || vs.Key() != "fwmark 1" || vs.RealServers[0].Port != 0 || vs.RealServers[0].Checkers[0].Target != ap("192.168.201.100:80") {
			t.Errorf("virtual server = %+v", vs)
		}
	})
	t.Run("inhibit and virtualhost", func(t *testing.T) {
		if rs := load(t, "inhibit").VirtualServers[0].RealServers[0]; !rs.InhibitOnFailure {
			t.Errorf("inhibit_on_failure not set: %+v", rs)
		}
		vs := load(t, "virtualhost").VirtualServers[0]
		if c := vs.RealServers[0].Checkers[0]; vs.VirtualHost != "www.firewall.loc" || c.Type != SSLGet || c.HTTP.VirtualHost != "www.firewall.loc" {
			t.Errorf("virtualhost = %q, checker %+v", vs.VirtualHost, c.HTTP)
		}
	})
	t.Run("PING_CHECK and UDP_CHECK", func(t *testing.T) {
		vs := load(t, "PING_CHECK").VirtualServers[0]
		if c := vs.RealServers[0].Checkers[0]; vs.Protocol != UDP || c.Type != PingCheck || c.Retry != 4 {
			t.Errorf("PING_CHECK = %+v", c)
		}
		if c := load(t, "UDP_CHECK").VirtualServers[0].RealServers[0].Checkers[0]; c.Type != UDPCheck || c.UDP.RequireReply || c.Target != ap("192.168.200.6:1358") {
			t.Errorf("UDP_CHECK = %+v %+v", c, c.UDP)
		}
	})
	t.Run("vrrp.localcheck", func(t *testing.T) {
		c := load(t, "vrrp.localcheck")
		in := c.Instance("VI_1")
		wantIf := []TrackInterface{{Name: "eth1", Weight: 2}, {Name: "eth2", Weight: -2}, {Name: "eth3"}}
		for i, ti := range in.TrackInterfaces {
			ti.Pos = Pos{}
			if i >= len(wantIf) || ti != wantIf[i] {
				t.Errorf("track_interface %d = %+v", i, ti)
			}
		}
		type ws struct {
			name string
			w    int
			set  bool
		}
		var got []ws
		for _, ts := range in.TrackScripts {
			got = append(got, ws{ts.Name, ts.Weight, ts.WeightSet})
		}
		want := []ws{{"chk_sshd", -4, false}, {"chk_haproxy", 2, true}, {"chk_http_port", -2, false}, {"chk_https_port", -2, false}, {"chk_smtp_port", -2, false}}
		if !slices.Equal(got, want) {
			t.Errorf("track_script = %+v, want %+v", got, want)
		}
		s := c.Script("chk_http_port")
		if s.Interval != time.Second || !slices.Equal(s.Script.Args, []string{"</dev/tcp/127.0.0.1/80"}) {
			t.Errorf("vrrp_script = %+v", s)
		}
		if in.VIPs[0].Prefix.String() != "192.168.200.18/25" {
			t.Errorf("vip = %v", in.VIPs[0].Prefix)
		}
	})
	t.Run("vrrp.sync", func(t *testing.T) {
		c := load(t, "vrrp.sync")
		g := c.SyncGroups[0]
		if g.Name != "G1" || len(g.Instances) != 7 || !slices.Equal(g.Notify.Backup.Args, []string{"/usr/local/bin/vrrp.back", "arg1", "arg2"}) {
			t.Errorf("sync group = %+v", g)
		}
		if c.Instance("VI_9").SyncGroup != "G1" || c.Instance("VI_3").SyncGroup != "G2" {
			t.Errorf("members: VI_9 in %q, VI_3 in %q", c.Instance("VI_9").SyncGroup, c.Instance("VI_3").SyncGroup)
		}
	})
	t.Run("default (vrrp_strict)", func(t *testing.T) {
		c := load(t, "default")
		in := c.Instances[0]
		if !c.Global.VRRPStrict || !in.StrictMode || in.Accept || in.Auth != nil || in.State != StateBackup ||
			!in.LowerPrioNoAdvert || in.GarpLowerPrioRepeat != 0 || !c.Global.VRRPSkipCheckAdvAddr {
			t.Errorf("strict instance = %+v", in)
		}
		if len(c.VirtualServers) != 3 || c.VirtualServers[1].SorryServer.Addr.String() != "192.168.200.200" || c.VirtualServers[1].SorryServer.Port != 1358 {
			t.Errorf("virtual servers = %+v", c.VirtualServers)
		}
	})
	t.Run("vrrp labels", func(t *testing.T) {
		vips := load(t, "vrrp").Instance("VI_1").VIPs
		if len(vips) != 4 || vips[3].Label != "eth0:1" || vips[3].Addr().String() != "192.168.200.18" {
			t.Errorf("vips = %+v", vips)
		}
	})
}

// TestTestdataModels checks the include, conditional and definition
// testdata resolve as keepalived resolves them.
func TestTestdataModels(t *testing.T) {
	t.Run("include", func(t *testing.T) {
		c := loadValid(t, "testdata/include/main.conf", LoadOptions{Strict: true})
		wantFiles := []string{
			"testdata/include/main.conf",
			"testdata/include/conf.d/10-scripts.conf",
			"testdata/include/conf.d/20-vi1.conf",
			"testdata/include/conf.d/vi1-vips.inc",
			"testdata/include/lvs/web.inc",
			"testdata/include/lvs/dns.inc",
		}
		if !slices.Equal(c.Files, wantFiles) {
			t.Errorf("files = %q, want %q", c.Files, wantFiles)
		}
		in := c.Instance("VI_1")
		if want := (Pos{File: "testdata/include/conf.d/vi1-vips.inc", Line: 2, Col: 5}); in.VIPs[0].Pos != want || in.VIPs[0].Label != "eth0:vip" {
			t.Errorf("vip %+v, want at %v", in.VIPs[0], want)
		}
		if in.TrackScripts[0].Weight != -30 || c.Script("chk_nginx").Fall != 2 {
			t.Errorf("track_script %+v", in.TrackScripts)
		}
		if len(c.VirtualServers) != 2 || c.VirtualServers[0].LBAlgo != "mh" || c.VirtualServers[1].Protocol != UDP {
			t.Errorf("virtual servers: %+v", c.VirtualServers)
		}
	})
	t.Run("conditional", func(t *testing.T) {
		for id, want := range map[string]struct {
			router, src string
			prio        int
			peers       []string
		}{
			"main":   {"main_router", "10.1.1.1", 200, []string{"10.1.1.2"}},
			"backup": {"backup_router", "10.1.1.2", 100, []string{"10.1.1.1"}},
			"":       {"", "invalid IP", 100, []string{"10.1.1.1", "10.1.1.2"}},
		} {
			c := loadValid(t, "testdata/conditional/node.conf", LoadOptions{ConfigID: id})
			in := c.Instances[0]
			var peers []string
			for _, p := range in.UnicastPeers {
				peers = append(peers, p.Addr.String())
			}
			if c.Global.RouterID != want.router || in.SrcIP.String() != want.src || in.Priority != want.prio || !slices.Equal(peers, want.peers) {
				t.Errorf("-i %q: router_id %q, src %v, priority %d, peers %q", id, c.Global.RouterID, in.SrcIP, in.Priority, peers)
			}
		}
	})
	t.Run("definitions", func(t *testing.T) {
		c := loadValid(t, "testdata/definitions/defs.conf", LoadOptions{Strict: true})
		var got []string
		for _, in := range c.Instances {
			got = append(got, fmt.Sprintf("%s %d %d %s %s", in.Name, in.VRID, in.Priority, in.Interface, in.VIPs[0].Prefix))
		}
		if want := []string{"VI_1 10 150 eth0 10.2.0.1/24", "VI_2 20 150 eth0 10.2.10.2/24"}; !slices.Equal(got, want) {
			t.Errorf("instances = %q, want %q", got, want)
		}
		got = nil
		for _, rs := range c.VirtualServers[0].RealServers {
			got = append(got, fmt.Sprintf("%s:%d w%d %v", rs.Addr, rs.Port, rs.Weight, rs.Checkers[0].ConnectTimeout))
		}
		if want := []string{"10.2.0.11:80 w11 2s", "10.2.0.12:80 w12 2s", "10.2.0.13:80 w13 2s"}; !slices.Equal(got, want) {
			t.Errorf("real servers = %q, want %q", got, want)
		}
	})
}

// TestVRRPProcessSettings reads keepalived's vrrp child settings, which
// xkeep applies to its VRRP thread.
func TestVRRPProcessSettings(t *testing.T) {
	src := conf("global_defs {", "    vrrp_rt_priority 50", "    vrrp_priority -10", "    vrrp_cpu_affinity 1 0 1",
		"    vrrp_rlimit_rttime 20000", "    vrrp_no_swap", "}") + vi()
	c, diags, err := Parse("t.conf", []byte(src), LoadOptions{Strict: true})
	if err != nil {
		t.Fatalf("%v\n%v", err, diags)
	}
	g := c.Global
	if g.VRRPRealtimePriority != 50 || g.VRRPNice != -10 || !slices.Equal(g.VRRPCPUs, []int{1, 0}) ||
		g.VRRPRlimitRTTime != 20*time.Millisecond || !g.VRRPNoSwap {
		t.Errorf("global = rt %d nice %d cpus %v rttime %v no_swap %v", g.VRRPRealtimePriority, g.VRRPNice, g.VRRPCPUs, g.VRRPRlimitRTTime, g.VRRPNoSwap)
	}
	c, _, err = Parse("t.conf", []byte(vi()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Global; g.VRRPRealtimePriority != 0 || g.VRRPRlimitRTTime != 10*time.Millisecond || g.VRRPCPUs != nil {
		t.Errorf("defaults: rt %d rttime %v cpus %v", g.VRRPRealtimePriority, g.VRRPRlimitRTTime, g.VRRPCPUs)
	}
}

// TestTrackFiles reads track_file blocks and the instances' references to
// them: block defaults, the weight and direction an entry inherits or
// overrides, init_file, and the vrrp_track_file synonym.
func TestTrackFiles(t *testing.T) {
	src := conf(
		"track_file plain {",
		"    file \"/run/xkeep/plain\"",
		"}",
		"track_file weighted {",
		"    file relative/weighted",
		"    weight -20 reverse",
		"    init_file",
		"}",
		"track_file created {",
		"    file /run/xkeep/created",
		"    weight 0",
		"    init_file -7",
		"}",
		"vrrp_track_file overwritten {",
		"    file /run/xkeep/overwritten",
		"    init_file overwrite 3",
		"}",
	) + vi(
		"    track_file {",
		"        plain",
		"        weighted",
		"        created weight 5",
		"        overwritten weight 2 reverse",
		"    }",
	) + conf(
		"vrrp_instance VI_2 {",
		"    interface eth0",
		"    virtual_router_id 52",
		"    virtual_ipaddress { 192.168.1.11 }",
		"    track_file {",
		"        weighted weight 3",
		"        plain weight -4 noreverse",
		"    }",
		"    track_file {",
		"        overwritten",
		"    }",
		"}",
		"vrrp_instance VI_3 {",
		"    interface eth0",
		"    virtual_router_id 53",
		"    virtual_ipaddress { 192.168.1.12 }",
		"    track_file {",
		"        weighted weight 3 noreverse",
		"    }",
		"}",
	)
	c, diags, err := Parse("t.conf", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatalf("%v\n%v", err, diags)
	}
	if want := []string{`t.conf:14:1: warning: vrrp_track_file is deprecated (use track_file)`}; !slices.Equal(diagStrings(diags), want) {
		t.Errorf("diagnostics = %q, want %q", diagStrings(diags), want)
	}

	wantFiles := []TrackFile{
		{Name: "plain", Path: "/run/xkeep/plain", Weight: 1, Pos: Pos{File: "t.conf", Line: 1, Col: 1}},
		{Name: "weighted", Path: "relative/weighted", Weight: -20, Reverse: true, InitFile: true, Pos: Pos{File: "t.conf", Line: 4, Col: 1}},
		{Name: "created", Path: "/run/xkeep/created", Weight: 0, InitFile: true, InitValue: -7, Pos: Pos{File: "t.conf", Line: 9, Col: 1}},
		{Name: "overwritten", Path: "/run/xkeep/overwritten", Weight: 1, InitFile: true, InitValue: 3, InitOverwrite: true, Pos: Pos{File: "t.conf", Line: 14, Col: 1}},
	}
	if len(c.TrackFiles) != len(wantFiles) {
		t.Fatalf("%d track files, want %d", len(c.TrackFiles), len(wantFiles))
	}
	for i, want := range wantFiles {
		if got := *c.TrackFiles[i]; got != want {
			t.Errorf("track file %d = %+v, want %+v", i, got, want)
		}
		if c.TrackFile(want.Name) != c.TrackFiles[i] {
			t.Errorf("TrackFile(%q) does not find it", want.Name)
		}
	}
	if c.TrackFile("missing") != nil {
		t.Error("TrackFile(missing) is not nil")
	}

	refs := func(name string) []TrackFileRef {
		var out []TrackFileRef
		for _, r := range c.Instance(name).TrackFiles {
			r.Pos = Pos{}
			out = append(out, r)
		}
		return out
	}
	for _, tt := range []struct {
		instance string
		want     []TrackFileRef
	}{
		// The block's weight and direction, unless the entry writes a
		// weight; a weight alone keeps the block's direction.
		{"VI_1", []TrackFileRef{
			{Name: "plain", Weight: 1},
			{Name: "weighted", Weight: -20, Reverse: true},
			{Name: "created", Weight: 5},
			{Name: "overwritten", Weight: 2, Reverse: true},
		}},
		// Two track_file blocks add up; noreverse clears the block's reverse.
		{"VI_2", []TrackFileRef{
			{Name: "weighted", Weight: 3, Reverse: true},
			{Name: "plain", Weight: -4},
			{Name: "overwritten", Weight: 1},
		}},
		{"VI_3", []TrackFileRef{{Name: "weighted", Weight: 3}}},
	} {
		if got := refs(tt.instance); !slices.Equal(got, tt.want) {
			t.Errorf("%s track_file = %+v, want %+v", tt.instance, got, tt.want)
		}
	}
	if got, want := c.Instance("VI_2").TrackFiles[1].Pos, (Pos{File: "t.conf", Line: 35, Col: 9}); got != want {
		t.Errorf("VI_2 track_file plain at %v, want %v", got, want)
	}
}

// TestSyncGroupTrackFiles: a vrrp_sync_group's track_file block reads as
// an instance's does (the daemon gives it to every member).
func TestSyncGroupTrackFiles(t *testing.T) {
	src := conf("track_file maint {", "    file /run/maint", "    weight 0", "}") + vi() + conf(
		"vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 52", "    virtual_ipaddress { 192.168.1.11 }", "}",
		"vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_2", "    }", "    track_file {", "        maint", "    }", "}")
	c, diags, err := Parse("t.conf", []byte(src), LoadOptions{Strict: true})
	if err != nil {
		t.Fatalf("%v\n%v", err, diags)
	}
	want := []TrackFileRef{{Name: "maint", Weight: 0, Pos: Pos{File: "t.conf", Line: 21, Col: 9}}}
	if got := c.SyncGroups[0].TrackFiles; !slices.Equal(got, want) {
		t.Errorf("sync group track_file = %+v, want %+v", got, want)
	}
}
