package ipvs

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/ipvs"

	"github.com/xkeep/xkeep/dataplane"
)

// These tests need no kernel: they cover the translation of the service
// model into IPVS terms, the diff, and the counters.

var (
	vip     = netip.MustParseAddr("192.0.2.10")
	vip6    = netip.MustParseAddr("2001:db8::10")
	rs1     = netip.MustParseAddr("198.51.100.1")
	rs2     = netip.MustParseAddr("198.51.100.2")
	rs6     = netip.MustParseAddr("2001:db8::1:1")
	httpKey = dataplane.ServiceKey{Addr: vip, Port: 80, Protocol: dataplane.TCP}
)

func backend(a netip.Addr, port uint16, weight int, state dataplane.BackendState) dataplane.Backend {
	return dataplane.Backend{BackendKey: dataplane.BackendKey{Addr: a, Port: port}, Weight: weight, State: state}
}

func httpService() dataplane.Service {
	return dataplane.Service{
		Key:       httpKey,
		Scheduler: dataplane.WeightedRoundRobin,
		Forward:   dataplane.DirectRouting,
		Backends: []dataplane.Backend{
			backend(rs1, 80, 3, dataplane.BackendUp),
			backend(rs2, 80, 1, dataplane.BackendUp),
		},
	}
}

func TestTranslateAcceptsEverySchedulerKeepalivedDoes(t *testing.T) {
	for _, name := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf"} {
		s := httpService()
		s.Scheduler = dataplane.Scheduler(name)
		ds, err := translate(s)
		if err != nil {
			t.Errorf("scheduler %s: %v", name, err)
			continue
		}
		if ds.kernel.sched != name {
			t.Errorf("scheduler %s became %q", name, ds.kernel.sched)
		}
	}
}

