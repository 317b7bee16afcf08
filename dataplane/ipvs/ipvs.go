// Package ipvs is xkeep's dataplane on the kernel's IP Virtual Server
// (--dataplane=ipvs), driven over generic netlink with moby/ipvs.
//
// It implements dataplane.Dataplane with every IPVS scheduler keepalived
// accepts (rr wrr lc wlc lblc lblcr dh sh mh sed nq fo ovf; each is its own
// kernel module, ip_vs_<name>, which the kernel loads on first use),
// persistence with a timeout and a client prefix, DR, NAT and TUN
// forwarding, weights and scheduler flags.
//
// Ownership: IPVS is shared with whatever else runs on the host (an old
// keepalived, kube-proxy, an operator's ipvsadm). A Dataplane owns exactly
// the services the desired state names: it adopts a matching service it
// finds in the kernel, and it removes a service only when it owned it, i.e.
// when an earlier Apply named it and a later one does not (or on Close).
// Other services are never touched. Nothing is persisted: after a restart,
// ownership is rebuilt from the first desired state, so a service dropped
// from the configuration while xkeep was down stays in the kernel.
//
// Health: a Draining backend keeps its destination with weight 0
// (keepalived's inhibit_on_failure: established connections and
// persistence entries stay, no new connections); a Down backend's
// destination is removed. IPVS then keeps forwarding that backend's
// established connections until they expire unless the
// net.ipv4.vs.expire_nodest_conn sysctl is 1.
//
// Served VIPs: a service whose VIP is not in DesiredState.Served is removed
// from the kernel (IPVS would otherwise re-balance DR packets a backup
// that is itself a real server receives) and re-added when the VIP is
// served again. Its counters survive: Stats keeps reporting it, and the
// kernel's counters of the re-added service continue the totals.
package ipvs

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
)

// ErrUnavailable is returned by New when the kernel has no IPVS.
var ErrUnavailable = errors.New("ipvs unavailable")

// Config configures a Dataplane.
type Config struct {
	// Logger receives one line per change made to the kernel; nil discards.
	Logger *slog.Logger
	// Netns is the path of the network namespace whose IPVS to drive (e.g.
	// /var/run/netns/lb); empty means the caller's own.
	Netns string
}

// Dataplane drives IPVS. Its methods are safe for concurrent use.
type Dataplane struct {
	log   *slog.Logger
	where string

	mu sync.Mutex
	h  *ipvs.Handle // nil once closed
	// owned are the kernel services this Dataplane may change and remove.
	owned map[svcID]bool
	// desired is the last desired state's services, in the caller's order.
	desired []desiredService
	// counters hold totals per service and per destination.
	svcCounters  map[svcID]*counter
	destCounters map[destID]*counter
}

type destID struct {
	svc  svcID
	dest dataplane.BackendKey
}

var _ dataplane.Dataplane = (*Dataplane)(nil)

// New opens IPVS in the configured namespace. When the kernel has no IPVS
// the error wraps ErrUnavailable and says to use --dataplane=xdp.
func New(cfg Config) (*Dataplane, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	where := "this network namespace"
	if cfg.Netns != "" {
		where = "network namespace " + cfg.Netns
	}
	// Looking the family up also makes the kernel load ip_vs when it is a
	// module. Checking first keeps moby/ipvs, which remembers a failed
	// lookup for the life of the process, from ever seeing IPVS missing.
	if err := probe(); err != nil {
		return nil, err
	}
	h, err := ipvs.New(cfg.Netns)
	if err != nil {
		return nil, fmt.Errorf("open ipvs netlink in %s: %w", where, err)
	}
	if _, err := h.GetServices(); err != nil {
		h.Close()
		return nil, fmt.Errorf("list ipvs services in %s: %w", where, err)
	}
	return &Dataplane{
		log:          log.With("dataplane", "ipvs"),
		where:        where,
		h:            h,
		owned:        map[svcID]bool{},
		svcCounters:  map[svcID]*counter{},
		destCounters: map[destID]*counter{},
	}, nil
}

// probe reports whether the kernel offers IPVS's generic netlink family.
func probe() error {
	_, err := netlink.GenlFamilyGet("IPVS")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: the kernel has no IPVS (generic netlink family \"IPVS\" not found, module ip_vs not loadable); load ip_vs or run with --dataplane=xdp", ErrUnavailable)
	}
	return fmt.Errorf("look up the IPVS netlink family: %w", err)
}

