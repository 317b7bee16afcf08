// Package status holds the daemon's point-in-time snapshot: what `xkeep
// status` prints, what the control socket serves as JSON and what the
// Prometheus collector exports. One type feeds all three, so they never
// disagree.
package status

import (
	"net/netip"
	"strconv"
	"time"
)

// VRRP states as keepalived numbers them (and keepalived-exporter exports).
const (
	StateInit   = "INIT"
	StateBackup = "BACKUP"
	StateMaster = "MASTER"
	StateFault  = "FAULT"
)

// StateNumber maps a state name to keepalived's number (INIT 0, BACKUP 1,
// MASTER 2, FAULT 3); unknown names are -1.
func StateNumber(state string) int {
	switch state {
	case StateInit:
		return 0
	case StateBackup:
		return 1
	case StateMaster:
		return 2
	case StateFault:
		return 3
	}
	return -1
}

// Snapshot is the daemon's state and counters at Time.
type Snapshot struct {
	Time       time.Time   `json:"time"`
	Dataplane  string      `json:"dataplane"`
	Config     Config      `json:"config"`
	Instances  []Instance  `json:"instances"`
	Scripts    []Script    `json:"scripts,omitempty"`
	TrackFiles []TrackFile `json:"track_files,omitempty"`
	Services   []Service   `json:"services"`
	// PacketReasons counts dataplane packets by verdict and pass/drop reason.
	PacketReasons map[string]uint64 `json:"packet_reasons,omitempty"`
	// VRRPDropped counts received VRRP packets dropped before they could
	// be matched to an instance (malformed, unknown VRID), by reason.
	VRRPDropped map[string]uint64 `json:"vrrp_dropped,omitempty"`
	// Apply tells how the dataplane takes its desired state.
	Apply Apply `json:"apply"`
	// Errors are problems producing this snapshot (a part that could not
	// be read); what could be read is filled in.
	Errors []string `json:"errors,omitempty"`
}

// Apply describes the daemon's calls of the dataplane's Apply.
type Apply struct {
	Applies  uint64    `json:"applies"`
	Failures uint64    `json:"failures"`
	LastAt   time.Time `json:"last_at,omitzero"`
	// LastError is the last apply's error; empty when it succeeded. The
	// daemon retries with backoff.
	LastError string `json:"last_error,omitempty"`
}

// Config describes the loaded configuration and its reloads.
type Config struct {
	Path            string    `json:"path"`
	LoadedAt        time.Time `json:"loaded_at"`
	Reloads         uint64    `json:"reloads"`
	ReloadFailures  uint64    `json:"reload_failures"`
	LastReloadOK    bool      `json:"last_reload_ok"`
	LastReloadAt    time.Time `json:"last_reload_at,omitzero"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
	// LastReloadDuration is how long the last reload took to read,
	// check and apply the configuration.
	LastReloadDuration time.Duration `json:"last_reload_duration,omitempty"`
	// Warnings are the running configuration's warnings, as
	// file:line:col messages.
	Warnings []string `json:"warnings,omitempty"`
}

// Instance is one VRRP instance.
type Instance struct {
	Name              string       `json:"name"`
	Interface         string       `json:"interface"`
	VRID              int          `json:"vrid"`
	Version           int          `json:"version"`
	State             string       `json:"state"`
	SyncGroup         string       `json:"sync_group,omitempty"`
	Priority          int          `json:"priority"`
	EffectivePriority int          `json:"effective_priority"`
	Master            netip.Addr   `json:"master,omitzero"`
	MasterPriority    int          `json:"master_priority,omitempty"`
	VIPs              []netip.Addr `json:"vips"`
	// FaultReasons say why the instance is in FAULT.
	FaultReasons []string     `json:"fault_reasons,omitempty"`
	Since        time.Time    `json:"since,omitzero"`
	Counters     VRRPCounters `json:"counters"`
}

// VRRPCounters are an instance's protocol counters.
type VRRPCounters struct {
	AdvertsSent          uint64 `json:"adverts_sent"`
	AdvertsReceived      uint64 `json:"adverts_received"`
	BecameMaster         uint64 `json:"became_master"`
	ReleasedMaster       uint64 `json:"released_master"`
	PriorityZeroSent     uint64 `json:"priority_zero_sent"`
	PriorityZeroReceived uint64 `json:"priority_zero_received"`
	Transitions          uint64 `json:"transitions"`
	// ReceiveErrors counts dropped adverts by reason (ttl, version, type,
	// length, checksum, auth, vrid, interval, ...).
	ReceiveErrors map[string]uint64 `json:"receive_errors,omitempty"`
}

// Script is a vrrp_script's current result.
type Script struct {
	Name string `json:"name"`
	// OK is the script's debounced result (after rise/fall).
	OK bool `json:"ok"`
}

// TrackFile is a track_file's value as last read.
type TrackFile struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// Service is a virtual server and its real servers.
type Service struct {
	Addr        netip.Addr    `json:"addr,omitzero"`
	Port        uint16        `json:"port"`
	Protocol    string        `json:"protocol"`
	FWMark      uint32        `json:"fwmark,omitempty"`
	Scheduler   string        `json:"scheduler"`
	Forward     string        `json:"forward"`
	Persistence time.Duration `json:"persistence,omitempty"`
	// Active is true while this node serves the VIP (VRRP MASTER, or
	// always for a VIP no instance manages).
	Active bool `json:"active"`
	// Instances are the vrrp_instances holding the VIP; empty when none
	// manages it.
	Instances []string `json:"instances,omitempty"`
	// Group is the virtual_server_group the service belongs to.
	Group       string    `json:"group,omitempty"`
	Quorum      int       `json:"quorum,omitempty"`
	QuorumUp    bool      `json:"quorum_up"`
	SorryServer string    `json:"sorry_server,omitempty"`
	SorryActive bool      `json:"sorry_active,omitempty"`
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	NewFlows    uint64    `json:"new_flows"`
	Backends    []Backend `json:"backends"`
}

// Name is the service's label, as "TCP 192.0.2.1:80" or "FWM 7".
func (s Service) Name() string {
	if s.FWMark != 0 {
		return "FWM " + strconv.FormatUint(uint64(s.FWMark), 10)
	}
	return s.Protocol + " " + netip.AddrPortFrom(s.Addr, s.Port).String()
}

// Backend is a real server of a service.
type Backend struct {
	Addr netip.Addr `json:"addr"`
	Port uint16     `json:"port"`
	// Weight is the configured weight; EffectiveWeight what the dataplane
	// uses now (0 while inhibited, MISC_CHECK dynamic weights).
	Weight          int     `json:"weight"`
	EffectiveWeight int     `json:"effective_weight"`
	Healthy         bool    `json:"healthy"`
	State           string  `json:"state"` // up, draining, down (dataplane)
	Sorry           bool    `json:"sorry,omitempty"`
	Packets         uint64  `json:"packets"`
	Bytes           uint64  `json:"bytes"`
	ActiveFlows     uint64  `json:"active_flows"`
	Checks          []Check `json:"checks,omitempty"`
}

// Check is one health checker's latest result.
type Check struct {
	Type string `json:"type"`
	// Target is what it checks: address and port, or the command.
	Target string `json:"target,omitempty"`
	// Up is the checker's verdict after retries; OK the latest probe's.
	Up        bool          `json:"up"`
	OK        bool          `json:"ok"`
	LastRun   time.Time     `json:"last_run,omitzero"`
	Latency   time.Duration `json:"latency"`
	LastError string        `json:"last_error,omitempty"`
	Probes    uint64        `json:"probes"`
	Failures  uint64        `json:"failures"`
}
