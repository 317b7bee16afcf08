package config

import (
	"fmt"
	"iter"
	"net/netip"
	"time"
)

// Config is a keepalived.conf resolved into typed values. Every default is
// keepalived's (from keepalived.conf(5)) and is already filled in, so
// consumers never re-derive one: a real server's checker carries its
// effective connect_timeout, retry, delay_loop... inherited from the real
// and virtual server. Explicit records which keywords a block set, and where,
// for the few decisions that depend on it.
type Config struct {
	Global Global `json:"global"`
	// SSL is the SSL { } context for SSL_GET checkers; nil when absent.
	SSL *SSLContext `json:"ssl,omitempty"`

	Scripts             []*VRRPScript         `json:"vrrp_scripts,omitempty"`
	TrackFiles          []*TrackFile          `json:"track_files,omitempty"`
	Instances           []*VRRPInstance       `json:"vrrp_instances,omitempty"`
	SyncGroups          []*SyncGroup          `json:"vrrp_sync_groups,omitempty"`
	VirtualServerGroups []*VirtualServerGroup `json:"virtual_server_groups,omitempty"`
	VirtualServers      []*VirtualServer      `json:"virtual_servers,omitempty"`

	// Files lists every file read, the main file first, then includes in
	// the order they were opened (a daemon may watch them).
	Files []string `json:"files"`
}

