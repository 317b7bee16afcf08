package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/health/healthtest"
	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/vrrptest"
)

// bigConf has one VRRP instance and n virtual servers of 4 real servers
// with a TCP_CHECK each.
func bigConf(n int) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf(fakeInstance, "MASTER", 255))
	for i := range n {
		fmt.Fprintf(&b, "virtual_server 10.0.0.100 %d {\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n", 1000+i)
		for j := range 4 {
			fmt.Fprintf(&b, "    real_server 10.1.%d.%d %d {\n        weight %d\n        TCP_CHECK {\n            connect_timeout 2\n        }\n    }\n", i/250, (i%250)+j, 1000+i, j+1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// BenchmarkReload reloads a configuration of 1000 virtual servers (4000
// real servers and checkers) into a running daemon: read, translate,
// VRRP and health-checker diff, alternating between two versions that
// differ in one real server's weight. The baseline is config.Load of the
// same file: the ratio is what the daemon adds to parsing.
func BenchmarkReload(b *testing.B) {
	const n = 1000
	dir := b.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	confs := []string{bigConf(n), strings.Replace(bigConf(n), "weight 4\n", "weight 5\n", 1)}
	if err := os.WriteFile(path, []byte(confs[0]), 0o644); err != nil {
		b.Fatal(err)
	}
	var parse, reload time.Duration
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := config.Load(path, config.LoadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		parse = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("reload", func(b *testing.B) {
		host := (&vrrptest.Segment{}).NewHost(netip.MustParseAddr("10.0.0.1"))
		vclock := vrrptest.NewClock(time.Unix(0, 0))
		d, err := New(Options{
			ConfigPath: path,
			VRRPDeps:   func(func() vrrp.ScriptSecurity) vrrp.Deps { return host.Deps(vclock, &vrrptest.Scripts{}) },
			Dataplane: DataplaneOptions{Open: func(*slog.Logger) (dataplane.Dataplane, bool, error) {
				return discardDataplane{}, false, nil
			}},
			Clock:     healthtest.NewClock(time.Unix(0, 0)), // no probe ever runs
			Health:    health.Options{Clock: healthtest.NewClock(time.Unix(0, 0))},
			Addresses: noAddresses{},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		i := 0
		for b.Loop() {
			i++
			if err := os.WriteFile(path, []byte(confs[i%2]), 0o644); err != nil {
				b.Fatal(err)
			}
			if _, err := d.Reload(ctx); err != nil {
				b.Fatal(err)
			}
		}
		reload = b.Elapsed() / time.Duration(b.N)
		cancel()
		<-done
	})
	if parse > 0 && reload > 0 {
		b.Logf("%d virtual servers: parse %v, reload %v (%.1fx parse)", n, parse.Round(time.Microsecond), reload.Round(time.Microsecond), float64(reload)/float64(parse))
	}
}

// BenchmarkDesiredState computes the desired state of 1000 services of 4
// backends, what the owner loop does on every health or VRRP change.
func BenchmarkDesiredState(b *testing.B) {
	cfg, _, err := config.Parse("keepalived.conf", []byte(bigConf(1000)), config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	plan, _, err := ServicePlan(cfg)
	if err != nil {
		b.Fatal(err)
	}
	hc, _, err := HealthConfig(cfg, os.ReadFile)
	if err != nil {
		b.Fatal(err)
	}
	m, err := health.New(hc, health.Options{Clock: healthtest.NewClock(time.Unix(0, 0))})
	if err != nil {
		b.Fatal(err)
	}
	run := runningView{Instances: map[string]instanceView{"VI_1": {State: vrrp.StateMaster, Settled: true}}, Health: m.Snapshot()}
	for b.Loop() {
		desiredState(plan, run, xdpCapabilities)
	}
}

// discardDataplane accepts every state: the benchmark measures the daemon.
type discardDataplane struct{}

func (discardDataplane) Apply(dataplane.DesiredState) error { return nil }
func (discardDataplane) Stats() (dataplane.Stats, error)    { return dataplane.Stats{}, nil }
func (discardDataplane) Close() error                       { return nil }
