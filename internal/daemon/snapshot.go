package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/vrrp"
)

// Snapshot builds the daemon's status now: VRRP instances, services and
// backends with health, weights and the dataplane's counters (read from
// the BPF maps or IPVS at this moment), and the configuration's reloads.
// A part that cannot be read leaves its fields empty and an entry in
// Errors; Snapshot itself does not fail.
func (d *Daemon) Snapshot(ctx context.Context) (status.Snapshot, error) {
	d.mu.Lock()
	cur, dp := d.cur, d.dp
	rs, ap := d.reloads, d.apply
	trans := make(map[string]uint64, len(d.transitions))
	for k, v := range d.transitions {
		trans[k] = v
	}
	d.mu.Unlock()

	snap := status.Snapshot{
		Time:      d.clock.Now(),
		Dataplane: d.opts.Dataplane.name(),
		Config: status.Config{
			Path:               d.opts.ConfigPath,
			LoadedAt:           cur.at,
			Reloads:            rs.count,
			ReloadFailures:     rs.failures,
			LastReloadOK:       rs.lastOK,
			LastReloadAt:       rs.lastAt,
			LastReloadError:    rs.lastErr,
			LastReloadDuration: rs.lastTook,
			Warnings:           cur.warnings,
		},
		Apply: status.Apply{Applies: ap.count, Failures: ap.failed, LastAt: ap.lastAt, LastError: ap.lastErr},
	}
	if err := ctx.Err(); err != nil {
		return snap, err
	}

	for _, st := range d.router.Status() {
		snap.Instances = append(snap.Instances, instanceStatus(st, cur, trans[st.Name]))
	}
	for _, sc := range d.router.Scripts() {
		snap.Scripts = append(snap.Scripts, status.Script{Name: sc.Name, OK: sc.OK})
	}
	for _, f := range d.router.Files() {
		snap.TrackFiles = append(snap.TrackFiles, status.TrackFile{Name: f.Name, Value: f.Value})
	}
	if drops := d.VRRPErrors(); len(drops) > 0 {
		snap.VRRPDropped = drops
	}

	var stats dataplane.Stats
	if dp != nil {
		var err error
		if stats, err = dp.Stats(); err != nil {
			snap.Errors = append(snap.Errors, fmt.Sprintf("dataplane counters: %v", err))
		}
	}
	snap.PacketReasons = stats.Reasons
	counters := map[dataplane.ServiceKey]dataplane.ServiceStats{}
	for _, s := range stats.Services {
		counters[s.Key] = s
	}
	checked := indexHealth(d.checks.Snapshot())
	for _, p := range cur.plan.Services {
		snap.Services = append(snap.Services, serviceStatus(p, cur.plan, checked, ap.last, counters[p.Service.Key]))
	}
	return snap, nil
}

func instanceStatus(st vrrp.InstanceStatus, cur *loaded, transitions uint64) status.Instance {
	in := status.Instance{
		Name:              st.Name,
		Interface:         st.Interface,
		VRID:              int(st.VRID),
		State:             st.State.String(),
		Priority:          int(st.BasePriority),
		EffectivePriority: int(st.EffectivePriority),
		Master:            st.MasterAddr,
		MasterPriority:    int(st.MasterPriority),
		FaultReasons:      st.FaultReasons,
		Since:             st.LastTransition,
		Counters: status.VRRPCounters{
			AdvertsSent:          st.Counters.AdvertsSent,
			AdvertsReceived:      st.Counters.AdvertsReceived,
			BecameMaster:         st.Counters.BecameMaster,
			ReleasedMaster:       st.Counters.ReleasedMaster,
			PriorityZeroSent:     st.Counters.PriorityZeroSent,
			PriorityZeroReceived: st.Counters.PriorityZeroReceived,
			Transitions:          transitions,
		},
	}
	if len(st.Counters.Errors) > 0 {
		in.Counters.ReceiveErrors = map[string]uint64{}
		for r, n := range st.Counters.Errors {
			in.Counters.ReceiveErrors[string(r)] = n
		}
	}
	if c := cur.cfg.Instance(st.Name); c != nil {
		in.Version = c.Version
		in.SyncGroup = c.SyncGroup
		for _, v := range c.VIPs {
			in.VIPs = append(in.VIPs, v.Addr())
		}
	}
	return in
}

func serviceStatus(p plannedService, plan servicePlan, checked map[string]*health.VirtualServerStatus, last desired, c dataplane.ServiceStats) status.Service {
	k := p.Service.Key
	s := status.Service{
		Addr:        k.Addr,
		Port:        k.Port,
		Protocol:    k.Protocol.String(),
		FWMark:      k.FWMark,
		Scheduler:   string(p.Service.Scheduler),
		Forward:     string(p.Service.Forward),
		Persistence: p.Service.Persistence,
		Active:      last.Served[k],
		Group:       p.Group,
		QuorumUp:    true,
		Packets:     c.Packets,
		Bytes:       c.Bytes,
		NewFlows:    c.NewFlows,
	}
	if k.FWMark != 0 {
		s.Addr, s.Protocol = netip.Addr{}, "FWM"
	}
	for _, o := range plan.Owners[k.Addr] {
		s.Instances = append(s.Instances, o.Instance)
	}
	if p.Sorry != nil {
		s.SorryServer = p.Sorry.String()
	}
	vs, hasChecks := checked[p.Health]
	if hasChecks {
		s.Quorum, s.QuorumUp, s.SorryActive = vs.Quorum, vs.QuorumUp, vs.SorryActive
	}
	bc := map[dataplane.BackendKey]dataplane.BackendStats{}
	for _, b := range c.Backends {
		bc[b.BackendKey] = b
	}
	for _, b := range backendsOf(p, checked) {
		ap := netip.AddrPortFrom(b.Addr, b.Port)
		st := status.Backend{
			Addr:    b.Addr,
			Port:    b.Port,
			Weight:  configuredWeight(p, b.BackendKey),
			Healthy: true,
			State:   b.State.String(),
			Sorry:   p.Sorry != nil && *p.Sorry == b.BackendKey,
		}
		if b.State == dataplane.BackendUp {
			st.EffectiveWeight = b.Weight
		}
		if hasChecks {
			if hb, ok := vs.Backend(ap, false); ok {
				st.Healthy = hb.Alive
				st.Checks = checkStatus(hb.Checks)
			} else if hb, ok := vs.Backend(ap, true); ok {
				st.Healthy = hb.Alive
			}
		}
		cs := bc[b.BackendKey]
		st.Packets, st.Bytes, st.ActiveFlows = cs.Packets, cs.Bytes, cs.ActiveFlows
		s.Backends = append(s.Backends, st)
	}
	return s
}

func configuredWeight(p plannedService, k dataplane.BackendKey) int {
	for _, b := range p.Service.Backends {
		if b.BackendKey == k {
			return b.Weight
		}
	}
	return 0
}

func checkStatus(cs []health.CheckStatus) []status.Check {
	var out []status.Check
	for _, c := range cs {
		out = append(out, status.Check{
			Type:      c.Type,
			Target:    c.Target,
			Up:        c.Up,
			OK:        c.OK,
			LastRun:   c.LastRun,
			Latency:   c.Latency,
			LastError: c.Error,
			Probes:    c.Probes,
			Failures:  c.Failures,
		})
	}
	return out
}