func TestTranslate(t *testing.T) {
	mask24 := mustNetmask(t, false, 24)
	full4 := mustNetmask(t, false, 0)
	tests := []struct {
		name   string
		edit   func(*dataplane.Service)
		attrs  string // kService.attrs()
		dests  map[dataplane.BackendKey]kDest
		netmsk uint32
	}{
		{
			name:   "defaults",
			edit:   func(s *dataplane.Service) { s.Scheduler = "" },
			attrs:  "sched=wlc",
			netmsk: full4,
			dests: map[dataplane.BackendKey]kDest{
				{Addr: rs1, Port: 80}: {3, ipvs.ConnFwdDirectRoute},
				{Addr: rs2, Port: 80}: {1, ipvs.ConnFwdDirectRoute},
			},
		},
		{
			name: "persistence rounds up to whole seconds, with a /24 granularity",
			edit: func(s *dataplane.Service) {
				s.Persistence = 299500 * time.Millisecond
				s.PersistenceBits = 24
			},
			attrs:  "sched=wrr flags=0x1 persistent=300s netmask=/24",
			netmsk: mask24,
		},
		{
			name:   "sh flags",
			edit:   func(s *dataplane.Service) { s.Scheduler = "sh"; s.SchedulerFlags = []string{"sh-port", "sh-fallback"} },
			attrs:  "sched=sh flags=0x18",
			netmsk: full4,
		},
		{
			name:   "mh port",
			edit:   func(s *dataplane.Service) { s.Scheduler = "mh"; s.SchedulerFlags = []string{"mh-port"} },
			attrs:  "sched=mh flags=0x10",
			netmsk: full4,
		},
		{
			name:   "generic flag-3",
			edit:   func(s *dataplane.Service) { s.SchedulerFlags = []string{"flag-3"} },
			attrs:  "sched=wrr flags=0x20",
			netmsk: full4,
		},
		{
			name: "draining keeps weight 0, down is absent, per-backend forward override",
			edit: func(s *dataplane.Service) {
				s.Backends = []dataplane.Backend{
					backend(rs1, 80, 3, dataplane.BackendDraining),
					backend(rs2, 80, 1, dataplane.BackendDown),
					{BackendKey: dataplane.BackendKey{Addr: netip.MustParseAddr("198.51.100.3"), Port: 8080}, Weight: 2, Forward: dataplane.NAT},
					{BackendKey: dataplane.BackendKey{Addr: netip.MustParseAddr("198.51.100.4"), Port: 80}, Weight: 2, Forward: dataplane.Tunnel},
				}
			},
			attrs:  "sched=wrr",
			netmsk: full4,
			dests: map[dataplane.BackendKey]kDest{
				{Addr: rs1, Port: 80}: {0, ipvs.ConnFwdDirectRoute},
				{Addr: netip.MustParseAddr("198.51.100.3"), Port: 8080}: {2, ipvs.ConnFwdMasq},
				{Addr: netip.MustParseAddr("198.51.100.4"), Port: 80}:   {2, ipvs.ConnFwdTunnel},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := httpService()
			tt.edit(&s)
			ds, err := translate(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := ds.kernel.attrs(); got != tt.attrs {
				t.Errorf("attrs = %q, want %q", got, tt.attrs)
			}
			if ds.kernel.netmask != tt.netmsk {
				t.Errorf("netmask = %#x, want %#x", ds.kernel.netmask, tt.netmsk)
			}
			if tt.dests != nil && !sameDests(ds.kernel.dests, tt.dests) {
				t.Errorf("dests = %v, want %v", ds.kernel.dests, tt.dests)
			}
			if len(ds.backends) != len(s.Backends) {
				t.Errorf("backends for stats = %v, want all %d named", ds.backends, len(s.Backends))
			}
		})
	}
}

func TestTranslateIPv6AndFWMark(t *testing.T) {
	s := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: vip6, Port: 443, Protocol: dataplane.TCP}, Scheduler: "rr",
		Forward: dataplane.DirectRouting, Persistence: time.Minute, PersistenceBits: 64,
		Backends: []dataplane.Backend{backend(rs6, 443, 1, dataplane.BackendUp)},
	}
	ds, err := translate(s)
	if err != nil {
		t.Fatal(err)
	}
	if ds.kernel.netmask != 64 || ds.kernel.id.family() != 10 {
		t.Errorf("IPv6: netmask %d family %d, want prefix length 64, AF_INET6", ds.kernel.netmask, ds.kernel.id.family())
	}
	s.PersistenceBits = 0
	if ds, _ = translate(s); ds.kernel.netmask != 128 {
		t.Errorf("IPv6 default granularity %d, want 128", ds.kernel.netmask)
	}

	fw := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.10"), FWMark: 7}, Scheduler: "rr",
		Forward: dataplane.DirectRouting, Backends: []dataplane.Backend{backend(rs1, 0, 1, dataplane.BackendUp)},
	}
	ds, err = translate(fw)
	if err != nil {
		t.Fatal(err)
	}
	want := svcID{addr: netip.IPv4Unspecified(), fwmark: 7}
	if ds.kernel.id != want {
		t.Errorf("fwmark id = %+v, want %+v (the kernel keys it by mark and family only)", ds.kernel.id, want)
	}
	if ds.key != fw.Key {
		t.Errorf("stats key = %v, want the caller's %v", ds.key, fw.Key)
	}
}

