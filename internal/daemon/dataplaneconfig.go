package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane"
)

// servicePlan is the configuration's half of the dataplane's desired
// state: every virtual service (virtual_server_group entries expanded)
// with its configured backends, and which VRRP instance holds each
// virtual address. desiredState adds the running half: health and VRRP
// state.
type servicePlan struct {
	Services []plannedService
	// Owners maps every address a vrrp_instance adds on MASTER
	// (virtual_ipaddress and virtual_ipaddress_excluded) to the instances
	// that hold it.
	Owners map[netip.Addr][]vipOwner
}

// vipOwner is a VRRP instance holding an address, and the interface the
// address lives on (its dev, else the instance's interface): the one its
// traffic arrives on, where the XDP program must run.
type vipOwner struct {
	Instance  string
	Interface string
}

// plannedService is one dataplane service of the configuration.
type plannedService struct {
	// Service holds the policy and the configured backends: real servers
	// with their configured weights, then the sorry server, all Up.
	// desiredState replaces states and weights with the health checker's.
	Service dataplane.Service
	// Health is the health checker's name of the virtual_server this
	// service comes from (several services share it when it is a group).
	Health string
	// Sorry is the sorry server's key, when there is one.
	Sorry *dataplane.BackendKey
	// Group is the virtual_server_group the service was expanded from.
	Group string
	Pos   config.Pos
}

