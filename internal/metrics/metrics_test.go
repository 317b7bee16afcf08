package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xkeep/xkeep/internal/status"
)

type staticSource struct {
	snap status.Snapshot
	err  error
}

func (s staticSource) Snapshot(context.Context) (status.Snapshot, error) { return s.snap, s.err }

func seedSnapshot() status.Snapshot {
	return status.Snapshot{
		Instances: []status.Instance{{
			Name: "VI_1", Interface: "eth0", VRID: 51, State: status.StateMaster, Priority: 100, EffectivePriority: 100,
			VIPs:     []netip.Addr{netip.MustParseAddr("192.168.8.100")},
			Counters: status.VRRPCounters{AdvertsSent: 12, ReceiveErrors: map[string]uint64{"auth": 2}},
		}},
		Services: []status.Service{{
			Addr: netip.MustParseAddr("192.168.8.100"), Port: 80, Protocol: "TCP", Active: true, QuorumUp: true,
			Packets: 30, Bytes: 3000, NewFlows: 3,
			Backends: []status.Backend{{Addr: netip.MustParseAddr("192.168.8.130"), Port: 80, Weight: 1, EffectiveWeight: 1, Healthy: true, Packets: 20, Bytes: 2000, ActiveFlows: 2}},
		}},
		TrackFiles:    []status.TrackFile{{Name: "maint", Value: 1}},
		PacketReasons: map[string]uint64{"tx": 30},
	}
}

func TestCollectorExportsSnapshotUnderKeepalivedNames(t *testing.T) {
	c := NewCollector(staticSource{snap: seedSnapshot()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := `
# HELP xkeep_vrrp_state VRRP state per VIP: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's numbers).
# TYPE xkeep_vrrp_state gauge
xkeep_vrrp_state{iname="VI_1",intf="eth0",ip_address="192.168.8.100",vrid="51"} 2
# HELP xkeep_advertisements_sent_total VRRP adverts sent.
# TYPE xkeep_advertisements_sent_total counter
xkeep_advertisements_sent_total{iname="VI_1",intf="eth0",state="MASTER",vrid="51"} 12
# HELP xkeep_vrrp_receive_errors_total Received VRRP packets dropped, by reason.
# TYPE xkeep_vrrp_receive_errors_total counter
xkeep_vrrp_receive_errors_total{iname="VI_1",intf="eth0",reason="auth",vrid="51"} 2
# HELP xkeep_backend_packets_total Packets forwarded to a real server.
# TYPE xkeep_backend_packets_total counter
xkeep_backend_packets_total{backend="192.168.8.130:80",port="80",protocol="TCP",service="TCP 192.168.8.100:80",vip="192.168.8.100"} 20
# HELP xkeep_dataplane_packets_total Dataplane packets by verdict and pass/drop reason.
# TYPE xkeep_dataplane_packets_total counter
xkeep_dataplane_packets_total{reason="tx"} 30
# HELP xkeep_track_file_value The number a track_file's file holds, as last read.
# TYPE xkeep_track_file_value gauge
xkeep_track_file_value{name="maint"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"xkeep_vrrp_state", "xkeep_advertisements_sent_total", "xkeep_vrrp_receive_errors_total",
		"xkeep_backend_packets_total", "xkeep_dataplane_packets_total", "xkeep_track_file_value"); err != nil {
		t.Fatal(err)
	}
}

func TestCollectorSaysDownWhenSnapshotFails(t *testing.T) {
	c := NewCollector(staticSource{err: errors.New("daemon busy")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := testutil.ToFloat64(c); got != 0 {
		t.Fatalf("xkeep_up = %v, want 0", got)
	}
}

func TestHandlerServesMetricsFromOwnRegistry(t *testing.T) {
	c := NewCollector(staticSource{snap: seedSnapshot()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h, err := Handler(c)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"xkeep_up 1", "xkeep_service_packets_total{", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestCollectorExportsApplyReloadAndDrops(t *testing.T) {
	snap := seedSnapshot()
	snap.Apply = status.Apply{Applies: 7, Failures: 2, LastError: "xdp apply: boom"}
	snap.VRRPDropped = map[string]uint64{"vrid": 3}
	snap.Config = status.Config{Reloads: 2, ReloadFailures: 1, LastReloadOK: false, LastReloadDuration: 1500 * time.Microsecond,
		Warnings: []string{"a.conf:1:1: warning: x"}}
	snap.Services[0].Backends[0].Checks = []status.Check{{Type: "TCP_CHECK", OK: true, Latency: 2 * time.Millisecond, Probes: 10, Failures: 1}}
	c := NewCollector(staticSource{snap: snap}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := `
# HELP xkeep_dataplane_apply_failures_total Dataplane applies that failed (retried with backoff).
# TYPE xkeep_dataplane_apply_failures_total counter
xkeep_dataplane_apply_failures_total 2
# HELP xkeep_dataplane_last_apply_successful 1 when the last dataplane apply succeeded.
# TYPE xkeep_dataplane_last_apply_successful gauge
xkeep_dataplane_last_apply_successful 0
# HELP xkeep_vrrp_dropped_packets_total Received VRRP packets dropped before they matched an instance (malformed, unknown VRID), by reason.
# TYPE xkeep_vrrp_dropped_packets_total counter
xkeep_vrrp_dropped_packets_total{reason="vrid"} 3
# HELP xkeep_config_last_reload_successful 1 when the last configuration reload succeeded.
# TYPE xkeep_config_last_reload_successful gauge
xkeep_config_last_reload_successful 0
# HELP xkeep_config_last_reload_duration_seconds How long the last reload took to read, check and apply the configuration.
# TYPE xkeep_config_last_reload_duration_seconds gauge
xkeep_config_last_reload_duration_seconds 0.0015
# HELP xkeep_config_warnings Warnings of the running configuration (xkeep status --json lists them).
# TYPE xkeep_config_warnings gauge
xkeep_config_warnings 1
# HELP xkeep_check_failures_total Health check probes that failed.
# TYPE xkeep_check_failures_total counter
xkeep_check_failures_total{backend="192.168.8.130:80",check="TCP_CHECK",port="80",protocol="TCP",service="TCP 192.168.8.100:80",vip="192.168.8.100"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"xkeep_dataplane_apply_failures_total", "xkeep_dataplane_last_apply_successful", "xkeep_vrrp_dropped_packets_total",
		"xkeep_config_last_reload_successful", "xkeep_config_last_reload_duration_seconds", "xkeep_config_warnings",
		"xkeep_check_failures_total"); err != nil {
		t.Fatal(err)
	}
}
