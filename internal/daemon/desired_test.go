package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// desiredConf has two instances (VI_1 holds .100 on eth0, VI_2 holds
// .200 with dev eth1), a service on each, a service on an address no
// instance manages, a fwmark service, and a sorry server.
const desiredConf = `
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.100
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.200 dev eth1
    }
}
virtual_server 192.0.2.100 80 {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    sorry_server 10.0.0.9 80
    real_server 10.0.0.1 80 {
        weight 3
        TCP_CHECK {
        }
    }
    real_server 10.0.0.2 80 {
        weight 2
        inhibit_on_failure
        TCP_CHECK {
        }
    }
}
virtual_server 192.0.2.200 53 {
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server 10.0.0.1 53 {
    }
}
virtual_server 198.51.100.7 443 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.1 443 {
    }
}
virtual_server fwmark 7 {
    lb_algo rr
    lb_kind DR
    real_server 10.0.0.1 {
    }
}
`

func mustPlan(t *testing.T, src string) servicePlan {
	t.Helper()
	cfg, _, err := config.Parse("keepalived.conf", []byte(src), config.LoadOptions{Dataplane: config.DataplaneIPVS})
	if err != nil {
		t.Fatal(err)
	}
	plan, _, err := ServicePlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// render writes a desired state as text, one line per service and
// backend, then the served VIPs: easy to compare and to read in a diff.
func render(d desired) string {
	var b strings.Builder
	for _, s := range d.State.Services {
		mark := " "
		if d.Served[s.Key] {
			mark = "*"
		}
		fmt.Fprintf(&b, "%s %s %s\n", mark, serviceName(s.Key), s.Scheduler)
		for _, be := range s.Backends {
			fmt.Fprintf(&b, "    %s %s w%d\n", be.BackendKey, be.State, be.Weight)
		}
	}
	var served []string
	for _, v := range d.State.Served {
		served = append(served, v.Addr.String()+"@"+v.Interface)
	}
	fmt.Fprintf(&b, "served %s\n", strings.Join(served, " "))
	return b.String()
}

func hsnap(vss ...health.VirtualServerStatus) health.Snapshot {
	return health.Snapshot{VirtualServers: vss}
}

func be(addr string, state health.State, weight int) health.BackendStatus {
	ap := netip.MustParseAddrPort(addr)
	return health.BackendStatus{Addr: ap, State: state, Weight: weight, Alive: state == health.StateUp}
}

func sorryBE(addr string, state health.State) health.BackendStatus {
	b := be(addr, state, 0)
	if state == health.StateUp {
		b.Weight = 1
	}
	b.Sorry = true
	return b
}

func TestDesiredState(t *testing.T) {
	plan := mustPlan(t, desiredConf)
	master := instanceView{State: vrrp.StateMaster, Settled: true}
	backup := instanceView{State: vrrp.StateBackup, Settled: true}
	starting := instanceView{State: vrrp.StateBackup} // no master heard yet
	fault := instanceView{State: vrrp.StateFault, Settled: true}
	allUp := hsnap(health.VirtualServerStatus{Name: "TCP 192.0.2.100:80", QuorumUp: true, Backends: []health.BackendStatus{
		be("10.0.0.1:80", health.StateUp, 3), be("10.0.0.2:80", health.StateUp, 2), sorryBE("10.0.0.9:80", health.StateDown)}})

	for _, tc := range []struct {
		name string
		run  runningView
		caps capabilities
		want string
	}{{
		name: "xdp: VI_1 master serves its VIP on its interface; the unmanaged VIP is not on this node",
		run:  runningView{Instances: map[string]instanceView{"VI_1": master, "VI_2": backup}, Health: allUp},
		caps: xdpCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.100@eth0
`,
	}, {
		name: "xdp: VI_2 master serves on its VIP's dev; the unmanaged VIP is on eth2",
		run: runningView{Instances: map[string]instanceView{"VI_1": fault, "VI_2": master}, Health: allUp,
			Local: map[netip.Addr]string{netip.MustParseAddr("198.51.100.7"): "eth2"}},
		caps: xdpCapabilities,
		want: `  TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
* UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
* TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.200@eth1 198.51.100.7@eth2
`,
	}, {
		name: "ipvs: unmanaged VIPs are always served, fwmark while master for any IPv4 address",
		run:  runningView{Instances: map[string]instanceView{"VI_1": master, "VI_2": backup}, Health: allUp},
		caps: ipvsCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
* TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
* FWM 7 rr
    10.0.0.1:0 up w1
served 0.0.0.0@ 192.0.2.100@eth0 198.51.100.7@
`,
	}, {
		name: "ipvs: backup everywhere serves only the unmanaged VIP",
		run:  runningView{Instances: map[string]instanceView{"VI_1": backup, "VI_2": fault}, Health: allUp},
		caps: ipvsCapabilities,
		want: `  TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
* TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 198.51.100.7@
`,
	}, {
		name: "health: an inhibited server drains, misc_dynamic weights pass through",
		run: runningView{Instances: map[string]instanceView{"VI_1": master}, Health: hsnap(health.VirtualServerStatus{
			Name: "TCP 192.0.2.100:80", QuorumUp: true, Backends: []health.BackendStatus{
				be("10.0.0.1:80", health.StateUp, 7), be("10.0.0.2:80", health.StateDraining, 0), sorryBE("10.0.0.9:80", health.StateDown)}})},
		caps: xdpCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w7
    10.0.0.2:80 draining w0
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.100@eth0
`,
	}, {
		name: "quorum lost: the dead servers leave, the sorry server takes over",
		run: runningView{Instances: map[string]instanceView{"VI_1": master}, Health: hsnap(health.VirtualServerStatus{
			Name: "TCP 192.0.2.100:80", SorryActive: true, Backends: []health.BackendStatus{
				be("10.0.0.1:80", health.StateDown, 0), be("10.0.0.2:80", health.StateDraining, 0), sorryBE("10.0.0.9:80", health.StateUp)}})},
		caps: xdpCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 down w0
    10.0.0.2:80 draining w0
    10.0.0.9:80 up w1
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.100@eth0
`,
	}, {
		name: "restart hold: an instance that has heard no master yet keeps serving",
		run:  runningView{Instances: map[string]instanceView{"VI_1": starting, "VI_2": backup}, Health: allUp, HoldUnsettled: true},
		caps: xdpCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.100@eth0
`,
	}, {
		name: "restart hold: an instance the engine does not run yet keeps serving",
		run:  runningView{Instances: map[string]instanceView{"VI_2": backup}, Health: allUp, HoldUnsettled: true},
		caps: xdpCapabilities,
		want: `* TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 192.0.2.100@eth0
`,
	}, {
		name: "no hold: the same instance does not serve",
		run:  runningView{Instances: map[string]instanceView{"VI_1": starting, "VI_2": backup}, Health: allUp},
		caps: xdpCapabilities,
		want: `  TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 
`,
	}, {
		name: "stopping: nothing is served",
		run: runningView{Instances: map[string]instanceView{"VI_1": {State: vrrp.StateStop, Settled: true}, "VI_2": {State: vrrp.StateStop, Settled: true}},
			Health: allUp, HoldUnsettled: true},
		caps: xdpCapabilities,
		want: `  TCP 192.0.2.100:80 wrr
    10.0.0.1:80 up w3
    10.0.0.2:80 up w2
    10.0.0.9:80 down w0
  UDP 192.0.2.200:53 rr
    10.0.0.1:53 up w1
  TCP 198.51.100.7:443 rr
    10.0.0.1:443 up w1
  FWM 7 rr
    10.0.0.1:0 up w1
served 
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(desiredState(plan, tc.run, tc.caps))
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestDesiredStateFWMarkAlwaysServedWithoutVRRP(t *testing.T) {
	plan := mustPlan(t, `
virtual_server fwmark 7 {
    lb_kind DR
    real_server 10.0.0.1 {
    }
}
`)
	d := desiredState(plan, runningView{}, ipvsCapabilities)
	if !d.Served[plan.Services[0].Service.Key] || !slices.Equal(d.State.Served, []dataplane.ServedVIP{{Addr: netip.IPv4Unspecified()}}) {
		t.Fatalf("a standalone LVS fwmark service is not served: %s", render(d))
	}
}

func TestViewOfSettlesOnceAMasterIsHeard(t *testing.T) {
	for _, tc := range []struct {
		st   vrrp.InstanceStatus
		want bool
	}{
		{vrrp.InstanceStatus{State: vrrp.StateInit}, false},
		{vrrp.InstanceStatus{State: vrrp.StateBackup}, false},
		{vrrp.InstanceStatus{State: vrrp.StateBackup, MasterAddr: netip.MustParseAddr("192.0.2.1")}, true},
		{vrrp.InstanceStatus{State: vrrp.StateMaster}, true},
		{vrrp.InstanceStatus{State: vrrp.StateFault}, true},
	} {
		if got := viewOf(tc.st).Settled; got != tc.want {
			t.Errorf("%s master %v: settled %v, want %v", tc.st.State, tc.st.MasterAddr, got, tc.want)
		}
	}
}