func TestTranslateRejectsBadServices(t *testing.T) {
	tests := []struct {
		name string
		edit func(*dataplane.Service)
		want string
	}{
		{"unknown scheduler", func(s *dataplane.Service) { s.Scheduler = "wrrr" }, `unknown scheduler "wrrr" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf)`},
		{"sh flag on wrr", func(s *dataplane.Service) { s.SchedulerFlags = []string{"sh-port"} }, `scheduler flag "sh-port" needs scheduler sh, not wrr`},
		{"unknown flag", func(s *dataplane.Service) { s.SchedulerFlags = []string{"ops"} }, `unknown scheduler flag "ops"`},
		{"no forward", func(s *dataplane.Service) { s.Forward = "" }, "forward: not set (want DR, NAT or TUN)"},
		{"bad forward", func(s *dataplane.Service) { s.Forward = "FULLNAT" }, `forward: unknown method "FULLNAT"`},
		{"negative persistence", func(s *dataplane.Service) { s.Persistence = -time.Second }, "negative persistence timeout"},
		{"granularity", func(s *dataplane.Service) { s.Persistence = time.Second; s.PersistenceBits = 33 }, "persistence prefix length 33 out of range 0-32"},
		{"port 0 without persistence", func(s *dataplane.Service) { s.Key.Port = 0 }, "port 0 (all ports) needs persistence"},
		{"protocol", func(s *dataplane.Service) { s.Key.Protocol = 1 }, "unsupported protocol proto-1"},
		{"no address", func(s *dataplane.Service) { s.Key.Addr = netip.Addr{} }, "no virtual address"},
		{"fwmark without family", func(s *dataplane.Service) { s.Key = dataplane.ServiceKey{FWMark: 3} }, "set Key.Addr to 0.0.0.0 or ::"},
		{"weight", func(s *dataplane.Service) { s.Backends[0].Weight = 70000 }, "backend 198.51.100.1:80: weight 70000 out of range 0-65535"},
		{"family", func(s *dataplane.Service) { s.Backends[0].Addr = rs6 }, "address family differs"},
		{"duplicate backend", func(s *dataplane.Service) { s.Backends[1] = s.Backends[0] }, "backend 198.51.100.1:80 listed twice"},
		{"state", func(s *dataplane.Service) { s.Backends[0].State = 9 }, "unknown state state-9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := httpService()
			tt.edit(&s)
			_, err := translate(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServedFunc(t *testing.T) {
	served := servedFunc([]dataplane.ServedVIP{{Addr: vip, Interface: "eth0"}})
	for _, tt := range []struct {
		key  dataplane.ServiceKey
		want bool
	}{
		{httpKey, true},
		{dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.11"), Port: 80, Protocol: dataplane.TCP}, false},
		{dataplane.ServiceKey{Addr: vip6, Port: 80, Protocol: dataplane.TCP}, false},
		{dataplane.ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 1}, true}, // any IPv4 VIP held
		{dataplane.ServiceKey{Addr: netip.IPv6Unspecified(), FWMark: 1}, false},
		{dataplane.ServiceKey{Addr: vip, FWMark: 1}, true}, // names its VIP
		{dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.11"), FWMark: 1}, false},
	} {
		if got := served(tt.key); got != tt.want {
			t.Errorf("served(%v addr %v) = %v, want %v", tt.key, tt.key.Addr, got, tt.want)
		}
	}
	if servedFunc(nil)(httpKey) {
		t.Error("nothing served, yet the service is")
	}
}

func TestCounterSurvivesWrapAndKernelRestarts(t *testing.T) {
	var c counter
	c.observe(ipvs.SvcStats{Connections: math.MaxUint32 - 1, PacketsIn: math.MaxUint32 - 10, BytesIn: 1000})
	// 32-bit packet and connection counters wrap; bytes (64-bit) do not.
	c.observe(ipvs.SvcStats{Connections: 3, PacketsIn: 9, BytesIn: 2000})
	if want := uint64(math.MaxUint32) + 10; c.Packets != want {
		t.Errorf("packets after wrap = %d, want %d", c.Packets, want)
	}
	if want := uint64(math.MaxUint32) + 4; c.Conns != want {
		t.Errorf("conns after wrap = %d, want %d", c.Conns, want)
	}
	// The service was removed and re-added: the kernel counts from zero.
	c.restart()
	c.observe(ipvs.SvcStats{Connections: 1, PacketsIn: 5, PacketsOut: 2, BytesIn: 300, BytesOut: 100})
	if want := uint64(math.MaxUint32) + 17; c.Packets != want {
		t.Errorf("packets after restart = %d, want %d", c.Packets, want)
	}
	if c.Bytes != 2400 {
		t.Errorf("bytes = %d, want 2400", c.Bytes)
	}
	// Zeroed behind our back: bytes went down, so count the new values from 0.
	c.observe(ipvs.SvcStats{PacketsIn: 4, BytesIn: 40})
	if c.Bytes != 2440 {
		t.Errorf("bytes after an outside reset = %d, want 2440", c.Bytes)
	}
}

func mustNetmask(t *testing.T, v6 bool, bits int) uint32 {
	t.Helper()
	m, err := persistenceNetmask(v6, bits)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameDests(a, b map[dataplane.BackendKey]kDest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
