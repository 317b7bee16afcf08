package daemontest

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestMetricsCountThePacketsSent sends datagrams through the XDP
// dataplane of a running daemon and checks that /metrics, read from the
// BPF maps at scrape time, counts exactly what each real server received.
func TestMetricsCountThePacketsSent(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)

	const sent = 200
	if err := r.sendUDP(sent); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 5*time.Second, "the real servers received every datagram", func() error {
		got := r.servers[0].datagram.Load() + r.servers[1].datagram.Load()
		if got != sent {
			return fmt.Errorf("received %d of %d", got, sent)
		}
		return nil
	})

	// XDP counters are exact at once; IPVS's lag by up to its 2 s
	// estimator period.
	svc := map[string]string{"vip": vip.String(), "port": strconv.Itoa(udpPort), "protocol": "UDP"}
	var fams map[string]*dto.MetricFamily
	testnet.Eventually(t, 5*time.Second, "/metrics counts every datagram", func() (err error) {
		if fams, err = x.scrape(); err != nil {
			return err
		}
		total, err := metricValue(fams, "xkeep_service_packets_total", svc)
		if err != nil {
			return err
		}
		if total != sent {
			return fmt.Errorf("xkeep_service_packets_total = %v, want %d", total, sent)
		}
		return nil
	})
	for _, rs := range r.servers {
		labels := map[string]string{"vip": vip.String(), "port": strconv.Itoa(udpPort), "backend": fmt.Sprintf("%s:%d", rs.addr, udpPort)}
		got, err := metricValue(fams, "xkeep_backend_packets_total", labels)
		if err != nil {
			t.Fatal(err)
		}
		if want := rs.datagram.Load(); got != float64(want) || want == 0 {
			t.Errorf("%s: xkeep_backend_packets_total = %v, the server received %d (rr over two servers gives each some)", rs.name, got, want)
		}
		up, err := metricValue(fams, "xkeep_backend_up", labels)
		if err != nil || up != 1 {
			t.Errorf("%s: xkeep_backend_up = %v (%v), want 1", rs.name, up, err)
		}
	}
	state, err := metricValue(fams, "xkeep_vrrp_state", map[string]string{"iname": "VI_1", "ip_address": vip.String()})
	if err != nil || state != 2 {
		t.Errorf("xkeep_vrrp_state = %v (%v), want 2 (MASTER)", state, err)
	}
	if v, err := metricValue(fams, "xkeep_service_active", svc); err != nil || v != 1 {
		t.Errorf("xkeep_service_active = %v (%v), want 1", v, err)
	}
}
