package health

import (
	"fmt"
	"net/netip"
	"time"
)

// State is what the forwarder should do with a backend.
type State uint8

const (
	// StateDown: not in the pool (keepalived removed it).
	StateDown State = iota
	// StateUp: receives new flows in proportion to its weight.
	StateUp
	// StateDraining: in the pool with weight 0, keeping its existing flows
	// (inhibit_on_failure, sorry_server_inhibit).
	StateDraining
)

func (s State) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateDraining:
		return "draining"
	case StateDown:
		return "down"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Snapshot is the checker's state at one moment.
type Snapshot struct {
	VirtualServers []VirtualServerStatus
}

// VirtualServer returns the status of the named virtual server.
func (s Snapshot) VirtualServer(name string) (VirtualServerStatus, bool) {
	for _, vs := range s.VirtualServers {
		if vs.Name == name {
			return vs, true
		}
	}
	return VirtualServerStatus{}, false
}

// VirtualServerStatus is one virtual server's backends and quorum.
type VirtualServerStatus struct {
	Name string
	// Quorum is the configured quorum; QuorumUp whether it is met.
	Quorum   int
	QuorumUp bool
	// AliveWeight is the summed weight of alive real servers, what quorum
	// is compared with.
	AliveWeight int
	// SorryActive is true while the sorry server replaces the real
	// servers.
	SorryActive bool
	// Backends are the real servers in configuration order, then the
	// sorry server if one is configured.
	Backends []BackendStatus
}

// Backend returns the status of the backend at addr (the real server, or
// the sorry server when sorry is true).
func (v VirtualServerStatus) Backend(addr netip.AddrPort, sorry bool) (BackendStatus, bool) {
	for _, b := range v.Backends {
		if b.Addr == addr && b.Sorry == sorry {
			return b, true
		}
	}
	return BackendStatus{}, false
}

// BackendStatus is one real server (or the sorry server).
type BackendStatus struct {
	Addr  netip.AddrPort
	Sorry bool
	// Alive is the checkers' verdict: every checker passes.
	Alive bool
	// State and Weight are what the forwarder should use now.
	State  State
	Weight int
	// ConfiguredWeight is the weight from the configuration;
	// EffectiveWeight the current one (misc_dynamic changes it), whether
	// or not the server is in the pool.
	ConfiguredWeight int
	EffectiveWeight  int
	Checks           []CheckStatus
}

// CheckStatus is one checker's latest result.
type CheckStatus struct {
	// Type is keepalived's keyword, e.g. "HTTP_GET".
	Type string
	// Target is what it checks: address and port, or the MISC_CHECK
	// command.
	Target string
	// Up is the checker's verdict (after retries); Ran whether it has
	// probed yet.
	Up  bool
	Ran bool
	// OK, Error, LastRun and Latency describe the latest probe.
	OK      bool
	Error   string
	LastRun time.Time
	Latency time.Duration
	// Retrying counts failed attempts toward the next failure verdict.
	Retrying int
	// Probes and Failures count probes and failed probes since start.
	Probes, Failures uint64
}

func (p *pool) snapshot() Snapshot {
	s := Snapshot{VirtualServers: make([]VirtualServerStatus, 0, len(p.vss))}
	for _, vs := range p.vss {
		v := VirtualServerStatus{
			Name:        vs.cfg.Name,
			Quorum:      vs.quorum,
			QuorumUp:    vs.quorumUp,
			AliveWeight: vs.aliveWeight(),
			SorryActive: vs.sorryAlive,
		}
		view := vs.view()
		for i, rs := range vs.rss {
			b := BackendStatus{
				Addr:             rs.cfg.Addr,
				Alive:            rs.alive,
				State:            view[i].state,
				Weight:           view[i].weight,
				ConfiguredWeight: rs.cfg.Weight,
				EffectiveWeight:  realWeight(rs.weight),
			}
			for _, c := range rs.checks {
				b.Checks = append(b.Checks, CheckStatus{
					Type:     c.cfg.Spec.Kind(),
					Target:   c.target,
					Up:       c.up,
					Ran:      c.ran,
					OK:       c.lastOK,
					Error:    c.lastErr,
					LastRun:  c.lastRun,
					Latency:  c.latency,
					Retrying: c.retrying,
					Probes:   c.probes,
					Failures: c.failures,
				})
			}
			v.Backends = append(v.Backends, b)
		}
		if s := vs.cfg.Sorry; s != nil {
			sv := view[len(view)-1]
			v.Backends = append(v.Backends, BackendStatus{
				Addr:             s.Addr,
				Sorry:            true,
				Alive:            vs.sorryAlive,
				State:            sv.state,
				Weight:           sv.weight,
				ConfiguredWeight: sorryWeight(s),
				EffectiveWeight:  sorryWeight(s),
			})
		}
		s.VirtualServers = append(s.VirtualServers, v)
	}
	return s
}
