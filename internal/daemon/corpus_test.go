package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

// TestSeedTranslates: the seed's master-lvs.conf becomes one served
// service over its two real servers with their TCP_CHECKs.
func TestSeedTranslates(t *testing.T) {
	cfg, _, err := config.Load(filepath.Join(testnet.SharedDir(t), "seed", "master-lvs.conf"), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, warns, err := ServicePlan(cfg)
	if err != nil || len(warns) != 0 {
		t.Fatalf("plan: %v %q", err, warns)
	}
	vip := netip.MustParseAddr("192.168.8.100")
	if len(plan.Services) != 1 || plan.Services[0].Service.Key != (dataplane.ServiceKey{Addr: vip, Port: 80, Protocol: dataplane.TCP}) ||
		plan.Services[0].Service.Persistence != 50*time.Second || len(plan.Services[0].Service.Backends) != 2 {
		t.Fatalf("services %+v", plan.Services)
	}
	if o := plan.Owners[vip]; len(o) != 1 || o[0] != (vipOwner{"VI_1", "ens160"}) {
		t.Fatalf("owners %v", plan.Owners)
	}
	hc, warns, err := HealthConfig(cfg, os.ReadFile)
	if err != nil || len(warns) != 0 {
		t.Fatalf("health: %v %q", err, warns)
	}
	chk := hc.VirtualServers[0].RealServers[1].Checks[0]
	if chk.Spec.Kind() != "TCP_CHECK" || chk.Timing != (health.Timing{DelayLoop: 6 * time.Second, Warmup: 6 * time.Second, Retry: 3,
		DelayBeforeRetry: 3 * time.Second, ConnectTimeout: 3 * time.Second}) || chk.Connect.Port != 80 {
		t.Fatalf("check %+v", chk)
	}
}

// TestCorpusTranslates: every seed file and keepalived sample that
// config accepts translates for every part, on both dataplanes, except
// what xkeep refuses on purpose (VRRP AH authentication).
func TestCorpusTranslates(t *testing.T) {
	dir := testnet.SharedDir(t)
	seeds, _ := filepath.Glob(filepath.Join(dir, "seed", "*.conf"))
	samples, _ := filepath.Glob(filepath.Join(dir, "corpus", "keepalived-samples", "keepalived.conf.*"))
	if len(seeds) == 0 || len(samples) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	translated := 0
	for _, f := range append(seeds, samples...) {
		for _, dp := range []config.Dataplane{config.DataplaneXDP, config.DataplaneIPVS} {
			cfg, _, err := config.Load(f, config.LoadOptions{Dataplane: dp})
			if err != nil {
				continue // config's own tests cover what it rejects
			}
			_, _, verr := VRRPConfig(cfg)
			if verr != nil && !strings.Contains(verr.Error(), "auth_type AH is not supported") {
				t.Errorf("%s (%s): vrrp: %v", f, dp, verr)
			}
			if _, _, err := HealthConfig(cfg, os.ReadFile); err != nil {
				t.Errorf("%s (%s): health: %v", f, dp, err)
			}
			if _, _, err := ServicePlan(cfg); err != nil {
				t.Errorf("%s (%s): services: %v", f, dp, err)
			}
			translated++
		}
	}
	t.Logf("%d configurations translated", translated)
}
