package daemon

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/packet"
	"github.com/xkeep/xkeep/vrrp/vrrptest"
)

const seedLike = `
global_defs {
   router_id lb01
   enable_script_security
}
vrrp_script httpd_check {
    script "/scripts/check_h.sh"
    interval 2
    weight -20
    fall 3
}
vrrp_instance VI_1 {
    state MASTER
    interface ens160
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1
    }
    virtual_ipaddress {
        192.168.8.100
        192.168.8.101/24 dev ens192 label ens192:1 scope link
    }
    virtual_ipaddress_excluded {
        192.168.9.1
    }
    unicast_src_ip 192.168.8.130
    unicast_peer {
        192.168.8.131
    }
    track_script {
        httpd_check
    }
    track_interface {
        eth9 weight 10 reverse
    }
    notify_master "/scripts/notify.sh master 192.168.8.100"
    notify "/scripts/all.sh"
}
vrrp_instance VI_6 {
    interface ens160
    virtual_router_id 52
    priority 200
    advert_int 0.05
    v3_checksum_as_v2
    nopreempt
    virtual_ipaddress {
        fe80::100/64
    }
}
`

func TestVRRPConfigTranslatesTheModel(t *testing.T) {
	cfg, _, err := config.Parse("keepalived.conf", []byte(seedLike), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, warns, err := VRRPConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	in := v.Instances[0]
	want := vrrp.InstanceConfig{
		Name: "VI_1", Interface: "ens160", VRID: 51, Version: 2, Priority: 100, AdvertInterval: time.Second,
		StartAsMaster: true, AuthType: packet.AuthPass, AuthPass: "1",
		VIPs: []vrrp.VIP{{Prefix: netip.MustParsePrefix("192.168.8.100/32")},
			{Prefix: netip.MustParsePrefix("192.168.8.101/24"), Dev: "ens192", Label: "ens192:1", Scope: 253}},
		ExcludedVIPs: []vrrp.VIP{{Prefix: netip.MustParsePrefix("192.168.9.1/32")}},
		SourceAddr:   netip.MustParseAddr("192.168.8.130"), UnicastPeers: []netip.Addr{netip.MustParseAddr("192.168.8.131")},
		UnicastTTL: 255,
		// keepalived's defaults: unicast adverts from any source, the
		// IPv4 group (unused by a unicast instance), 3 adverts to master
		// down, lower-priority GARPs as the master's.
		UnicastAnySource: true,
		McastGroup:       netip.MustParseAddr("224.0.0.18"),
		DownTimerAdverts: 3,
		GARP: vrrp.GARPConfig{MasterRepeat: 5, MasterDelay: 5 * time.Second, MasterRefreshRepeat: 1,
			LowerPrioRepeat: 5, LowerPrioDelay: 5 * time.Second},
		TrackInterfaces: []vrrp.TrackInterface{{Name: "eth9", Weight: 10, Reverse: true}},
		TrackScripts:    []vrrp.TrackScript{{Name: "httpd_check", Weight: -20}},
		Notify:          vrrp.NotifyConfig{Master: "/scripts/notify.sh master 192.168.8.100", Any: "/scripts/all.sh"},
	}
	if diff := compare(in, want); diff != "" {
		t.Errorf("VI_1: %s", diff)
	}
	if s := v.Scripts[0]; s.Name != "httpd_check" || s.Command != "/scripts/check_h.sh" || s.Interval != 2*time.Second || s.Fall != 3 || s.Rise != 1 {
		t.Errorf("script %+v", s)
	}
	v6 := v.Instances[1]
	if v6.Version != 3 || v6.AdvertInterval != 50*time.Millisecond || !v6.NoPreempt || v6.Checksum != packet.MessageOnly || !v6.IsIPv6() {
		t.Errorf("VI_6 %+v", v6)
	}
}

func compare(got, want vrrp.InstanceConfig) string {
	g, w := strings.ReplaceAll(strings.TrimSpace(sprint(got)), " ", "\n"), strings.ReplaceAll(strings.TrimSpace(sprint(want)), " ", "\n")
	if g == w {
		return ""
	}
	gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
	var diff []string
	for i := range max(len(gl), len(wl)) {
		var a, b string
		if i < len(gl) {
			a = gl[i]
		}
		if i < len(wl) {
			b = wl[i]
		}
		if a != b {
			diff = append(diff, "got "+a+" want "+b)
		}
	}
	return strings.Join(diff, "; ")
}

func sprint(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmtV(v), "\n", " ")) }

