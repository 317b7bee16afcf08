package ipvs

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
)

// These tests drive the kernel's IPVS in a namespace of their own. They
// need a kernel with IPVS: test/vm runs them in its 6.1 VM.

func served(vips ...netip.Addr) []dataplane.ServedVIP {
	var s []dataplane.ServedVIP
	for _, v := range vips {
		s = append(s, dataplane.ServedVIP{Addr: v, Interface: "eth0"})
	}
	return s
}

func TestKernelEverySchedulerLoadsAndApplyIsIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	var state dataplane.DesiredState
	var want strings.Builder
	for i, name := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf"} {
		s := httpService()
		s.Key.Port = uint16(8000 + i)
		s.Scheduler = dataplane.Scheduler(name)
		state.Services = append(state.Services, s)
		want.WriteString("TCP 192.0.2.10:" + strconv.Itoa(8000+i) + " sched=" + name + "\n" +
			"  -> 198.51.100.1:80 weight=3 fwd=DR\n" +
			"  -> 198.51.100.2:80 weight=1 fwd=DR\n")
	}
	state.Served = served(vip)
	if err := f.dp.Apply(state); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantKernel(t, f, want.String())
	if n := len(f.log.take()); n != 13*3 {
		t.Errorf("first Apply made %d changes, want %d", n, 13*3)
	}
	if err := f.dp.Apply(state); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if ops := f.log.take(); len(ops) != 0 {
		t.Errorf("second Apply of the same state changed the kernel: %v", ops)
	}
	wantKernel(t, f, want.String())
}

func TestKernelPersistenceFlagsFWMarkAndIPv6(t *testing.T) {
	f := newFixture(t, nil)
	web := httpService()
	web.Scheduler = "sh"
	web.SchedulerFlags = []string{"sh-port", "sh-fallback"}
	web.Persistence = 300 * time.Second
	web.PersistenceBits = 24
	mh := httpService()
	mh.Key.Port = 443
	mh.Scheduler = "mh"
	mh.SchedulerFlags = []string{"mh-port"}
	v6 := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: vip6, Port: 80, Protocol: dataplane.TCP}, Scheduler: "rr",
		Forward: dataplane.DirectRouting, Persistence: time.Minute, PersistenceBits: 64,
		Backends: []dataplane.Backend{backend(rs6, 80, 1, dataplane.BackendUp)},
	}
	fw := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 42}, Scheduler: "wlc",
		Forward: dataplane.DirectRouting, Persistence: 30 * time.Second,
		Backends: []dataplane.Backend{backend(rs1, 0, 5, dataplane.BackendUp)},
	}
	udp := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: vip, Port: 53, Protocol: dataplane.UDP}, Scheduler: "rr",
		Forward: dataplane.NAT,
		Backends: []dataplane.Backend{
			backend(rs1, 5353, 1, dataplane.BackendUp),
			{BackendKey: dataplane.BackendKey{Addr: rs2, Port: 53}, Weight: 2, Forward: dataplane.Tunnel},
		},
	}
	sctp := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: vip, Port: 3868, Protocol: dataplane.SCTP}, Scheduler: "rr",
		Forward: dataplane.DirectRouting, Backends: []dataplane.Backend{backend(rs1, 3868, 1, dataplane.BackendUp)},
	}
	state := dataplane.DesiredState{
		Services: []dataplane.Service{web, mh, v6, fw, udp, sctp},
		Served:   served(vip, vip6),
	}
	if err := f.dp.Apply(state); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=sh flags=0x19 persistent=300s netmask=/24
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
TCP 192.0.2.10:443 sched=mh flags=0x10
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
UDP 192.0.2.10:53 sched=rr
  -> 198.51.100.1:5353 weight=1 fwd=NAT
  -> 198.51.100.2:53 weight=2 fwd=TUN
SCTP 192.0.2.10:3868 sched=rr
  -> 198.51.100.1:3868 weight=1 fwd=DR
TCP [2001:db8::10]:80 sched=rr flags=0x1 persistent=60s netmask=/64
  -> [2001:db8::1:1]:80 weight=1 fwd=DR
fwmark 42 IPv4 sched=wlc flags=0x1 persistent=30s netmask=/32
  -> 198.51.100.1:0 weight=5 fwd=DR
