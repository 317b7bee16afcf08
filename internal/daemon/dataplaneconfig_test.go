package daemon

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
)

func TestServicePlanExpandsGroupsAndKeepsPolicies(t *testing.T) {
	src := `
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.10
        192.0.2.11 dev eth1
    }
    virtual_ipaddress_excluded {
        192.0.2.12
    }
}
virtual_server_group WEB {
    192.0.2.10-12 80
    fwmark 9
}
virtual_server group WEB {
    lb_algo sh
    sh-port
    lb_kind DR
    protocol TCP
    persistence_timeout 30
    persistence_granularity 255.255.255.0
    real_server 10.0.0.1 80 {
        weight 4
    }
    real_server 10.0.0.2 80 {
        lb_kind NAT
    }
}
`
	cfg, _, err := config.Parse("keepalived.conf", []byte(src), config.LoadOptions{Dataplane: config.DataplaneIPVS})
	if err != nil {
		t.Fatal(err)
	}
	plan, warns, err := ServicePlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	var names []string
	for _, p := range plan.Services {
		names = append(names, serviceName(p.Service.Key))
		if p.Health != "GROUP WEB TCP" || p.Group != "WEB" {
			t.Errorf("%s: health %q group %q", serviceName(p.Service.Key), p.Health, p.Group)
		}
	}
	if want := "TCP 192.0.2.10:80,TCP 192.0.2.11:80,TCP 192.0.2.12:80,FWM 9"; strings.Join(names, ",") != want {
		t.Errorf("services %s, want %s", strings.Join(names, ","), want)
	}
	svc := plan.Services[0].Service
	want := dataplane.Service{
		Key:       dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.10"), Port: 80, Protocol: dataplane.TCP},
		Scheduler: dataplane.SourceHash, SchedulerFlags: []string{"sh-port"}, Forward: dataplane.DirectRouting,
		Persistence: 30 * time.Second, PersistenceBits: 24,
		Backends: []dataplane.Backend{
			{BackendKey: dataplane.BackendKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}, Weight: 4},
			{BackendKey: dataplane.BackendKey{Addr: netip.MustParseAddr("10.0.0.2"), Port: 80}, Weight: 1, Forward: dataplane.NAT},
		},
	}
	if !reflect.DeepEqual(svc, want) {
		t.Errorf("service\n got %+v\nwant %+v", svc, want)
	}
	if fw := plan.Services[3].Service.Key; fw.Addr != netip.IPv4Unspecified() || fw.FWMark != 9 {
		t.Errorf("fwmark entry key %+v", fw)
	}
	wantOwners := map[netip.Addr][]vipOwner{
		netip.MustParseAddr("192.0.2.10"): {{"VI_1", "eth0"}},
		netip.MustParseAddr("192.0.2.11"): {{"VI_1", "eth1"}},
		netip.MustParseAddr("192.0.2.12"): {{"VI_1", "eth0"}},
	}
	if !reflect.DeepEqual(plan.Owners, wantOwners) {
		t.Errorf("owners %v, want %v", plan.Owners, wantOwners)
	}
}

func TestServicePlanWarnsAndRejects(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		warn, err string
	}{{
		name: "settings no part implements are warned about where they are",
		src: `virtual_server 192.0.2.1 53 {
    lb_algo rr
    ops
    protocol UDP
    ha_suspend
    real_server 10.0.0.1 53 {
        uthreshold 100
    }
}`,
		warn: "keepalived.conf:3:5: ops (one-packet scheduling) is not implemented|keepalived.conf:5:5: ha_suspend is not implemented|keepalived.conf:6:5: real_server 10.0.0.1: uthreshold/lthreshold are not implemented",
	}, {
		name: "a service claimed by a group and a virtual server is an error with both places",
		src: `virtual_server_group G {
    192.0.2.1 80
}
virtual_server group G {
    protocol TCP
    real_server 10.0.0.1 80 {
    }
}
virtual_server 192.0.2.1 80 {
    protocol TCP
    real_server 10.0.0.2 80 {
    }
}`,
		err: "keepalived.conf:9:1: virtual_server 192.0.2.1:80 TCP: service TCP 192.0.2.1:80 is already defined at keepalived.conf:2:5",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := config.Parse("keepalived.conf", []byte(tc.src), config.LoadOptions{Dataplane: config.DataplaneIPVS})
			if err != nil {
				t.Fatal(err)
			}
			_, warns, err := ServicePlan(cfg)
			for _, w := range strings.Split(tc.warn, "|") {
				if w != "" && !containsPrefix(warns, w) {
					t.Errorf("warnings %q lack %q", warns, w)
				}
			}
			if tc.err == "" && err != nil {
				t.Errorf("error %v", err)
			}
			if tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Errorf("error %v, want %s", err, tc.err)
			}
		})
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
