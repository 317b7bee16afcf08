// Package dataplane defines the service model shared by xkeep's packet
// forwarders (dataplane/xdp and dataplane/ipvs) and the one interface the
// daemon drives them through.
//
// The model is declarative: the daemon computes the whole desired state from
// the configuration, health checks and VRRP state, and calls Apply with it
// again and again. Implementations diff against what they hold and change
// only the difference, so Apply with the same state twice is a no-op.
package dataplane

import (
	"fmt"
	"net/netip"
	"time"
)

// Dataplane forwards packets for virtual services to their backends.
type Dataplane interface {
	// Apply makes the forwarder match the desired state. It is idempotent.
	// On error the forwarder keeps serving as close to the previous state as
	// it could; the caller retries with the next state.
	Apply(DesiredState) error
	// Stats reads the counters the forwarder keeps.
	Stats() (Stats, error)
	// Close stops forwarding and removes everything Apply installed.
	Close() error
}

// Protocol is an IP protocol number (6 TCP, 17 UDP, 132 SCTP).
type Protocol uint8

// Protocols a virtual service can carry.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Scheduler is a load-balancing algorithm, named as keepalived's lb_algo and
// IPVS name them.
type Scheduler string

// Schedulers keepalived accepts. The XDP dataplane implements rr, wrr, sh,
// mh, lc and wlc; IPVS implements all of them.
const (
	RoundRobin         Scheduler = "rr"
	WeightedRoundRobin Scheduler = "wrr"
	LeastConn          Scheduler = "lc"
	WeightedLeastConn  Scheduler = "wlc"
	LocalityLeastConn  Scheduler = "lblc"
	LocalityLCReplica  Scheduler = "lblcr"
	DestinationHash    Scheduler = "dh"
	SourceHash         Scheduler = "sh"
	Maglev             Scheduler = "mh"
	ShortestDelay      Scheduler = "sed"
	NeverQueue         Scheduler = "nq"
	WeightedFailover   Scheduler = "fo"
	WeightedOverflow   Scheduler = "ovf"
)

// ForwardMethod is how packets reach a backend (keepalived's lb_kind).
type ForwardMethod string

// Forwarding methods. XDP implements DR only; IPVS implements all three.
const (
	DirectRouting ForwardMethod = "DR"
	NAT           ForwardMethod = "NAT"
	Tunnel        ForwardMethod = "TUN"
)

// BackendState is a backend's health as the dataplane should treat it.
type BackendState uint8

const (
	// BackendUp receives new flows in proportion to its weight.
	BackendUp BackendState = iota
	// BackendDraining keeps its existing flows and persistence entries but
	// receives no new ones (keepalived's inhibit_on_failure: weight 0).
	BackendDraining
	// BackendDown receives nothing; its flows are rescheduled.
	BackendDown
)

func (s BackendState) String() string {
	switch s {
	case BackendUp:
		return "up"
	case BackendDraining:
		return "draining"
	case BackendDown:
		return "down"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// ServiceKey identifies a virtual service: VIP, port and protocol, or a
// firewall mark (then Addr only tells the address family).
type ServiceKey struct {
	Addr     netip.Addr
	Port     uint16
	Protocol Protocol
	FWMark   uint32
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		return fmt.Sprintf("fwmark %d", k.FWMark)
	}
	return fmt.Sprintf("%s %s", k.Protocol, netip.AddrPortFrom(k.Addr, k.Port))
}

// BackendKey identifies a backend (real server) within a service.
type BackendKey struct {
	Addr netip.Addr
	Port uint16
}

func (k BackendKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// Backend is a real server of a service.
type Backend struct {
	BackendKey
	// Weight is the relative share of new flows; 0 takes no new flows.
	Weight int
	State  BackendState
	// Forward overrides the service's method for this backend when set.
	Forward ForwardMethod
}

// Service is a virtual service with its scheduling policy and backends.
type Service struct {
	Key       ServiceKey
	Scheduler Scheduler
	// SchedulerFlags are IPVS's flags: "sh-port", "sh-fallback", "mh-port",
	// "mh-fallback", "flag-1".."flag-3".
	SchedulerFlags []string
	Forward        ForwardMethod
	// Persistence pins a client to one backend for this long after its last
	// packet; 0 disables it.
	Persistence time.Duration
	// PersistenceBits is the client prefix length persistence groups by
	// (keepalived's persistence_granularity); 0 means a full address.
	PersistenceBits int
	Backends        []Backend
}

// ServedVIP is a virtual address this node currently holds (VRRP MASTER),
// with the interface VIP traffic arrives on.
type ServedVIP struct {
	Addr      netip.Addr
	Interface string
}

// DesiredState is everything a dataplane should be doing.
type DesiredState struct {
	Services []Service
	// Served lists the VIPs this node is MASTER for. Services whose address
	// is not served must not intercept traffic: the packets go to the local
	// stack, so a backup that is also a real server answers DR packets sent
	// to it instead of re-balancing them.
	Served []ServedVIP
}

// Stats holds a dataplane's counters, cumulative since it started.
type Stats struct {
	Services []ServiceStats
	// Reasons counts packets by verdict and by pass/drop reason, for
	// dataplanes that know them (XDP); names are lowercase_with_underscores.
	Reasons map[string]uint64
}

// ServiceStats are one service's counters.
type ServiceStats struct {
	Key      ServiceKey
	Packets  uint64
	Bytes    uint64
	NewFlows uint64
	Backends []BackendStats
}

// BackendStats are one backend's counters.
type BackendStats struct {
	BackendKey
	Packets     uint64
	Bytes       uint64
	ActiveFlows uint64
	// NewFlows counts the flows (connections) scheduled to this backend,
	// as IPVS's per-real-server connection counter does.
	NewFlows uint64
}