// Script returns the vrrp_script with the given name, or nil.
func (c *Config) Script(name string) *VRRPScript {
	for _, s := range c.Scripts {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TrackFile returns the track_file with the given name, or nil.
func (c *Config) TrackFile(name string) *TrackFile {
	for _, f := range c.TrackFiles {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Instance returns the vrrp_instance with the given name, or nil.
func (c *Config) Instance(name string) *VRRPInstance {
	for _, in := range c.Instances {
		if in.Name == name {
			return in
		}
	}
	return nil
}

// VirtualServerGroup returns the virtual_server_group with the given name,
// or nil.
func (c *Config) VirtualServerGroup(name string) *VirtualServerGroup {
	for _, g := range c.VirtualServerGroups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Explicit maps a keyword to where a block set it. Keywords left at their
// default are absent.
type Explicit map[string]Pos

// Has reports whether the keyword was written in the block.
func (e Explicit) Has(keyword string) bool {
	_, ok := e[keyword]
	return ok
}

func (e Explicit) set(keyword string, pos Pos) { e[keyword] = pos }

// Command is a script to run: notify scripts, vrrp_script's script,
// MISC_CHECK's misc_path, quorum_up/down.
type Command struct {
	// Cmd is the command as written (one string, quotes removed).
	Cmd string `json:"cmd"`
	// Args is Cmd split into words the way keepalived splits it: on
	// unquoted blanks, with '...' and "..." quoting and \ escapes.
	Args []string `json:"args"`
	// User and Group run the script as someone else; empty means the
	// global script_user (or keepalived's default).
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	Pos   Pos    `json:"pos"`
}

func (c *Command) String() string {
	if c == nil {
		return ""
	}
	return c.Cmd
}

// Global holds global_defs and the global settings VRRP instances inherit.
type Global struct {
	// RouterID identifies this node in notifications; empty means the host
	// name (keepalived's default).
	RouterID string `json:"router_id,omitempty"`
	// DefaultInterface is where VIPs without dev and no instance interface
	// go (keepalived default eth0).
	DefaultInterface string `json:"default_interface"`

	VRRPMcastGroup4 netip.Addr `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6 netip.Addr `json:"vrrp_mcast_group6"`
	// VRRPVersion is the default version of instances (2); IPv6 instances
	// always use 3.
	VRRPVersion int `json:"vrrp_version"`

	VRRPGarpMasterDelay         time.Duration `json:"vrrp_garp_master_delay"`
	VRRPGarpMasterRepeat        int           `json:"vrrp_garp_master_repeat"`
	VRRPGarpLowerPrioDelay      time.Duration `json:"vrrp_garp_lower_prio_delay"`
	VRRPGarpLowerPrioRepeat     int           `json:"vrrp_garp_lower_prio_repeat"`
	VRRPGarpMasterRefresh       time.Duration `json:"vrrp_garp_master_refresh"`
	VRRPGarpMasterRefreshRepeat int           `json:"vrrp_garp_master_refresh_repeat"`
	// VRRPGarpInterval and VRRPGnaInterval space out gratuitous ARPs and
	// unsolicited neighbour adverts on one interface.
	VRRPGarpInterval time.Duration `json:"vrrp_garp_interval"`
	VRRPGnaInterval  time.Duration `json:"vrrp_gna_interval"`
	// VRRPMinGarp sends one GARP on becoming master and no second burst.
	VRRPMinGarp bool `json:"vrrp_min_garp"`

	VRRPLowerPrioNoAdvert    bool `json:"vrrp_lower_prio_no_advert"`
	VRRPHigherPrioSendAdvert bool `json:"vrrp_higher_prio_send_advert"`
	VRRPSkipCheckAdvAddr     bool `json:"vrrp_skip_check_adv_addr"`
	VRRPCheckUnicastSrc      bool `json:"vrrp_check_unicast_src"`
	VRRPStrict               bool `json:"vrrp_strict"`
	V3ChecksumAsV2           bool `json:"v3_checksum_as_v2"`
	// VRRPStartupDelay delays the start of all VRRP instances.
	VRRPStartupDelay time.Duration `json:"vrrp_startup_delay"`
	// VRRPDownTimerAdverts is the default down_timer_adverts (3).
	VRRPDownTimerAdverts int `json:"vrrp_down_timer_adverts"`

	// The VRRP thread's placement: keepalived's vrrp child process
	// settings, applied by xkeep to the thread that runs the VRRP
	// protocol loop (health checks and the rest keep normal scheduling).
	// VRRPRealtimePriority is vrrp_rt_priority (1-99; 0 keeps normal
	// scheduling), VRRPNice is vrrp_priority (-20 to 19), VRRPCPUs is
	// vrrp_cpu_affinity and VRRPRlimitRTTime is vrrp_rlimit_rttime (how
	// long the realtime thread may run without blocking; default 10 ms).
	VRRPRealtimePriority int           `json:"vrrp_rt_priority,omitempty"`
	VRRPNice             int           `json:"vrrp_priority,omitempty"`
	VRRPCPUs             []int         `json:"vrrp_cpu_affinity,omitempty"`
	VRRPRlimitRTTime     time.Duration `json:"vrrp_rlimit_rttime"`
	// VRRPNoSwap is vrrp_no_swap: the whole daemon is locked in memory.
	VRRPNoSwap bool `json:"vrrp_no_swap,omitempty"`

	// ScriptUser and ScriptGroup run scripts that name no user.
	ScriptUser           string `json:"script_user,omitempty"`
	ScriptGroup          string `json:"script_group,omitempty"`
	EnableScriptSecurity bool   `json:"enable_script_security"`

	// Pos is the first global_defs block; zero when there is none.
	Pos      Pos      `json:"pos,omitzero"`
	Explicit Explicit `json:"-"`
}

// SSLContext is the SSL { } block used by SSL_GET.
type SSLContext struct {
	Password    string `json:"password,omitempty"`
	CA          string `json:"ca,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
	Pos         Pos    `json:"pos"`
}

// VRRPScript is a vrrp_script: a command run periodically whose exit status
// VRRP instances track.
type VRRPScript struct {
	Name   string   `json:"name"`
	Script *Command `json:"script"`
	// Interval between runs (default 1s).
	Interval time.Duration `json:"interval"`
	// Timeout after which a run counts as failed (default Interval).
	Timeout time.Duration `json:"timeout"`
	// Weight adjusts the priority of tracking instances (default 0: a
	// failure puts them in FAULT). Reverse flips the direction.
	Weight  int  `json:"weight"`
	Reverse bool `json:"weight_reverse"`
	// Rise and Fall are the consecutive successes and failures that change
	// the state (default 1 each).
	Rise int `json:"rise"`
	Fall int `json:"fall"`
	// User and Group from the script's user keyword.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// InitFail starts the script in the failed state.
	InitFail bool `json:"init_fail"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// TrackFile is a track_file (or vrrp_track_file) block: a file holding a
// number that VRRP instances track. A value of 0 is OK; otherwise, with
// weight 0 the tracker is in FAULT, else value*weight moves the priority.
type TrackFile struct {
	Name string `json:"name"`
	// Path is the file as written (keepalived does not resolve a relative
	// path either).
	Path string `json:"file"`
	// Weight is the default weight of tracking instances (default 1);
	// Reverse flips the direction.
	Weight  int  `json:"weight"`
	Reverse bool `json:"weight_reverse"`
	// InitFile writes InitValue to the file at startup when the file does
	// not exist, or always with InitOverwrite (init_file [VALUE] [overwrite]).
	InitFile      bool  `json:"init_file"`
	InitValue     int64 `json:"init_value"`
	InitOverwrite bool  `json:"init_overwrite"`

	Pos Pos `json:"pos"`
}

// State is a VRRP instance's initial state.
type State string

const (
	StateMaster State = "MASTER"
	StateBackup State = "BACKUP"
)

// Family is an address family.
type Family string

const (
	IPv4 Family = "inet"
	IPv6 Family = "inet6"
)

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// VRRPInstance is a vrrp_instance.
type VRRPInstance struct {
	Name string `json:"name"`
	// State is the initial state (default BACKUP).
	State     State  `json:"state"`
	Interface string `json:"interface,omitempty"`
	VRID      int    `json:"virtual_router_id"`
	// Priority is the configured (base) priority, 1-255 (default 100);
	// 255 means address owner.
	Priority int `json:"priority"`
	// AdvertInterval (default 1s). VRRPv2 carries whole seconds, VRRPv3
	// centiseconds; the value is already rounded as keepalived rounds it.
	AdvertInterval time.Duration `json:"advert_int"`
	// Version is 2 or 3: version, else vrrp_version, else 3 for IPv6.
	Version int `json:"version"`
	// Family of the VIPs (and of the adverts).
	Family Family `json:"family"`

	Auth *Authentication `json:"authentication,omitempty"`

	VIPs         []VirtualAddress `json:"virtual_ipaddress,omitempty"`
	ExcludedVIPs []VirtualAddress `json:"virtual_ipaddress_excluded,omitempty"`

	TrackScripts    []TrackScript    `json:"track_script,omitempty"`
	TrackInterfaces []TrackInterface `json:"track_interface,omitempty"`
	TrackFiles      []TrackFileRef   `json:"track_file,omitempty"`

	Notify Notify `json:"notify"`

	Nopreempt    bool          `json:"nopreempt"`
	PreemptDelay time.Duration `json:"preempt_delay"`

	// Gratuitous ARP / unsolicited NA settings, defaulted from the global
	// vrrp_garp_* values.
	GarpMasterDelay         time.Duration `json:"garp_master_delay"`
	GarpMasterRepeat        int           `json:"garp_master_repeat"`
	GarpLowerPrioDelay      time.Duration `json:"garp_lower_prio_delay"`
	GarpLowerPrioRepeat     int           `json:"garp_lower_prio_repeat"`
	GarpMasterRefresh       time.Duration `json:"garp_master_refresh"`
	GarpMasterRefreshRepeat int           `json:"garp_master_refresh_repeat"`

	// McastSrcIP or UnicastSrcIP set the advert source address (the same
	// field in keepalived); invalid when not set.
	SrcIP netip.Addr `json:"src_ip,omitzero"`
	// UnicastPeers switch the instance to unicast adverts.
	UnicastPeers []UnicastPeer `json:"unicast_peer,omitempty"`
	// UnicastTTL is the TTL/hop limit of unicast adverts (default 255).
	UnicastTTL int `json:"unicast_ttl"`
	// McastDstIP replaces the multicast group; invalid when not set (use
	// Global.VRRPMcastGroup4/6).
	McastDstIP netip.Addr `json:"mcast_dst_ip,omitzero"`

	// Accept lets a non-owner master receive packets for the VIPs
	// (default on, off in strict mode).
	Accept           bool `json:"accept"`
	DontTrackPrimary bool `json:"dont_track_primary"`
	// LowerPrioNoAdvert: do not answer a lower priority advert with one of
	// ours (default vrrp_lower_prio_no_advert, on in strict mode).
	LowerPrioNoAdvert    bool `json:"lower_prio_no_advert"`
	HigherPrioSendAdvert bool `json:"higher_prio_send_advert"`
	SkipCheckAdvAddr     bool `json:"skip_check_adv_addr"`
	CheckUnicastSrc      bool `json:"check_unicast_src"`
	StrictMode           bool `json:"strict_mode"`
	V3ChecksumAsV2       bool `json:"v3_checksum_as_v2"`
	// DownTimerAdverts is the master down timer in advert intervals (3).
	DownTimerAdverts   int  `json:"down_timer_adverts"`
	NoVirtualIPAddress bool `json:"no_virtual_ipaddress"`
	PromoteSecondaries bool `json:"promote_secondaries"`
	Debug              int  `json:"debug"`
	SMTPAlert          bool `json:"smtp_alert"`

	// SyncGroup names the vrrp_sync_group the instance belongs to.
	SyncGroup string `json:"sync_group,omitempty"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// Owner reports whether the instance is the address owner (priority 255).
func (in *VRRPInstance) Owner() bool { return in.Priority == 255 }

// Unicast reports whether the instance sends adverts by unicast.
func (in *VRRPInstance) Unicast() bool { return len(in.UnicastPeers) > 0 }

// AuthType is the VRRPv2 authentication type.
type AuthType string

const (
	AuthPass AuthType = "PASS"
	AuthAH   AuthType = "AH"
)

// Authentication is the authentication { } block.
type Authentication struct {
	Type AuthType `json:"auth_type"`
	// Pass is at most 8 bytes: keepalived uses only the first eight.
	Pass string `json:"auth_pass"`
	Pos  Pos    `json:"pos"`
}

// VirtualAddress is a line of virtual_ipaddress (and _excluded).
type VirtualAddress struct {
	// Prefix is the address with its prefix length as written (/32 or /128
	// when none); the address is not masked.
	Prefix    netip.Prefix `json:"prefix"`
	Broadcast netip.Addr   `json:"brd,omitzero"`
	// Dev is the interface for the address; empty means the instance's.
	Dev   string `json:"dev,omitempty"`
	Scope string `json:"scope,omitempty"`
	Label string `json:"label,omitempty"`
	// Peer is the other end of a point-to-point address.
	Peer netip.Prefix `json:"peer,omitzero"`
	// Flags are the address flags written: home, -nodad, mngtmpaddr,
	// noprefixroute, autojoin.
	Flags   []string `json:"flags,omitempty"`
	NoTrack bool     `json:"no_track"`
	// PreferredLft is "forever" or seconds; empty when not written.
	PreferredLft string `json:"preferred_lft,omitempty"`
	Pos          Pos    `json:"pos"`
}

// Addr is the address without its prefix length.
func (v VirtualAddress) Addr() netip.Addr { return v.Prefix.Addr() }

func (v VirtualAddress) String() string {
	s := v.Prefix.String()
	if v.Dev != "" {
		s += " dev " + v.Dev
	}
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

// TrackScript is a track_script entry.
type TrackScript struct {
	Name string `json:"name"`
	// Weight is the effective weight: the entry's own, else the script's.
	Weight int `json:"weight"`
	// WeightSet tells an entry weight from the script's default.
	WeightSet bool `json:"weight_set"`
	Reverse   bool `json:"reverse"`
	Pos       Pos  `json:"pos"`
}

// TrackInterface is a track_interface entry.
type TrackInterface struct {
	Name string `json:"name"`
	// Weight 0 (the default) means a down interface puts the instance in
	// FAULT; otherwise the priority moves by Weight.
	Weight  int  `json:"weight"`
	Reverse bool `json:"reverse"`
	Pos     Pos  `json:"pos"`
}

// TrackFileRef is an entry of an instance's track_file block.
type TrackFileRef struct {
	Name string `json:"name"`
	// Weight and Reverse are the effective ones: the entry's own, else the
	// track_file's (noreverse clears the track_file's reverse).
	Weight  int  `json:"weight"`
	Reverse bool `json:"reverse"`
	Pos     Pos  `json:"pos"`
}

// UnicastPeer is a unicast_peer entry.
type UnicastPeer struct {
	Addr netip.Addr `json:"addr"`
	// MinTTL and MaxTTL bound the TTL of received adverts; 0 and 255 when
	// not written.
	MinTTL int `json:"min_ttl"`
	MaxTTL int `json:"max_ttl"`
	Pos    Pos `json:"pos"`
}

// Notify holds the notify scripts of an instance or sync group; nil means
// not configured.
type Notify struct {
	Master *Command `json:"notify_master,omitempty"`
	Backup *Command `json:"notify_backup,omitempty"`
	Fault  *Command `json:"notify_fault,omitempty"`
	Stop   *Command `json:"notify_stop,omitempty"`
	// Any runs on every transition with GROUP|INSTANCE, name, state and
	// priority appended.
	Any *Command `json:"notify,omitempty"`
	// MasterRxLowerPri runs when a master receives a lower priority advert.
	MasterRxLowerPri *Command `json:"notify_master_rx_lower_pri,omitempty"`
}

// SyncGroup is a vrrp_sync_group: instances that change state together.
type SyncGroup struct {
	Name            string           `json:"name"`
	Instances       []string         `json:"group"`
	TrackScripts    []TrackScript    `json:"track_script,omitempty"`
	TrackInterfaces []TrackInterface `json:"track_interface,omitempty"`
	// TrackFiles apply to every member, as if each tracked them.
	TrackFiles []TrackFileRef `json:"track_file,omitempty"`
	Notify     Notify         `json:"notify"`
	SMTPAlert  bool           `json:"smtp_alert"`
	// TrackingWeight is sync_group_tracking_weight (or the deprecated
	// global_tracking): member trackers keep their weights.
	TrackingWeight bool `json:"sync_group_tracking_weight"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// Protocol is a virtual server's L4 protocol.
type Protocol string

const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// VirtualServerGroup is a virtual_server_group.
type VirtualServerGroup struct {
	Name    string     `json:"name"`
	Entries []VSGEntry `json:"entries"`
	Pos     Pos        `json:"pos"`
}

// VSGEntry is a line of a virtual_server_group: an address range with a
// port, or a fwmark.
type VSGEntry struct {
	// First and Last bound an inclusive address range (equal for one
	// address). A prefix (192.168.202.8/29) is expanded to its range.
	First netip.Addr `json:"first,omitzero"`
	Last  netip.Addr `json:"last,omitzero"`
	// Port is 0 when not given (only for persistent services).
	Port   uint16 `json:"port,omitempty"`
	FWMark uint32 `json:"fwmark,omitempty"`
	// Family is set for fwmark entries written with inet/inet6.
	Family Family `json:"family,omitempty"`
	Pos    Pos    `json:"pos"`
}

// Addrs yields every address from First to Last (nothing for a fwmark
// entry).
func (e VSGEntry) Addrs() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		if !e.First.IsValid() {
			return
		}
		for a := e.First; a.IsValid() && !e.Last.Less(a); a = a.Next() {
			if !yield(a) {
				return
			}
		}
	}
}

// LBKind is a forwarding method (lb_kind / lvs_method).
type LBKind string

const (
	LBKindDR  LBKind = "DR"
	LBKindNAT LBKind = "NAT"
	LBKindTUN LBKind = "TUN"
)

// VirtualServer is a virtual_server: a VIP and port (or a fwmark, or a
// virtual_server_group) balanced over real servers.
type VirtualServer struct {
	// Exactly one of Addr (with Port), FWMark or Group identifies the
	// service.
	Addr   netip.Addr `json:"addr,omitzero"`
	Port   uint16     `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
	Group  string     `json:"group,omitempty"`

	// DelayLoop is the checker interval (default 60s).
	DelayLoop time.Duration `json:"delay_loop"`
	// LBAlgo is the scheduler (lb_algo / lvs_sched, default wlc).
	LBAlgo string `json:"lb_algo"`
	// SchedFlags are flag-1..3, sh-port, sh-fallback, mh-port,
	// mh-fallback, ops.
	SchedFlags []string `json:"sched_flags,omitempty"`
	// LBKind is the forwarding method (lb_kind / lvs_method, default NAT).
	LBKind LBKind `json:"lb_kind"`
	// PersistenceTimeout is 0 when the service is not persistent;
	// persistence_timeout without a value (or persistence_granularity
	// alone) gives keepalived's 6 minutes.
	PersistenceTimeout time.Duration `json:"persistence_timeout"`
	// PersistenceGranularity is the client prefix length persistence
	// groups by (from a netmask for IPv4); 0 means not set (a full address).
	PersistenceGranularity int      `json:"persistence_granularity,omitempty"`
	PersistenceEngine      string   `json:"persistence_engine,omitempty"`
	Protocol               Protocol `json:"protocol"`
	// Family is the address family of the service (from its address, its
	// real servers, or ip_family).
	Family Family `json:"family,omitempty"`

	SorryServer *SorryServer `json:"sorry_server,omitempty"`

	// Quorum is the minimum total weight of live real servers (default 1);
	// Hysteresis dampens quorum flaps (default 0).
	Quorum     int      `json:"quorum"`
	Hysteresis int      `json:"hysteresis"`
	QuorumUp   *Command `json:"quorum_up,omitempty"`
	QuorumDown *Command `json:"quorum_down,omitempty"`
	// Alpha starts every real server as down; Omega runs the down
	// notifiers on shutdown.
	Alpha bool `json:"alpha"`
	Omega bool `json:"omega"`
	// InhibitOnFailure sets a failed real server's weight to 0 instead of
	// removing it (default for real servers).
	InhibitOnFailure bool   `json:"inhibit_on_failure"`
	VirtualHost      string `json:"virtualhost,omitempty"`
	HASuspend        bool   `json:"ha_suspend"`
	SMTPAlert        bool   `json:"smtp_alert"`

	RealServers []*RealServer `json:"real_servers"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// Key names the service for messages: "192.168.8.100:80 TCP", "fwmark 1",
// "group VSG_1".
func (vs *VirtualServer) Key() string {
	switch {
	case vs.Group != "":
		return "group " + vs.Group
	case vs.FWMark != 0 || !vs.Addr.IsValid():
		return fmt.Sprintf("fwmark %d", vs.FWMark)
	}
	return fmt.Sprintf("%s %s", netip.AddrPortFrom(vs.Addr, vs.Port), vs.Protocol)
}

// SorryServer replaces the real servers when the quorum is lost.
type SorryServer struct {
	Addr    netip.Addr `json:"addr"`
	Port    uint16     `json:"port,omitempty"`
	LBKind  LBKind     `json:"lb_kind"`
	Inhibit bool       `json:"inhibit"`
	Pos     Pos        `json:"pos"`
}

// RealServer is a real_server of a virtual server.
type RealServer struct {
	Addr netip.Addr `json:"addr"`
	// Port is the virtual server's port when not written (keepalived
	// leaves it 0 for fwmark services).
	Port uint16 `json:"port,omitempty"`
	// Weight is the IPVS weight (default 1).
	Weight int `json:"weight"`
	// LBKind is the real server's forwarding method (default the virtual
	// server's).
	LBKind           LBKind   `json:"lb_kind"`
	NotifyUp         *Command `json:"notify_up,omitempty"`
	NotifyDown       *Command `json:"notify_down,omitempty"`
	InhibitOnFailure bool     `json:"inhibit_on_failure"`
	Alpha            bool     `json:"alpha"`
	// UThreshold and LThreshold are connection limits (0: none).
	UThreshold  int    `json:"uthreshold,omitempty"`
	LThreshold  int    `json:"lthreshold,omitempty"`
	VirtualHost string `json:"virtualhost,omitempty"`
	SMTPAlert   bool   `json:"smtp_alert"`

	// DelayLoop is the effective checker interval (the virtual server's
	// unless set here).
	DelayLoop time.Duration `json:"delay_loop"`

	Checkers []*Checker `json:"checkers,omitempty"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// CheckerType is a health checker block name.
type CheckerType string

const (
	TCPCheck  CheckerType = "TCP_CHECK"
	HTTPGet   CheckerType = "HTTP_GET"
	SSLGet    CheckerType = "SSL_GET"
	MiscCheck CheckerType = "MISC_CHECK"
	SMTPCheck CheckerType = "SMTP_CHECK"
	DNSCheck  CheckerType = "DNS_CHECK"
	UDPCheck  CheckerType = "UDP_CHECK"
	PingCheck CheckerType = "PING_CHECK"
	BFDCheck  CheckerType = "BFD_CHECK"
	FileCheck CheckerType = "FILE_CHECK"
)

// Checker is a health checker of a real server. Its timing fields are the
// effective values: the checker's own, else the real server's, else the
// virtual server's, else the checker type's default.
type Checker struct {
	Type CheckerType `json:"type"`

	// Target is where the checker connects: connect_ip/connect_port, else
	// the real server's address and port.
	Target netip.AddrPort `json:"target"`
	// BindTo, BindIf and BindPort set the source; FWMark marks the probes.
	BindTo   netip.Addr `json:"bindto,omitzero"`
	BindIf   string     `json:"bind_if,omitempty"`
	BindPort uint16     `json:"bind_port,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`

	// ConnectTimeout (default 5s).
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Retry is how many more times a failing check is retried before the
	// real server is marked down (default 1; DNS_CHECK 3; MISC_CHECK 0).
	Retry int `json:"retry"`
	// DelayBeforeRetry (default 1s; HTTP_GET/SSL_GET 3s; DNS_CHECK
	// delay_loop).
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	// Warmup is the maximum random delay before the first check (default
	// delay_loop; 0 disables).
	Warmup time.Duration `json:"warmup"`
	// DelayLoop is the interval between checks.
	DelayLoop      time.Duration `json:"delay_loop"`
	Alpha          bool          `json:"alpha"`
	LogAllFailures bool          `json:"log_all_failures"`

	HTTP *HTTPCheckConfig `json:"http,omitempty"`
	Misc *MiscCheckConfig `json:"misc,omitempty"`
	SMTP *SMTPCheckConfig `json:"smtp,omitempty"`
	DNS  *DNSCheckConfig  `json:"dns,omitempty"`
	UDP  *UDPCheckConfig  `json:"udp,omitempty"`
	BFD  *BFDCheckConfig  `json:"bfd,omitempty"`
	File *FileCheckConfig `json:"file,omitempty"`

	Pos      Pos      `json:"pos"`
	Explicit Explicit `json:"-"`
}

// HTTPCheckConfig holds HTTP_GET and SSL_GET settings.
type HTTPCheckConfig struct {
	URLs []URLCheck `json:"urls"`
	// Protocol is http_protocol: 1.0, 1.0C or 1.1 (default 1.0).
	Protocol     string `json:"http_protocol"`
	FastRecovery bool   `json:"fast_recovery"`
	// VirtualHost is the effective Host header (checker, else real server,
	// else virtual server); a URL's own virtualhost overrides it.
	VirtualHost  string `json:"virtualhost,omitempty"`
	EnableSNI    bool   `json:"enable_sni"`
	SNIName      string `json:"sni_name,omitempty"`
	TLSCompliant bool   `json:"tls_compliant"`
}

// URLCheck is a url { } block.
type URLCheck struct {
	Path string `json:"path"`
	// Digest is the MD5 of the body (lowercase hex), empty when not checked.
	Digest string `json:"digest,omitempty"`
	// StatusCodes are inclusive ranges; 200-299 when none is written.
	StatusCodes  []StatusRange `json:"status_code"`
	VirtualHost  string        `json:"virtualhost,omitempty"`
	Regex        string        `json:"regex,omitempty"`
	RegexNoMatch bool          `json:"regex_no_match"`
	Pos          Pos           `json:"pos"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// MiscCheckConfig holds MISC_CHECK settings.
type MiscCheckConfig struct {
	Path *Command `json:"misc_path"`
	// Timeout for the script (default: delay_loop).
	Timeout time.Duration `json:"misc_timeout"`
	// Dynamic lets exit codes 2-255 set the weight.
	Dynamic bool `json:"misc_dynamic"`
}

// SMTPCheckConfig holds SMTP_CHECK settings.
type SMTPCheckConfig struct {
	// HeloName (default the local host name, empty here).
	HeloName string `json:"helo_name,omitempty"`
	// Hosts are extra host { } targets, each with its own connection
	// options; when present they replace the real server as target.
	Hosts []SMTPHost `json:"hosts,omitempty"`
}

// SMTPHost is a host { } block of SMTP_CHECK.
type SMTPHost struct {
	Target netip.AddrPort `json:"target"`
	BindTo netip.Addr     `json:"bindto,omitzero"`
	Pos    Pos            `json:"pos"`
}

// DNSCheckConfig holds DNS_CHECK settings.
type DNSCheckConfig struct {
	// Type is the query type (default SOA).
	Type string `json:"type"`
	// Name is the query name (default ".").
	Name string `json:"name"`
}

// UDPCheckConfig holds UDP_CHECK settings.
type UDPCheckConfig struct {
	// Payload is sent as the datagram (random when empty).
	Payload []byte `json:"payload,omitempty"`
	// RequireReply demands a reply; ReplyPattern (hex with x nibbles as
	// wildcards) is what it must start with, when given.
	RequireReply   bool   `json:"require_reply"`
	ReplyPattern   string `json:"reply_pattern,omitempty"`
	MinReplyLength int    `json:"min_reply_length"`
	MaxReplyLength int    `json:"max_reply_length"`
}

// BFDCheckConfig holds BFD_CHECK settings.
type BFDCheckConfig struct {
	Name string `json:"name"`
}

// FileCheckConfig holds FILE_CHECK settings.
type FileCheckConfig struct {
	TrackFile string `json:"track_file"`
	Dynamic   bool   `json:"dynamic"`
	Weight    int    `json:"weight"`
	Reverse   bool   `json:"reverse"`
}
