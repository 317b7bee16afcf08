package ipvs

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/xkeep/xkeep/dataplane"
)

// opKind is one kind of IPVS change.
type opKind uint8

const (
	opDelService opKind = iota
	opAddService
	opUpdateService
	opDelDest
	opAddDest
	opUpdateDest
)

// op is one IPVS change. svc is the service as it should be (for deletes:
// as the kernel has it); dest and d name the destination for dest ops.
type op struct {
	kind opKind
	svc  kService
	dest dataplane.BackendKey
	d    kDest
}

func (o op) String() string {
	switch o.kind {
	case opDelService:
		return fmt.Sprintf("remove service %s", o.svc.id)
	case opAddService:
		return fmt.Sprintf("add service %s %s", o.svc.id, o.svc.attrs())
	case opUpdateService:
		return fmt.Sprintf("update service %s %s", o.svc.id, o.svc.attrs())
	case opDelDest:
		return fmt.Sprintf("remove backend %s from %s", o.dest, o.svc.id)
	case opAddDest:
		return fmt.Sprintf("add backend %s to %s %s", o.dest, o.svc.id, o.d)
	case opUpdateDest:
		return fmt.Sprintf("update backend %s of %s %s", o.dest, o.svc.id, o.d)
	}
	return fmt.Sprintf("op-%d", o.kind)
}

// plan lists the changes that make the kernel's services (current) match
// want. It removes only services in owned: a service someone else created
// is left alone unless want names it, and then it is adopted. Services
// come out in a stable order: removals first, then each wanted service
// with its destinations (removals before additions).
func plan(current, want map[svcID]kService, owned map[svcID]bool) []op {
	var ops []op
	for _, id := range sortedIDs(current) {
		if _, ok := want[id]; !ok && owned[id] {
			ops = append(ops, op{kind: opDelService, svc: current[id]})
		}
	}
	for _, id := range sortedIDs(want) {
		w := want[id]
		cur, exists := current[id]
		if !exists {
			ops = append(ops, op{kind: opAddService, svc: w})
			for _, k := range sortedDests(w.dests) {
				ops = append(ops, op{kind: opAddDest, svc: w, dest: k, d: w.dests[k]})
			}
			continue
		}
		if !cur.sameAttrs(w) {
			ops = append(ops, op{kind: opUpdateService, svc: w})
		}
		for _, k := range sortedDests(cur.dests) {
			if _, ok := w.dests[k]; !ok {
				ops = append(ops, op{kind: opDelDest, svc: w, dest: k, d: cur.dests[k]})
			}
		}
		for _, k := range sortedDests(w.dests) {
			wd := w.dests[k]
			cd, ok := cur.dests[k]
			switch {
			case !ok:
				ops = append(ops, op{kind: opAddDest, svc: w, dest: k, d: wd})
			case cd != wd:
				ops = append(ops, op{kind: opUpdateDest, svc: w, dest: k, d: wd})
			}
		}
	}
	return ops
}

func sortedIDs(m map[svcID]kService) []svcID {
	ids := make([]svcID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b svcID) int {
		return cmp.Or(
			cmp.Compare(a.fwmark, b.fwmark),
			a.addr.Compare(b.addr),
			cmp.Compare(a.proto, b.proto),
			cmp.Compare(a.port, b.port),
		)
	})
	return ids
}

func sortedDests(m map[dataplane.BackendKey]kDest) []dataplane.BackendKey {
	keys := make([]dataplane.BackendKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dataplane.BackendKey) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
	})
	return keys
}

// servedFunc reports whether a service may intercept traffic: its VIP is
// one this node holds. A fwmark service names its VIP only when the caller
// set a specific Key.Addr; with an unspecified one (0.0.0.0 or ::) it is
// served while this node holds any VIP of that family.
func servedFunc(served []dataplane.ServedVIP) func(dataplane.ServiceKey) bool {
	vips := map[netip.Addr]bool{}
	var any4, any6 bool
	for _, v := range served {
		a := v.Addr.Unmap()
		vips[a] = true
		any4 = any4 || a.Is4()
		any6 = any6 || a.Is6()
	}
	return func(k dataplane.ServiceKey) bool {
		a := k.Addr.Unmap()
		if k.FWMark != 0 && (!a.IsValid() || a.IsUnspecified()) {
			if a.Is6() {
				return any6
			}
			return any4
		}
		return vips[a]
	}
}