// serviceName is how status, metrics and logs name a service, as
// ipvsadm does: "TCP 192.0.2.1:80", "FWM 7".
func serviceName(k dataplane.ServiceKey) string {
	if k.FWMark != 0 {
		return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return k.Protocol.String() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// healthName names a virtual_server for the health checker: its service
// name, or "GROUP name PROTO" for a virtual_server_group.
func healthName(vs *config.VirtualServer) string {
	switch {
	case vs.Group != "":
		return "GROUP " + vs.Group + " " + string(vs.Protocol)
	case vs.FWMark != 0:
		return "FWM " + strconv.FormatUint(uint64(vs.FWMark), 10)
	}
	return string(vs.Protocol) + " " + netip.AddrPortFrom(vs.Addr, vs.Port).String()
}

// ServicePlan translates the configuration's virtual servers into
// dataplane services. Settings no running part acts on come back as
// warnings located at their file:line:col; two virtual servers claiming
// one service is an error.
func ServicePlan(cfg *config.Config) (servicePlan, []string, error) {
	plan := servicePlan{Owners: map[netip.Addr][]vipOwner{}}
	var warns []string
	warn := func(pos config.Pos, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("%s: %s", pos, fmt.Sprintf(format, args...)))
	}
	for _, in := range cfg.Instances {
		for _, list := range [][]config.VirtualAddress{in.VIPs, in.ExcludedVIPs} {
			for _, v := range list {
				ifname := v.Dev
				if ifname == "" {
					ifname = in.Interface
				}
				a := v.Addr().Unmap()
				plan.Owners[a] = append(plan.Owners[a], vipOwner{Instance: in.Name, Interface: ifname})
			}
		}
	}

	seen := map[dataplane.ServiceKey]config.Pos{}
	var errs []string
	for _, vs := range cfg.VirtualServers {
		if len(vs.RealServers) == 0 && vs.SorryServer == nil {
			// config warns already; the service would only drop traffic.
			continue
		}
		tmpl, sorry := serviceTemplate(vs)
		if slices.Contains(vs.SchedFlags, "ops") {
			warn(explicitPos(vs.Explicit, "ops", vs.Pos), "ops (one-packet scheduling) is not implemented: UDP datagrams of one client stick to one real server")
		}
		if vs.PersistenceEngine != "" {
			warn(explicitPos(vs.Explicit, "persistence_engine", vs.Pos), "persistence_engine %s is not implemented: persistence is by client address", vs.PersistenceEngine)
		}
		if vs.HASuspend {
			warn(explicitPos(vs.Explicit, "ha_suspend", vs.Pos), "ha_suspend is not implemented: health checks run on backup nodes too")
		}
		for _, rs := range vs.RealServers {
			if rs.UThreshold != 0 || rs.LThreshold != 0 {
				warn(rs.Pos, "real_server %s: uthreshold/lthreshold are not implemented: connections are not limited", rs.Addr)
			}
		}
		add := func(key dataplane.ServiceKey, pos config.Pos) {
			if prev, dup := seen[key]; dup {
				errs = append(errs, fmt.Sprintf("%s: virtual_server %s: service %s is already defined at %s", pos, vs.Key(), serviceName(key), prev))
				return
			}
			seen[key] = pos
			svc := tmpl
			svc.Key = key
			svc.Backends = slices.Clone(tmpl.Backends)
			plan.Services = append(plan.Services, plannedService{
				Service: svc, Health: healthName(vs), Sorry: sorry, Group: vs.Group, Pos: vs.Pos,
			})
		}
		proto := protocolOf(vs.Protocol)
		switch {
		case vs.Group != "":
			g := cfg.VirtualServerGroup(vs.Group)
			if g == nil {
				errs = append(errs, fmt.Sprintf("%s: virtual_server group %s: no such virtual_server_group", vs.Pos, vs.Group))
				continue
			}
			for _, e := range g.Entries {
				if e.FWMark != 0 {
					add(dataplane.ServiceKey{FWMark: e.FWMark, Addr: unspecified(familyOr(e.Family, vs.Family))}, e.Pos)
					continue
				}
				for a := range e.Addrs() {
					add(dataplane.ServiceKey{Addr: a.Unmap(), Port: e.Port, Protocol: proto}, e.Pos)
				}
			}
		case vs.FWMark != 0:
			add(dataplane.ServiceKey{FWMark: vs.FWMark, Addr: unspecified(vs.Family)}, vs.Pos)
		default:
			add(dataplane.ServiceKey{Addr: vs.Addr.Unmap(), Port: vs.Port, Protocol: proto}, vs.Pos)
		}
	}
	if len(errs) > 0 {
		return servicePlan{}, warns, configErrors(errs)
	}
	return plan, warns, nil
}

// serviceTemplate is a virtual_server's policy and backends, without its
// key.
func serviceTemplate(vs *config.VirtualServer) (dataplane.Service, *dataplane.BackendKey) {
	svc := dataplane.Service{
		Scheduler:       dataplane.Scheduler(vs.LBAlgo),
		Forward:         dataplane.ForwardMethod(vs.LBKind),
		Persistence:     vs.PersistenceTimeout,
		PersistenceBits: vs.PersistenceGranularity,
	}
	for _, f := range vs.SchedFlags {
		if f != "ops" {
			svc.SchedulerFlags = append(svc.SchedulerFlags, f)
		}
	}
	for _, rs := range vs.RealServers {
		b := dataplane.Backend{
			BackendKey: dataplane.BackendKey{Addr: rs.Addr.Unmap(), Port: rs.Port},
			Weight:     rs.Weight,
		}
		if rs.LBKind != vs.LBKind {
			b.Forward = dataplane.ForwardMethod(rs.LBKind)
		}
		svc.Backends = append(svc.Backends, b)
	}
	var sorry *dataplane.BackendKey
	if s := vs.SorryServer; s != nil {
		k := dataplane.BackendKey{Addr: s.Addr.Unmap(), Port: sorryPort(vs)}
		sorry = &k
		if !slices.ContainsFunc(svc.Backends, func(b dataplane.Backend) bool { return b.BackendKey == k }) {
			b := dataplane.Backend{BackendKey: k, Weight: 1}
			if s.LBKind != "" && s.LBKind != vs.LBKind {
				b.Forward = dataplane.ForwardMethod(s.LBKind)
			}
			svc.Backends = append(svc.Backends, b)
		}
	}
	return svc, sorry
}

// sorryPort is the sorry server's port: its own, else the virtual
// server's (keepalived's default).
func sorryPort(vs *config.VirtualServer) uint16 {
	if vs.SorryServer.Port != 0 {
		return vs.SorryServer.Port
	}
	return vs.Port
}

func protocolOf(p config.Protocol) dataplane.Protocol {
	switch p {
	case config.UDP:
		return dataplane.UDP
	case config.SCTP:
		return dataplane.SCTP
	}
	return dataplane.TCP
}

func familyOr(f, def config.Family) config.Family {
	if f != "" {
		return f
	}
	return def
}

// unspecified is the address a fwmark service carries to tell its family.
func unspecified(f config.Family) netip.Addr {
	if f == config.IPv6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// explicitPos is where a block set keyword, else the block itself.
func explicitPos(e config.Explicit, keyword string, block config.Pos) config.Pos {
	if p, ok := e[keyword]; ok {
		return p
	}
	return block
}