`)
	// The kernel's own view of what the text above abbreviates.
	got, err := f.raw.GetService(&ipvs.Service{AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: net.IP(vip.AsSlice()), Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	if got.Timeout != 300 || got.Flags&flagPersistent == 0 || net.IPMask(binaryNative(got.Netmask)).String() != "ffffff00" {
		t.Errorf("kernel service: timeout %d flags %#x netmask %x, want 300, persistent, ffffff00", got.Timeout, got.Flags, binaryNative(got.Netmask))
	}
	if n := len(f.log.take()); n != 6+9 {
		t.Errorf("Apply made %d changes, want 6 services and 9 backends", n)
	}
	if err := f.dp.Apply(state); err != nil {
		t.Fatal(err)
	}
	if ops := f.log.take(); len(ops) != 0 {
		t.Errorf("second Apply of the same state changed the kernel: %v", ops)
	}
}

func TestKernelHealthChangesWeightsAndForwarding(t *testing.T) {
	f := newFixture(t, nil)
	s := httpService()
	state := func() dataplane.DesiredState {
		return dataplane.DesiredState{Services: []dataplane.Service{s}, Served: served(vip)}
	}
	if err := f.dp.Apply(state()); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		edit func()
		want string
		ops  []string
	}{
		{
			name: "rs1 fails with inhibit_on_failure: weight 0",
			edit: func() { s.Backends[0].State = dataplane.BackendDraining },
			want: `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=0 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`,
			ops: []string{"ipvs update backend 198.51.100.1:80 of TCP 192.0.2.10:80 weight=0 fwd=DR"},
		},
		{
			name: "rs2 down: removed",
			edit: func() { s.Backends[1].State = dataplane.BackendDown },
			want: `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=0 fwd=DR
`,
			ops: []string{"ipvs remove backend 198.51.100.2:80 from TCP 192.0.2.10:80"},
		},
		{
			name: "both back, new weights, rs2 through a tunnel",
			edit: func() {
				s.Backends[0].State, s.Backends[0].Weight = dataplane.BackendUp, 10
				s.Backends[1].State, s.Backends[1].Forward = dataplane.BackendUp, dataplane.Tunnel
			},
			want: `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=10 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=TUN
`,
			ops: []string{
				"ipvs update backend 198.51.100.1:80 of TCP 192.0.2.10:80 weight=10 fwd=DR",
				"ipvs add backend 198.51.100.2:80 to TCP 192.0.2.10:80 weight=1 fwd=TUN",
			},
		},
		{
			name: "scheduler and persistence change in place",
			edit: func() { s.Scheduler, s.Persistence = "lc", 10*time.Second },
			want: `
TCP 192.0.2.10:80 sched=lc flags=0x1 persistent=10s netmask=/32
  -> 198.51.100.1:80 weight=10 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=TUN
`,
			ops: []string{"ipvs update service TCP 192.0.2.10:80 sched=lc flags=0x1 persistent=10s netmask=/32"},
		},
	}
	f.log.take()
	for _, st := range steps {
		st.edit()
		if err := f.dp.Apply(state()); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		wantKernel(t, f, st.want)
		if got := f.log.take(); strings.Join(got, "\n") != strings.Join(st.ops, "\n") {
			t.Errorf("%s: changes\n%s\nwant\n%s", st.name, strings.Join(got, "\n"), strings.Join(st.ops, "\n"))
		}
	}
}

func TestKernelLeavesForeignServicesAlone(t *testing.T) {
	f := newFixture(t, nil)
	// Someone else's service (an operator's ipvsadm, another balancer).
	foreign := &ipvs.Service{
		AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: net.ParseIP("203.0.113.5").To4(), Port: 25, SchedName: "rr", Netmask: 0xffffffff,
	}
	if err := f.raw.NewService(foreign); err != nil {
		t.Fatal(err)
	}
	if err := f.raw.NewDestination(foreign, &ipvs.Destination{Address: net.ParseIP("203.0.113.9").To4(), Port: 25, Weight: 1, ConnectionFlags: ipvs.ConnFwdMasq}); err != nil {
		t.Fatal(err)
	}
	foreignTable := "TCP 203.0.113.5:25 sched=rr\n  -> 203.0.113.9:25 weight=1 fwd=NAT\n"

	if err := f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{httpService()}, Served: served(vip)}); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`+foreignTable)

	// Our service leaves the desired state: removed; the foreign one stays.
	if err := f.dp.Apply(dataplane.DesiredState{}); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, foreignTable)

	// Close removes only what it owns.
	if err := f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{httpService()}, Served: served(vip)}); err != nil {
		t.Fatal(err)
	}
	if err := f.dp.Close(); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, foreignTable)
	if err := f.dp.Apply(dataplane.DesiredState{}); err == nil {
		t.Error("Apply after Close succeeded")
	}
}