func TestVRRPConfigRejectsAH(t *testing.T) {
	src := strings.Replace(seedLike, "auth_type PASS", "auth_type AH", 1)
	cfg, _, err := config.Parse("keepalived.conf", []byte(src), config.LoadOptions{})
	if err != nil {
		t.Skipf("config rejects AH itself: %v", err)
	}
	if _, _, err := VRRPConfig(cfg); err == nil || !strings.Contains(err.Error(), "auth_type AH is not supported") || !strings.Contains(err.Error(), "keepalived.conf:") {
		t.Fatalf("err = %v", err)
	}
}

// TestDaemonRunsAndReloads runs the daemon on the vrrptest fakes (no
// root): the instance becomes master, a reload adds one and keeps the
// first, a broken file is rejected and the running config stays.
func TestDaemonRunsAndReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inst := func(name string, vrid int, vip string) string {
		return "vrrp_instance " + name + " {\n interface eth0\n virtual_router_id " + strconvI(vrid) +
			"\n priority 255\n advert_int 1\n virtual_ipaddress {\n  " + vip + "\n }\n}\n"
	}
	write(inst("VI_1", 1, "10.0.0.100"))
	clock := vrrptest.NewClock(time.Unix(0, 0))
	host := (&vrrptest.Segment{}).NewHost(netip.MustParseAddr("10.0.0.1"))
	d, err := New(Options{ConfigPath: path, VRRPDeps: func(func() vrrp.ScriptSecurity) vrrp.Deps { return host.Deps(clock, &vrrptest.Scripts{}) }})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan vrrp.StateChanged, 10)
	d.OnStateChange(func(sc vrrp.StateChanged) { changes <- sc })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	if sc := <-changes; sc.Instance != "VI_1" || sc.To != vrrp.StateMaster {
		t.Fatalf("first change %+v", sc)
	}
	write(inst("VI_1", 1, "10.0.0.100") + inst("VI_2", 2, "10.0.0.200"))
	if _, err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if sc := <-changes; sc.Instance != "VI_2" || sc.To != vrrp.StateMaster {
		t.Fatalf("after reload %+v", sc)
	}
	if got := host.VIPs(); !slices.Equal(got, []string{"10.0.0.100/32", "10.0.0.200/32"}) {
		t.Fatalf("VIPs %v", got)
	}
	// The VRRP thread's settings apply at the next start, as keepalived's
	// do: a reload says so and changes nothing else.
	write("global_defs {\n vrrp_rt_priority 10\n}\n" + inst("VI_1", 1, "10.0.0.100") + inst("VI_2", 2, "10.0.0.200"))
	warns, err := d.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ":2:2: warning: vrrp_rt_priority changed; it takes effect when xkeep restarts"; !slices.Contains(warns, want) {
		t.Fatalf("reload warnings %q, want %q", warns, want)
	}
	write("vrrp_instance VI_1 {\n virtual_router_id 300\n}\n")
	if _, err := d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "reload rejected") {
		t.Fatalf("bad reload: %v", err)
	}
	if st := d.VRRPStatus(); len(st) != 2 || st[0].State != vrrp.StateMaster || st[1].State != vrrp.StateMaster {
		t.Fatalf("status after rejected reload %+v", st)
	}
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := host.VIPs(); len(got) != 0 {
		t.Fatalf("VIPs left after stop: %v", got)
	}
}

