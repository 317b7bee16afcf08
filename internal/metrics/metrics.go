// Package metrics exports the daemon's snapshot as Prometheus metrics.
// Values are read at scrape time (the snapshot's counters come straight
// from the BPF maps or IPVS), so there is no second copy to drift.
// VRRP metric names follow keepalived-exporter's, under an xkeep_ prefix.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xkeep/xkeep/internal/status"
)

// Source produces the snapshot to export.
type Source interface {
	Snapshot(ctx context.Context) (status.Snapshot, error)
}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	source  Source
	timeout time.Duration
	log     *slog.Logger

	up                                      *prometheus.Desc
	vrrpState, priority, effectivePriority  *prometheus.Desc
	advertsSent, advertsReceived            *prometheus.Desc
	becameMaster, releasedMaster            *prometheus.Desc
	prioZeroSent, prioZeroReceived          *prometheus.Desc
	transitions, receiveErrors              *prometheus.Desc
	scriptStatus                            *prometheus.Desc
	trackFileValue                          *prometheus.Desc
	servicePackets, serviceBytes, newFlows  *prometheus.Desc
	serviceActive, quorumUp, sorryActive    *prometheus.Desc
	backendPackets, backendBytes            *prometheus.Desc
	backendFlows, backendUp, backendWeight  *prometheus.Desc
	checkLatency, checkUp                   *prometheus.Desc
	checkProbes, checkFailures              *prometheus.Desc
	packetReasons, vrrpDropped              *prometheus.Desc
	applies, applyFailures, applyOK         *prometheus.Desc
	reloadOK, reloadTime, reloads, failures *prometheus.Desc
	reloadDuration, configWarnings          *prometheus.Desc
}

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Source, log *slog.Logger) *Collector {
	vrrpLabels := []string{"iname", "intf", "vrid", "state"}
	svcLabels := []string{"service", "protocol", "vip", "port"}
	beLabels := append(append([]string{}, svcLabels...), "backend")
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("xkeep_"+name, help, labels, nil)
	}
	return &Collector{
		source:  src,
		timeout: 5 * time.Second,
		log:     log,

		up:                d("up", "1 when the daemon produced a snapshot for this scrape."),
		vrrpState:         d("vrrp_state", "VRRP state per VIP: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's numbers).", "iname", "intf", "vrid", "ip_address"),
		priority:          d("vrrp_priority", "Configured VRRP priority.", "iname", "intf", "vrid"),
		effectivePriority: d("vrrp_effective_priority", "VRRP priority after tracked scripts and interfaces.", "iname", "intf", "vrid"),
		advertsSent:       d("advertisements_sent_total", "VRRP adverts sent.", vrrpLabels...),
		advertsReceived:   d("advertisements_received_total", "VRRP adverts received.", vrrpLabels...),
		becameMaster:      d("become_master_total", "Transitions to MASTER.", vrrpLabels...),
		releasedMaster:    d("release_master_total", "Transitions out of MASTER.", vrrpLabels...),
		prioZeroSent:      d("priority_zero_sent_total", "Priority 0 adverts sent (resigning).", vrrpLabels...),
		prioZeroReceived:  d("priority_zero_received_total", "Priority 0 adverts received.", vrrpLabels...),
		transitions:       d("vrrp_transitions_total", "VRRP state transitions.", vrrpLabels...),
		receiveErrors:     d("vrrp_receive_errors_total", "Received VRRP packets dropped, by reason.", "iname", "intf", "vrid", "reason"),
		scriptStatus:      d("script_status", "vrrp_script result after rise/fall: 1 good, 0 bad.", "name"),
		trackFileValue:    d("track_file_value", "The number a track_file's file holds, as last read.", "name"),
		servicePackets:    d("service_packets_total", "Packets forwarded for a virtual service.", svcLabels...),
		serviceBytes:      d("service_bytes_total", "Bytes forwarded for a virtual service.", svcLabels...),
		newFlows:          d("service_new_flows_total", "New flows (connections) scheduled for a virtual service.", svcLabels...),
		serviceActive:     d("service_active", "1 while this node serves the virtual service (VRRP MASTER for its VIP).", svcLabels...),
		quorumUp:          d("service_quorum_up", "1 while the virtual service has its quorum of healthy real servers.", svcLabels...),
		sorryActive:       d("service_sorry_active", "1 while the sorry server stands in for the real servers.", svcLabels...),
		backendPackets:    d("backend_packets_total", "Packets forwarded to a real server.", beLabels...),
		backendBytes:      d("backend_bytes_total", "Bytes forwarded to a real server.", beLabels...),
		backendFlows:      d("backend_active_flows", "Active flows (connections) on a real server.", beLabels...),
		backendUp:         d("backend_up", "1 while the real server passes its health checks.", beLabels...),
		backendWeight:     d("backend_weight", "Weight the dataplane uses for the real server.", beLabels...),
		checkLatency:      d("check_latency_seconds", "Duration of the latest health check probe.", append(append([]string{}, beLabels...), "check")...),
		checkUp:           d("check_up", "1 when the latest health check probe passed.", append(append([]string{}, beLabels...), "check")...),
		checkProbes:       d("check_probes_total", "Health check probes run.", append(append([]string{}, beLabels...), "check")...),
		checkFailures:     d("check_failures_total", "Health check probes that failed.", append(append([]string{}, beLabels...), "check")...),
		packetReasons:     d("dataplane_packets_total", "Dataplane packets by verdict and pass/drop reason.", "reason"),
		vrrpDropped:       d("vrrp_dropped_packets_total", "Received VRRP packets dropped before they matched an instance (malformed, unknown VRID), by reason.", "reason"),
		applies:           d("dataplane_applies_total", "Desired states handed to the dataplane."),
		applyFailures:     d("dataplane_apply_failures_total", "Dataplane applies that failed (retried with backoff)."),
		applyOK:           d("dataplane_last_apply_successful", "1 when the last dataplane apply succeeded."),
		reloadOK:          d("config_last_reload_successful", "1 when the last configuration reload succeeded."),
		reloadTime:        d("config_last_reload_timestamp_seconds", "Time of the last configuration load or reload."),
		reloads:           d("config_reloads_total", "Configuration reloads attempted."),
		failures:          d("config_reload_failures_total", "Configuration reloads rejected (the running configuration was kept)."),
		reloadDuration:    d("config_last_reload_duration_seconds", "How long the last reload took to read, check and apply the configuration."),
		configWarnings:    d("config_warnings", "Warnings of the running configuration (xkeep status --json lists them)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.vrrpState, c.priority, c.effectivePriority, c.advertsSent,
		c.advertsReceived, c.becameMaster, c.releasedMaster, c.prioZeroSent,
		c.prioZeroReceived, c.transitions, c.receiveErrors, c.scriptStatus, c.trackFileValue,
		c.servicePackets, c.serviceBytes, c.newFlows, c.serviceActive,
		c.quorumUp, c.sorryActive, c.backendPackets, c.backendBytes,
		c.backendFlows, c.backendUp, c.backendWeight, c.checkLatency,
		c.checkUp, c.checkProbes, c.checkFailures, c.packetReasons,
		c.vrrpDropped, c.applies, c.applyFailures, c.applyOK, c.reloadOK,
		c.reloadTime, c.reloads, c.failures, c.reloadDuration, c.configWarnings,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	snap, err := c.source.Snapshot(ctx)
	if err != nil {
		c.log.Warn("metrics: no snapshot for this scrape", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	for _, in := range snap.Instances {
		vrid := strconv.Itoa(in.VRID)
		for _, vip := range in.VIPs {
			gauge(c.vrrpState, float64(status.StateNumber(in.State)), in.Name, in.Interface, vrid, vip.String())
		}
		gauge(c.priority, float64(in.Priority), in.Name, in.Interface, vrid)
		gauge(c.effectivePriority, float64(in.EffectivePriority), in.Name, in.Interface, vrid)
		l := []string{in.Name, in.Interface, vrid, in.State}
		counter(c.advertsSent, in.Counters.AdvertsSent, l...)
		counter(c.advertsReceived, in.Counters.AdvertsReceived, l...)
		counter(c.becameMaster, in.Counters.BecameMaster, l...)
		counter(c.releasedMaster, in.Counters.ReleasedMaster, l...)
		counter(c.prioZeroSent, in.Counters.PriorityZeroSent, l...)
		counter(c.prioZeroReceived, in.Counters.PriorityZeroReceived, l...)
		counter(c.transitions, in.Counters.Transitions, l...)
		for reason, n := range in.Counters.ReceiveErrors {
			counter(c.receiveErrors, n, in.Name, in.Interface, vrid, reason)
		}
	}
	for _, sc := range snap.Scripts {
		gauge(c.scriptStatus, boolValue(sc.OK), sc.Name)
	}
	for _, f := range snap.TrackFiles {
		gauge(c.trackFileValue, float64(f.Value), f.Name)
	}
	for _, svc := range snap.Services {
		sl := []string{svc.Name(), svc.Protocol, addrLabel(svc), strconv.Itoa(int(svc.Port))}
		counter(c.servicePackets, svc.Packets, sl...)
		counter(c.serviceBytes, svc.Bytes, sl...)
		counter(c.newFlows, svc.NewFlows, sl...)
		gauge(c.serviceActive, boolValue(svc.Active), sl...)
		gauge(c.quorumUp, boolValue(svc.QuorumUp), sl...)
		gauge(c.sorryActive, boolValue(svc.SorryActive), sl...)
		for _, be := range svc.Backends {
			bl := append(append([]string{}, sl...), backendLabel(be))
			counter(c.backendPackets, be.Packets, bl...)
			counter(c.backendBytes, be.Bytes, bl...)
			gauge(c.backendFlows, float64(be.ActiveFlows), bl...)
			gauge(c.backendUp, boolValue(be.Healthy), bl...)
			gauge(c.backendWeight, float64(be.EffectiveWeight), bl...)
			for _, chk := range be.Checks {
				cl := append(append([]string{}, bl...), chk.Type)
				gauge(c.checkLatency, chk.Latency.Seconds(), cl...)
				gauge(c.checkUp, boolValue(chk.OK), cl...)
				counter(c.checkProbes, chk.Probes, cl...)
				counter(c.checkFailures, chk.Failures, cl...)
			}
		}
	}
	for reason, n := range snap.PacketReasons {
		counter(c.packetReasons, n, reason)
	}
	for reason, n := range snap.VRRPDropped {
		counter(c.vrrpDropped, n, reason)
	}
	counter(c.applies, snap.Apply.Applies)
	counter(c.applyFailures, snap.Apply.Failures)
	if snap.Apply.Applies > 0 {
		gauge(c.applyOK, boolValue(snap.Apply.LastError == ""))
	}
	gauge(c.reloadOK, boolValue(snap.Config.Reloads == 0 || snap.Config.LastReloadOK))
	last := snap.Config.LoadedAt
	if snap.Config.LastReloadAt.After(last) {
		last = snap.Config.LastReloadAt
	}
	if !last.IsZero() {
		gauge(c.reloadTime, float64(last.UnixNano())/1e9)
	}
	counter(c.reloads, snap.Config.Reloads)
	counter(c.failures, snap.Config.ReloadFailures)
	if snap.Config.Reloads > 0 {
		gauge(c.reloadDuration, snap.Config.LastReloadDuration.Seconds())
	}
	gauge(c.configWarnings, float64(len(snap.Config.Warnings)))
}

// Handler serves /metrics from a registry of its own holding c and the
// Go runtime and process collectors.
func Handler(c *Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}), nil
}

func addrLabel(s status.Service) string {
	if s.FWMark != 0 {
		return ""
	}
	return s.Addr.String()
}

func backendLabel(b status.Backend) string {
	return netip.AddrPortFrom(b.Addr, b.Port).String()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
