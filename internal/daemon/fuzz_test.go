package daemon

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/vrrp"
)

// FuzzTranslate takes every configuration the reader accepts through the
// daemon's translations (VRRP, health checks, services), then runs what
// translated through the VRRP machine on a fake clock and through the
// desired-state computation: bad input is an error, never a panic.
// (FuzzParse in config covers the reader itself, ~SEQ expansion
// included.)
func FuzzTranslate(f *testing.F) {
	var files []string
	for _, pattern := range []string{"../../config/testdata/*/*.conf", "../../../shared/seed/*.conf", "../../../shared/corpus/*/*.conf", "../../../shared/corpus/keepalived-samples/*"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil && len(data) <= maxFuzzConfig {
			f.Add(data)
		}
	}
	f.Add([]byte("vrrp_instance I {\n interface eth0\n virtual_router_id 1\n priority 255\n track_interface { eth1 weight 0 }\n virtual_ipaddress { fe80::1/64 }\n}\n"))
	f.Add([]byte("virtual_server 10.0.0.1 80 {\n lb_algo mh\n lb_kind DR\n persistence_timeout 0\n quorum 3\n hysteresis 9\n real_server 10.0.0.2 80 {\n  weight 0\n  MISC_CHECK { misc_path /bin/true misc_dynamic }\n }\n}\n"))
	noFiles := fstest.MapFS{}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > maxFuzzConfig || bytes.ContainsRune(src, '~') {
			return
		}
		cfg, _, err := config.Parse("fuzz.conf", src, config.LoadOptions{FS: noFiles, Getenv: func(string) string { return "" }})
		if err != nil {
			return
		}
		v, _, verr := VRRPConfig(cfg)
		_, _, _ = HealthConfig(cfg, func(string) ([]byte, error) { return nil, errors.New("no files here") })
		plan, _, perr := ServicePlan(cfg)
		run := runningView{Instances: map[string]instanceView{}}
		if verr == nil && v.Validate() == nil {
			m := vrrp.NewMachine()
			now := time.Unix(0, 0)
			m.Step(now, vrrp.LinkChanged{Interface: "eth0", Up: true})
			m.Configure(now, v)
			m.Ready()
			for range 8 {
				next, ok := m.NextDeadline()
				if !ok {
					break
				}
				m.Advance(next)
				m.Ready()
			}
			for _, st := range m.Status() {
				run.Instances[st.Name] = viewOf(st)
			}
		}
		if perr == nil {
			desiredState(plan, run, capabilities{AttachByInterface: true})
			desiredState(plan, run, capabilities{FWMark: true})
		}
	})
}

// maxFuzzConfig bounds fuzzed configurations, so an input stays fast.
const maxFuzzConfig = 16 << 10