func TestKernelAdoptsTheServiceItIsToldToRun(t *testing.T) {
	f := newFixture(t, nil)
	// Left over from a previous run, with a stale scheduler and backend.
	stale := &ipvs.Service{
		AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: net.IP(vip.AsSlice()), Port: 80, SchedName: "rr", Netmask: 0xffffffff,
	}
	if err := f.raw.NewService(stale); err != nil {
		t.Fatal(err)
	}
	if err := f.raw.NewDestination(stale, &ipvs.Destination{Address: net.ParseIP("198.51.100.99").To4(), Port: 80, Weight: 1, ConnectionFlags: ipvs.ConnFwdDirectRoute}); err != nil {
		t.Fatal(err)
	}
	if err := f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{httpService()}, Served: served(vip)}); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`)
}

func TestKernelReleaseHandsServicesToTheNextRun(t *testing.T) {
	f := newFixture(t, nil)
	state := dataplane.DesiredState{Services: []dataplane.Service{httpService()}, Served: served(vip)}
	if err := f.dp.Apply(state); err != nil {
		t.Fatal(err)
	}
	if err := f.dp.Release(); err != nil {
		t.Fatal(err)
	}
	want := `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`
	wantKernel(t, f, want)
	// The restarted daemon: same state, nothing to change.
	f.log.take()
	next, err := New(Config{Logger: slog.New(f.log), Netns: f.ns.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Apply(state); err != nil {
		t.Fatal(err)
	}
	if ops := f.log.take(); len(ops) != 0 {
		t.Errorf("Apply after a restart changed the kernel: %v", ops)
	}
	// It owns the service now: Close removes it.
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, "")
}

func TestKernelUnservedServiceLeavesTheKernel(t *testing.T) {
	f := newFixture(t, nil)
	other := httpService()
	other.Key.Addr = netip.MustParseAddr("192.0.2.20")
	state := dataplane.DesiredState{Services: []dataplane.Service{httpService(), other}, Served: served(vip)}
	if err := f.dp.Apply(state); err != nil {
		t.Fatal(err)
	}
	// 192.0.2.20 is not ours to serve (we are BACKUP for it): not in IPVS.
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`)
	// We become BACKUP for 192.0.2.10 too and MASTER for .20.
	state.Served = served(other.Key.Addr)
	if err := f.dp.Apply(state); err != nil {
		t.Fatal(err)
	}
	wantKernel(t, f, `
TCP 192.0.2.20:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`)
	st, err := f.dp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 2 || st.Services[0].Key != httpKey || len(st.Services[0].Backends) != 2 {
		t.Errorf("Stats must keep reporting the unserved service and its backends: %+v", st.Services)
	}
}

func TestKernelInvalidServiceDoesNotBlockTheOthers(t *testing.T) {
	f := newFixture(t, nil)
	good := httpService()
	bad := httpService()
	bad.Key.Port = 81
	bad.Scheduler = "wrrr"
	err := f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{bad, good}, Served: served(vip)})
	if err == nil || !strings.Contains(err.Error(), `service TCP 192.0.2.10:81: unknown scheduler "wrrr"`) {
		t.Fatalf("Apply error = %v, want it to name the bad service and scheduler", err)
	}
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`)
	// A service that turns invalid keeps its kernel state until fixed.
	good.Backends[0].Weight = -1
	if err := f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{good}, Served: served(vip)}); err == nil {
		t.Fatal("negative weight accepted")
	}
	wantKernel(t, f, `
TCP 192.0.2.10:80 sched=wrr
  -> 198.51.100.1:80 weight=3 fwd=DR
  -> 198.51.100.2:80 weight=1 fwd=DR
`)
}

func binaryNative(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}
