package daemon

import (
	"testing"
	"time"

	"github.com/xkeep/xkeep/vrrp"
)

func TestInterceptLeaseEndsBeforeAnyPeerCanTakeOver(t *testing.T) {
	for _, c := range []struct {
		name  string
		ints  []time.Duration
		lease time.Duration
	}{
		{"no vrrp instance: no lease", nil, 0},
		{"seed: advert_int 1", []time.Duration{time.Second}, 3 * time.Second},
		{"the quickest instance decides", []time.Duration{time.Second, 100 * time.Millisecond}, 300 * time.Millisecond},
	} {
		var cfg vrrp.Config
		for _, iv := range c.ints {
			cfg.Instances = append(cfg.Instances, vrrp.InstanceConfig{AdvertInterval: iv})
		}
		if got := interceptLease(cfg); got != c.lease {
			t.Errorf("%s: lease %v, want %v", c.name, got, c.lease)
		}
	}
}
