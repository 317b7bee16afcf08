package ipvs

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/moby/ipvs"

	"github.com/xkeep/xkeep/dataplane"
)

// Owned lists the services this Dataplane owns, the ones Close would
// remove, in a stable order. xkeep's crash guard is kept told of them,
// so that it can remove them if the daemon dies without a Close.
func (d *Dataplane) Owned() []dataplane.ServiceKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make(map[svcID]kService, len(d.owned))
	for id := range d.owned {
		ids[id] = kService{id: id}
	}
	out := make([]dataplane.ServiceKey, 0, len(ids))
	for _, id := range sortedIDs(ids) {
		out = append(out, id.key())
	}
	return out
}

// key is the service key naming id.
func (id svcID) key() dataplane.ServiceKey {
	return dataplane.ServiceKey{Addr: id.addr, Port: id.port, Protocol: dataplane.Protocol(id.proto), FWMark: id.fwmark}
}

// RemoveServices removes from the kernel those of the services keys
// names that it holds, and touches no other service: what Close would
// have done for a Dataplane that owned keys. It is for a process other
// than the owner: xkeep's crash guard, after the daemon died. It returns
// the services removed.
func RemoveServices(cfg Config, keys []dataplane.ServiceKey) ([]dataplane.ServiceKey, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	want := map[svcID]bool{}
	var errs []error
	for _, k := range keys {
		id, err := serviceID(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", k, err))
			continue
		}
		want[id] = true
	}
	if len(want) == 0 {
		return nil, errors.Join(errs...)
	}
	d, err := New(cfg)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	defer d.h.Close()
	svcs, err := d.h.GetServices()
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("list ipvs services in %s: %w", d.where, err))...)
	}
	found := map[svcID]kService{}
	raw := map[svcID]*ipvs.Service{}
	for _, s := range svcs {
		if ks, ok := fromIPVS(s); ok && want[ks.id] {
			found[ks.id], raw[ks.id] = ks, s
		}
	}
	var removed []dataplane.ServiceKey
	for _, id := range sortedIDs(found) {
		o := op{kind: opDelService, svc: found[id]}
		if err := d.h.DelService(raw[id]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o, err))
			continue
		}
		d.log.Info("ipvs "+o.String(), "netns", d.where)
		removed = append(removed, id.key())
	}
	return removed, errors.Join(errs...)
}