// kernelService is a service read from the kernel, with the raw entries
// its counters come from.
type kernelService struct {
	svc   kService
	raw   *ipvs.Service
	dests map[dataplane.BackendKey]*ipvs.Destination
}

// Apply makes IPVS match the desired state; see the package comment for
// what it owns and how health and served VIPs map onto IPVS. A service
// with invalid settings is reported in the error and its kernel service is
// left as it was; every other service is still applied.
func (d *Dataplane) Apply(state dataplane.DesiredState) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return errors.New("ipvs dataplane is closed")
	}

	var errs []error
	served := servedFunc(state.Served)
	var desired []desiredService
	seen := map[svcID]bool{}
	invalid := map[svcID]bool{}
	want := map[svcID]kService{}
	for _, s := range state.Services {
		ds, err := translate(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", s.Key, err))
			if id, idErr := serviceID(s.Key); idErr == nil {
				invalid[id] = true
			}
			continue
		}
		id := ds.kernel.id
		if seen[id] {
			errs = append(errs, fmt.Errorf("service %s: listed twice", s.Key))
			continue
		}
		seen[id] = true
		desired = append(desired, ds)
		if served(s.Key) {
			want[id] = ds.kernel
		}
	}

	current, err := d.readKernel(func(id svcID) bool { return d.owned[id] || seen[id] })
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	cur := make(map[svcID]kService, len(current))
	for id, ks := range current {
		cur[id] = ks.svc
	}
	// The plan may remove what this Dataplane owned before, except invalid
	// services: those keep their kernel state until they are fixed.
	removable := map[svcID]bool{}
	for id := range d.owned {
		removable[id] = !invalid[id]
	}
	owned := map[svcID]bool{}
	for id := range seen {
		owned[id] = true
	}
	for id := range invalid {
		if d.owned[id] {
			owned[id] = true
		}
	}
	for _, prev := range d.desired {
		if id := prev.kernel.id; invalid[id] && !seen[id] {
			desired = append(desired, prev) // keeps its counters reported
		}
	}

	failed := map[svcID]bool{}
	for _, o := range plan(cur, want, removable) {
		if failed[o.svc.id] {
			continue // its service could not be added
		}
		if err := d.do(o); err != nil {
			errs = append(errs, err)
			switch o.kind {
			case opAddService:
				failed[o.svc.id] = true
			case opDelService:
				owned[o.svc.id] = true // still there: retry next time
			}
			continue
		}
		d.log.Info("ipvs "+o.String(), "netns", d.where)
	}
	d.owned = owned
	d.desired = desired
	d.forgetCounters()
	return errors.Join(errs...)
}

// do performs one change. Counters of a service this Dataplane creates
// start from zero, for it and its destinations.
func (d *Dataplane) do(o op) error {
	var err error
	switch o.kind {
	case opDelService:
		err = d.h.DelService(o.svc.toIPVS())
	case opAddService:
		err = d.h.NewService(o.svc.toIPVS())
		if err == nil {
			d.serviceCounter(o.svc.id).restart()
			for k, c := range d.destCounters {
				if k.svc == o.svc.id {
					c.restart()
				}
			}
		} else if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (is kernel module ip_vs_%s available?)", err, o.svc.sched)
		}
	case opUpdateService:
		err = d.h.UpdateService(o.svc.toIPVS())
	case opDelDest:
		err = d.h.DelDestination(o.svc.toIPVS(), destToIPVS(o.dest, o.d))
	case opAddDest:
		err = d.h.NewDestination(o.svc.toIPVS(), destToIPVS(o.dest, o.d))
	case opUpdateDest:
		err = d.h.UpdateDestination(o.svc.toIPVS(), destToIPVS(o.dest, o.d))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

// readKernel dumps the kernel's services, and the destinations of those
// relevant ones, and feeds their counters.
func (d *Dataplane) readKernel(relevant func(svcID) bool) (map[svcID]*kernelService, error) {
	svcs, err := d.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list ipvs services in %s: %w", d.where, err)
	}
	out := map[svcID]*kernelService{}
	for _, raw := range svcs {
		ks, ok := fromIPVS(raw)
		if !ok || !relevant(ks.id) {
			continue
		}
		dests, err := d.h.GetDestinations(raw)
		if err != nil {
			return nil, fmt.Errorf("list destinations of %s: %w", ks.id, err)
		}
		entry := &kernelService{raw: raw, dests: map[dataplane.BackendKey]*ipvs.Destination{}}
		ks.dests = map[dataplane.BackendKey]kDest{}
		for _, rd := range dests {
			k, ok := destKey(rd)
			if !ok {
				continue
			}
			ks.dests[k] = kDest{weight: rd.Weight, fwd: rd.ConnectionFlags & ipvs.ConnFwdMask}
			entry.dests[k] = rd
		}
		entry.svc = ks
		out[ks.id] = entry
		if d.owned[ks.id] {
			d.serviceCounter(ks.id).observe(raw.Stats)
			for k, rd := range entry.dests {
				d.destCounter(ks.id, k).observe(ipvs.SvcStats(rd.Stats))
			}
		}
	}
	return out, nil
}

