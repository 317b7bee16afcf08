package ipvs

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
)

// TestKernelRemoveServicesRemovesOnlyWhatWasOwned: a daemon dies (here:
// Release, which leaves its services in the kernel as a SIGKILL would);
// RemoveServices, given what that daemon's Dataplane owned, removes
// exactly those of them in the kernel: a foreign service stays, an owned
// one that is not in the kernel (its VIP not served) is no error.
func TestKernelRemoveServicesRemovesOnlyWhatWasOwned(t *testing.T) {
	f := newFixture(t, nil)
	foreign := &ipvs.Service{
		AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: net.ParseIP("203.0.113.5").To4(), Port: 25, SchedName: "rr", Netmask: 0xffffffff,
	}
	if err := f.raw.NewService(foreign); err != nil {
		t.Fatal(err)
	}
	const foreignTable = "TCP 203.0.113.5:25 sched=rr\n"
	fwmark := dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 7},
		Scheduler: dataplane.RoundRobin, Forward: dataplane.DirectRouting, Persistence: time.Minute,
		Backends: httpService().Backends}
	unserved := dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.11"), Port: 80, Protocol: dataplane.TCP},
		Scheduler: dataplane.RoundRobin, Forward: dataplane.DirectRouting, Backends: httpService().Backends}
	state := dataplane.DesiredState{Services: []dataplane.Service{httpService(), fwmark, unserved}, Served: served(vip)}
	if err := f.dp.Apply(state); err != nil {
		t.Fatal(err)
	}
	owned := f.dp.Owned()
	if want := []dataplane.ServiceKey{httpKey, unserved.Key, fwmark.Key}; !sameKeys(owned, want) {
		t.Fatalf("Owned() = %v, want %v", owned, want)
	}
	if err := f.dp.Release(); err != nil {
		t.Fatal(err)
	}

	log := &opLog{t: t}
	removed, err := RemoveServices(Config{Logger: slog.New(log), Netns: f.ns.Path()}, owned)
	if err != nil {
		t.Fatal(err)
	}
	if want := []dataplane.ServiceKey{httpKey, fwmark.Key}; !sameKeys(removed, want) {
		t.Errorf("removed %v, want %v (those in the kernel)", removed, want)
	}
	wantKernel(t, f, foreignTable)
	if got := log.take(); len(got) != 2 {
		t.Errorf("logged %q, want one line per removed service", got)
	}
	// Nothing of them is left: nothing to do, no error.
	if removed, err := RemoveServices(Config{Netns: f.ns.Path()}, owned); err != nil || len(removed) != 0 {
		t.Errorf("second RemoveServices: removed %v, %v", removed, err)
	}
	wantKernel(t, f, foreignTable)
}

func sameKeys(a, b []dataplane.ServiceKey) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(k dataplane.ServiceKey) bool { return !slices.Contains(b, k) })
}
