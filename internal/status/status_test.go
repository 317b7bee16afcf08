package status

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Sample is a snapshot in the seed's shape, shared by this package's tests.
func sample() Snapshot {
	return Snapshot{
		Dataplane: "xdp",
		Config:    Config{Path: "/etc/keepalived/keepalived.conf", Reloads: 1, LastReloadOK: false, LastReloadError: "master.conf:12:5: unknown lb_algo"},
		Instances: []Instance{{
			Name: "VI_1", Interface: "eth0", VRID: 51, Version: 2, State: StateMaster,
			Priority: 100, EffectivePriority: 80,
			Master:   netip.MustParseAddr("192.168.8.130"),
			VIPs:     []netip.Addr{netip.MustParseAddr("192.168.8.100")},
			Counters: VRRPCounters{AdvertsSent: 10, ReceiveErrors: map[string]uint64{"auth": 2, "ttl": 1}},
		}},
		Services: []Service{{
			Addr: netip.MustParseAddr("192.168.8.100"), Port: 80, Protocol: "TCP",
			Scheduler: "rr", Forward: "DR", Persistence: 50 * time.Second, Active: true, QuorumUp: true,
			Packets: 30, Bytes: 3000, NewFlows: 3,
			Backends: []Backend{
				{Addr: netip.MustParseAddr("192.168.8.130"), Port: 80, Weight: 1, EffectiveWeight: 1, Healthy: true, State: "up", Packets: 20},
				{Addr: netip.MustParseAddr("192.168.8.131"), Port: 80, Weight: 1, EffectiveWeight: 0, Healthy: false, State: "down", Packets: 10},
			},
		}},
		Scripts:       []Script{{Name: "chk_http", OK: true}, {Name: "chk_disk", OK: false}},
		TrackFiles:    []TrackFile{{Name: "maint", Value: 1}},
		PacketReasons: map[string]uint64{"tx": 30, "pass_not_vip": 7},
	}
}

func TestRenderShowsInstancesAndServicesLikeIpvsadm(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"last reload", "FAILED: master.conf:12:5: unknown lb_algo",
		"VI_1", "MASTER", "100", "80", "192.168.8.130", "192.168.8.100",
		"TCP 192.168.8.100:80", "persistent 50,served",
		"-> 192.168.8.130:80", "Route", "-> 192.168.8.131:80", "0/1", "DOWN",
		"pass_not_vip", "vrrp_script: chk_http ok, chk_disk FAILING", "track_file: maint 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Receive errors are summed per instance: auth 2 + ttl 1.
	if !regexpLine(out, "VI_1", "3") {
		t.Errorf("instance line does not show 3 receive errors:\n%s", out)
	}
}

func regexpLine(out, prefix, suffix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) && strings.HasSuffix(strings.TrimSpace(line), suffix) {
			return true
		}
	}
	return false
}

func TestStateNumberMatchesKeepalived(t *testing.T) {
	for state, want := range map[string]int{StateInit: 0, StateBackup: 1, StateMaster: 2, StateFault: 3, "bogus": -1} {
		if got := StateNumber(state); got != want {
			t.Errorf("StateNumber(%q) = %d, want %d", state, got, want)
		}
	}
}

func TestRenderShowsProblems(t *testing.T) {
	s := sample()
	s.Instances[0].State = StateFault
	s.Instances[0].FaultReasons = []string{"track_interface eth1 down"}
	s.Services[0].Instances = []string{"VI_1"}
	s.Config.Warnings = []string{"a.conf:1:1: warning: x", "a.conf:2:1: warning: y"}
	s.Apply = Apply{Applies: 5, Failures: 2, LastError: "xdp apply: service TCP 192.168.8.100:80: lb_algo \"lblc\" not supported"}
	s.VRRPDropped = map[string]uint64{"vrid": 4}
	s.PacketReasons = map[string]uint64{"verdict_tx": 30, "pass_vlan_mismatch": 0}
	s.Errors = []string{"dataplane counters: closed"}
	var buf bytes.Buffer
	if err := Render(&buf, s); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"fault: track_interface eth1 down", "configuration warnings: 2",
		"dataplane apply FAILED (2 of 5, retrying): xdp apply", "dropped before matching an instance: vrid 4",
		"persistent 50,served,VI_1", "verdict_tx", "error: dataplane counters: closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pass_vlan_mismatch") {
		t.Errorf("zero verdict counters shown:\n%s", out)
	}
}