func (d *Dataplane) serviceCounter(id svcID) *counter {
	c := d.svcCounters[id]
	if c == nil {
		c = &counter{}
		d.svcCounters[id] = c
	}
	return c
}

func (d *Dataplane) destCounter(id svcID, k dataplane.BackendKey) *counter {
	di := destID{id, k}
	c := d.destCounters[di]
	if c == nil {
		c = &counter{}
		d.destCounters[di] = c
	}
	return c
}

// forgetCounters drops the totals of services and backends the desired
// state no longer names.
func (d *Dataplane) forgetCounters() {
	keepSvc := map[svcID]bool{}
	keepDest := map[destID]bool{}
	for _, ds := range d.desired {
		keepSvc[ds.kernel.id] = true
		for _, b := range ds.backends {
			keepDest[destID{ds.kernel.id, b}] = true
		}
	}
	for id := range d.svcCounters {
		if !keepSvc[id] {
			delete(d.svcCounters, id)
		}
	}
	for id := range d.destCounters {
		if !keepDest[id] {
			delete(d.destCounters, id)
		}
	}
}

// Stats reads IPVS's counters. Every service of the last desired state is
// reported, served or not, with every backend it named (Down ones too):
// Packets and Bytes count both directions (DR and TUN see only client to
// server), NewFlows counts connections scheduled, and a backend's
// ActiveFlows is every connection entry IPVS holds for it, active and
// inactive (IPVS calls UDP entries and TCP ones not established inactive;
// the XDP dataplane's flow table counts them all the same way).
//
// IPVS folds its per-CPU counters into the totals it reports every 2
// seconds (Linux 6.1), so the counters lag by up to that much, and what a
// service counted in the last moments before it leaves the kernel (its VIP
// no longer served) is lost from the totals.
func (d *Dataplane) Stats() (dataplane.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return dataplane.Stats{}, errors.New("ipvs dataplane is closed")
	}
	current, err := d.readKernel(func(id svcID) bool { return d.owned[id] })
	if err != nil {
		return dataplane.Stats{}, fmt.Errorf("stats: %w", err)
	}
	var st dataplane.Stats
	for _, ds := range d.desired {
		id := ds.kernel.id
		c := d.serviceCounter(id)
		ss := dataplane.ServiceStats{Key: ds.key, Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.Conns}
		for _, b := range ds.backends {
			bc := d.destCounter(id, b)
			bs := dataplane.BackendStats{BackendKey: b, Packets: bc.Packets, Bytes: bc.Bytes}
			if ks := current[id]; ks != nil {
				if rd := ks.dests[b]; rd != nil {
					bs.ActiveFlows = uint64(rd.ActiveConnections) + uint64(rd.InactiveConnections)
				}
			}
			ss.Backends = append(ss.Backends, bs)
		}
		st.Services = append(st.Services, ss)
	}
	return st, nil
}

// Release frees the netlink socket and leaves every service in the kernel,
// forwarding on: for a daemon restart, whose next Dataplane adopts the
// services its first desired state names, changing nothing that still
// matches (their totals then start from the kernel's counters).
func (d *Dataplane) Release() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h != nil {
		d.h.Close()
		d.h = nil
		d.owned = nil
	}
	return nil
}

// Close removes every service this Dataplane owns from the kernel and
// releases the netlink socket. Services it does not own stay.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return nil
	}
	var errs []error
	current, err := d.readKernel(func(id svcID) bool { return d.owned[id] })
	if err != nil {
		errs = append(errs, err)
	}
	svcs := map[svcID]kService{}
	for id, ks := range current {
		svcs[id] = ks.svc
	}
	for _, id := range sortedIDs(svcs) {
		o := op{kind: opDelService, svc: svcs[id]}
		if err := d.do(o); err != nil {
			errs = append(errs, err)
			continue
		}
		d.log.Info("ipvs "+o.String(), "netns", d.where)
	}
	d.h.Close()
	d.h = nil
	d.owned = nil
	return errors.Join(errs...)
}