func TestVRRPConfigTranslatesKeepalivedExtras(t *testing.T) {
	const conf = `
global_defs {
    vrrp_startup_delay 2
    vrrp_rt_priority 30
    vrrp_rlimit_rttime 5000
    vrrp_cpu_affinity 1
}
track_file maint {
    file /run/maint
    weight -5 reverse
    init_file 2 overwrite
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 7
    priority 100
    mcast_dst_ip 224.0.0.99
    down_timer_adverts 5
    higher_prio_send_advert
    garp_lower_prio_repeat 2
    garp_lower_prio_delay 10
    notify_master_rx_lower_pri /bin/true
    check_unicast_src
    track_file {
        maint weight 7
    }
    virtual_ipaddress {
        10.0.0.100
    }
}
`
	cfg, _, err := config.Parse("keepalived.conf", []byte(conf), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, warns, err := VRRPConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %q: every keyword here is implemented", warns)
	}
	if want := (vrrp.ThreadConfig{RealtimePriority: 30, RTTimeLimit: 5 * time.Millisecond, CPUs: []int{1}}); !reflect.DeepEqual(v.Thread, want) {
		t.Errorf("thread %+v, want %+v", v.Thread, want)
	}
	if want := []vrrp.FileConfig{{Name: "maint", Path: "/run/maint", Init: true, InitValue: 2, InitOverwrite: true}}; !slices.Equal(v.Files, want) {
		t.Errorf("files %+v, want %+v", v.Files, want)
	}
	// The instance's weight, the block's direction (keepalived's rule).
	if want := []vrrp.TrackFile{{Name: "maint", Weight: 7, Reverse: true}}; !slices.Equal(v.Instances[0].TrackFiles, want) {
		t.Errorf("track files %+v, want %+v", v.Instances[0].TrackFiles, want)
	}
	in := v.Instances[0]
	if v.StartupDelay != 2*time.Second || in.McastGroup != netip.MustParseAddr("224.0.0.99") ||
		in.DownTimerAdverts != 5 || !in.HigherPrioSendAdvert || in.GARP.LowerPrioRepeat != 2 ||
		in.GARP.LowerPrioDelay != 10*time.Second || in.Notify.MasterRxLowerPri != "/bin/true" || in.UnicastAnySource {
		t.Errorf("translated: startup delay %v, %+v", v.StartupDelay, in)
	}
}

// TestScriptSecurityFollowsConfigAndFlag: scripts anyone may change are
// refused by default, any a non-root user may change with
// enable_script_security, none with --allow-insecure-scripts; the VRRP
// engine and the health checker read the same policy, and a reload
// changes it for both.
func TestScriptSecurityFollowsConfigAndFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	write := func(global string) {
		conf := global + "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  10.0.0.100\n }\n}\n"
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host := (&vrrptest.Segment{}).NewHost(netip.MustParseAddr("10.0.0.1"))
	var engine func() vrrp.ScriptSecurity
	open := func(allow bool) *Daemon {
		d, err := New(Options{ConfigPath: path, AllowInsecureScripts: allow,
			VRRPDeps: func(security func() vrrp.ScriptSecurity) vrrp.Deps {
				engine = security
				return host.Deps(vrrptest.NewClock(time.Unix(0, 0)), &vrrptest.Scripts{})
			}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write("")
	d := open(false)
	if got := engine(); got != vrrp.RefuseWorldWritable {
		t.Errorf("default policy %v, want RefuseWorldWritable", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	write("global_defs {\n enable_script_security\n}\n")
	if _, err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := engine(); got != vrrp.RefuseNonRoot || d.scriptSecurity() != got {
		t.Errorf("after a reload with enable_script_security: engine %v, checker %v, want RefuseNonRoot", got, d.scriptSecurity())
	}
	if got := open(true).scriptSecurity(); got != vrrp.AllowAllScripts {
		t.Errorf("--allow-insecure-scripts: %v, want AllowAllScripts", got)
	}
}

// A sync group's track_file applies to every member, as its track_script
// does.
func TestVRRPConfigGivesSyncGroupTrackFilesToMembers(t *testing.T) {
	const conf = `
track_file maint {
    file /run/maint
    weight 0
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress { 10.0.0.1 }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress { 10.0.0.2 }
}
vrrp_sync_group G {
    group { VI_1 VI_2 }
    track_file { maint }
}
`
	cfg, _, err := config.Parse("keepalived.conf", []byte(conf), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := VRRPConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range v.Instances {
		if want := []vrrp.TrackFile{{Name: "maint"}}; !slices.Equal(in.TrackFiles, want) {
			t.Errorf("%s track files %+v, want %+v", in.Name, in.TrackFiles, want)
		}
	}
}
