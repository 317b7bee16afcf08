package daemon

import (
	"net/netip"
	"slices"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/vrrp"
)

// This file is the one place that knows what VRRP state means for the
// dataplane: "MASTER for VI_1 means serve its virtual servers". It is
// pure: desiredState turns the plan and a view of the running parts into
// the dataplane's desired state, and the owner loop (reconcile.go) calls
// it again whenever any of them changes.

// capabilities are what the chosen dataplane needs and offers.
type capabilities struct {
	// AttachByInterface: the dataplane runs on the interfaces VIP traffic
	// arrives on (XDP), so a served VIP needs one. IPVS intercepts any
	// local address and ignores it.
	AttachByInterface bool
	// FWMark: the dataplane matches firewall marks (IPVS).
	FWMark bool
}

var (
	xdpCapabilities  = capabilities{AttachByInterface: true}
	ipvsCapabilities = capabilities{FWMark: true}
)

// instanceView is what the desired state needs of a VRRP instance.
type instanceView struct {
	State vrrp.State
	// Settled is false while the instance has not decided yet whether
	// another router is master: INIT, or BACKUP without having heard a
	// master since it started.
	Settled bool
}

// viewOf reduces an instance's status to its view.
func viewOf(st vrrp.InstanceStatus) instanceView {
	v := instanceView{State: st.State, Settled: true}
	switch st.State {
	case vrrp.StateInit:
		v.Settled = false
	case vrrp.StateBackup:
		v.Settled = st.MasterAddr.IsValid()
	}
	return v
}

// runningView is the running parts' state that the desired state follows.
type runningView struct {
	// Instances are the running VRRP instances by name; one the engine
	// does not run yet counts as unsettled.
	Instances map[string]instanceView
	Health    health.Snapshot
	// Local maps addresses of services that no vrrp_instance manages to
	// the (non-loopback) interface holding them now; an address missing
	// here is not on this node, or only on loopback.
	Local map[netip.Addr]string
	// HoldUnsettled keeps serving the VIPs of unsettled instances. It is
	// set during startup after a restart that found the dataplane still
	// forwarding (adopted pinned XDP state): until VRRP decides, the old
	// forwarding goes on instead of a gap.
	HoldUnsettled bool
}

// desired is the desired state and, for status, whether each service is
// served.
type desired struct {
	State  dataplane.DesiredState
	Served map[dataplane.ServiceKey]bool
}

// desiredState computes what the dataplane should do:
//
//   - every service of the plan is installed, with its backends' health
//     state and weight from the checker (Up, Draining for
//     inhibit_on_failure, Down; misc_dynamic weights; the sorry server
//     while quorum is lost);
//   - a service is served (intercepts its VIP's traffic) while a
//     vrrp_instance holding its VIP is MASTER. A service whose VIP no
//     instance manages is served always, as keepalived does; XDP serves
//     it on the interface that holds the address, and not at all while
//     no (non-loopback) interface does;
//   - a fwmark service (IPVS) is served while this node is MASTER for any
//     address of its family, or always when no vrrp_instance of its
//     family exists.
func desiredState(plan servicePlan, run runningView, caps capabilities) desired {
	serving := func(name string) bool {
		v, ok := run.Instances[name]
		if !ok {
			// Not running yet (the engine is starting): undecided.
			return run.HoldUnsettled
		}
		if v.State == vrrp.StateMaster {
			return true
		}
		return run.HoldUnsettled && !v.Settled && v.State != vrrp.StateFault && v.State != vrrp.StateStop
	}

	out := desired{Served: map[dataplane.ServiceKey]bool{}}
	served := map[netip.Addr]string{} // address -> interface
	serve := func(a netip.Addr, ifname string) {
		if _, ok := served[a]; !ok || served[a] == "" {
			served[a] = ifname
		}
	}

	// Families with a vrrp_instance, and families this node is MASTER of
	// some address in.
	hasFamily, mastersFamily := map[bool]bool{}, map[bool]bool{}
	for a, owners := range plan.Owners {
		hasFamily[a.Is4()] = true
		for _, o := range owners {
			if serving(o.Instance) {
				mastersFamily[a.Is4()] = true
			}
		}
	}

	checked := indexHealth(run.Health)
	for _, p := range plan.Services {
		svc := p.Service
		svc.Backends = backendsOf(p, checked)
		out.State.Services = append(out.State.Services, svc)

		key := svc.Key
		if key.FWMark != 0 {
			is4 := key.Addr.Is4()
			if caps.FWMark && (mastersFamily[is4] || !hasFamily[is4]) {
				out.Served[key] = true
				serve(key.Addr, "")
			}
			continue
		}
		owners := plan.Owners[key.Addr]
		if len(owners) == 0 {
			ifname, local := run.Local[key.Addr]
			if caps.AttachByInterface && !local {
				continue
			}
			out.Served[key] = true
			serve(key.Addr, ifname)
			continue
		}
		for _, o := range owners {
			if serving(o.Instance) {
				out.Served[key] = true
				serve(key.Addr, o.Interface)
				break
			}
		}
	}
	for a, ifname := range served {
		out.State.Served = append(out.State.Served, dataplane.ServedVIP{Addr: a, Interface: ifname})
	}
	slices.SortFunc(out.State.Served, func(a, b dataplane.ServedVIP) int { return a.Addr.Compare(b.Addr) })
	return out
}

// indexHealth maps the health checker's virtual servers by name.
func indexHealth(snap health.Snapshot) map[string]*health.VirtualServerStatus {
	out := make(map[string]*health.VirtualServerStatus, len(snap.VirtualServers))
	for i := range snap.VirtualServers {
		out[snap.VirtualServers[i].Name] = &snap.VirtualServers[i]
	}
	return out
}

// backendsOf is a service's backends with the health checker's verdicts.
// A backend that is both a real server and the sorry server takes the
// better of its two states.
func backendsOf(p plannedService, checked map[string]*health.VirtualServerStatus) []dataplane.Backend {
	out := slices.Clone(p.Service.Backends)
	vs, ok := checked[p.Health]
	if !ok {
		return out // no checker runs for it (no real servers): as configured
	}
	for i := range out {
		b := &out[i]
		ap := netip.AddrPortFrom(b.Addr, b.Port)
		var found []health.BackendStatus
		if st, ok := vs.Backend(ap, false); ok {
			found = append(found, st)
		}
		if p.Sorry != nil && *p.Sorry == b.BackendKey {
			if st, ok := vs.Backend(ap, true); ok {
				found = append(found, st)
			}
		}
		if len(found) == 0 {
			continue
		}
		best := found[0]
		for _, st := range found[1:] {
			if rank(st.State) > rank(best.State) {
				best = st
			}
		}
		b.State, b.Weight = backendState(best.State), best.Weight
	}
	return out
}

func rank(s health.State) int {
	switch s {
	case health.StateUp:
		return 2
	case health.StateDraining:
		return 1
	}
	return 0
}

func backendState(s health.State) dataplane.BackendState {
	switch s {
	case health.StateUp:
		return dataplane.BackendUp
	case health.StateDraining:
		return dataplane.BackendDraining
	}
	return dataplane.BackendDown
}

// unmanagedAddrs lists the service addresses no vrrp_instance manages:
// the daemon looks up where they live.
func unmanagedAddrs(plan servicePlan) []netip.Addr {
	var out []netip.Addr
	for _, p := range plan.Services {
		k := p.Service.Key
		if k.FWMark == 0 && len(plan.Owners[k.Addr]) == 0 && !slices.Contains(out, k.Addr) {
			out = append(out, k.Addr)
		}
	}
	return out
}
