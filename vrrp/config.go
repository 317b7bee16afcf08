package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// Config is everything the VRRP engine runs: instances, the scripts they
// track, and sync groups. The daemon builds it from keepalived.conf; the
// vrrp package knows nothing of that file.
type Config struct {
	Instances  []InstanceConfig
	Scripts    []ScriptConfig
	Files      []FileConfig
	SyncGroups []SyncGroupConfig
	// ScriptUser runs scripts that name no user (keepalived's
	// script_user); empty means the daemon's own user.
	ScriptUser string
	// StartupDelay is vrrp_startup_delay: for this long after the router
	// starts no instance becomes master, and a backup's first
	// Master_Down_Timer runs from the end of it (adverts heard meanwhile
	// count as usual). Reloads do not delay again.
	StartupDelay time.Duration
	// Thread places the thread that runs the protocol loop. It is read
	// when Run starts (as keepalived reads its vrrp child settings when
	// the child starts); a reload that changes it takes effect at the
	// next start.
	Thread ThreadConfig
}

// ThreadConfig is keepalived's vrrp child process settings, applied to
// the protocol loop's own OS thread: once woken, a realtime thread runs
// ahead of normal work (the wakeup itself still passes through Go's
// poller, on a thread of normal priority).
type ThreadConfig struct {
	// RealtimePriority is vrrp_rt_priority: SCHED_RR at 1-99; 0 keeps
	// normal scheduling.
	RealtimePriority int
	// RTTimeLimit is vrrp_rlimit_rttime: the CPU time the realtime thread
	// may use without blocking. The kernel warns (SIGXCPU) at half of it
	// and kills the process at all of it, as with keepalived; 0 means
	// 10ms.
	RTTimeLimit time.Duration
	// Nice is vrrp_priority (-20 to 19), used when RealtimePriority is 0.
	Nice int
	// CPUs is vrrp_cpu_affinity; empty leaves the thread on every CPU.
	CPUs []int
}

// IsZero reports whether t leaves the thread as it is.
func (t ThreadConfig) IsZero() bool {
	return t.RealtimePriority == 0 && t.Nice == 0 && len(t.CPUs) == 0
}

// InstanceConfig is one vrrp_instance.
type InstanceConfig struct {
	Name      string
	Interface string
	VRID      uint8
	// Version is 2 or 3. IPv6 instances are always 3.
	Version int
	// Priority is the base priority, 1..255; 255 is the address owner.
	Priority uint8
	// AdvertInterval is advert_int: whole seconds for VRRPv2, a multiple
	// of 10ms for VRRPv3.
	AdvertInterval time.Duration
	// StartAsMaster is keepalived's `state MASTER`: take over after one
	// interval unless a master is heard (keepalived's behaviour).
	StartAsMaster bool
	NoPreempt     bool
	PreemptDelay  time.Duration
	AuthType      packet.AuthType
	AuthPass      string
	// VIPs are advertised and installed; ExcludedVIPs are only installed
	// (virtual_ipaddress_excluded).
	VIPs         []VIP
	ExcludedVIPs []VIP
	// SourceAddr is the address adverts are sent from and compared by
	// (unicast_src_ip / mcast_src_ip); when invalid the runtime uses the
	// interface's primary address of the VIPs' family.
	SourceAddr   netip.Addr
	UnicastPeers []netip.Addr
	// UnicastAnySource accepts unicast adverts from any source address,
	// not only from UnicastPeers (keepalived without check_unicast_src,
	// its default).
	UnicastAnySource bool
	// UnicastTTL is the TTL of unicast adverts (default 255).
	UnicastTTL uint8
	// LowerPrioNoAdvert stops a master from answering a lower-priority
	// advert with one of its own.
	LowerPrioNoAdvert bool
	// HigherPrioSendAdvert makes a master that hears a higher priority
	// (or an equal one from a higher address) send one more advert of
	// its own before it becomes backup, so that the new master, if it
	// sends gratuitous ARPs on a lower priority (GARPConfig.LowerPrio*),
	// refreshes the neighbours' caches after a split.
	HigherPrioSendAdvert bool
	// McastGroup is mcast_dst_ip: the multicast group adverts go to and
	// are accepted on instead of 224.0.0.18 / ff02::12 (invalid: those).
	// Unicast instances ignore it. Instances on one interface may share
	// a VRID when their groups differ.
	McastGroup netip.Addr
	// DownTimerAdverts is down_timer_adverts: Master_Down_Interval is
	// this many advert intervals plus the skew time (0 means the RFC's
	// 3; 1..100).
	DownTimerAdverts int
	// Checksum is how VRRPv3 over IPv4 is checksummed (v3_checksum_as_v2
	// selects packet.MessageOnly).
	Checksum        packet.ChecksumMode
	GARP            GARPConfig
	TrackInterfaces []TrackInterface
	TrackScripts    []TrackScript
	TrackFiles      []TrackFile
	Notify          NotifyConfig
}

// VIP is a virtual address with how to install it.
type VIP struct {
	Prefix netip.Prefix
	// Dev is the interface to add it to; empty means the instance's.
	Dev   string
	Label string
	// Scope is the address scope (0 global, 253 link, 254 host).
	Scope uint8
}

func (v VIP) String() string {
	s := v.Prefix.String()
	if v.Dev != "" {
		s += " dev " + v.Dev
	}
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

// GARPConfig is when gratuitous ARPs (unsolicited NAs for IPv6) are sent.
type GARPConfig struct {
	// MasterRepeat is how many are sent at once on becoming master.
	MasterRepeat int
	// MasterDelay is when the second block follows; 0 sends none.
	MasterDelay time.Duration
	// MasterRefresh repeats them while master; 0 never.
	MasterRefresh       time.Duration
	MasterRefreshRepeat int
	// Interval spaces the messages of one block.
	Interval time.Duration
	// LowerPrioRepeat is garp_lower_prio_repeat: a master that hears a
	// lower priority sends this many at once (0: none), and as many
	// again LowerPrioDelay later (garp_lower_prio_delay; 0: no second
	// block).
	LowerPrioRepeat int
	LowerPrioDelay  time.Duration
}

// DefaultGARP is keepalived's default: 5 at once, 5 more after 5 s.
var DefaultGARP = GARPConfig{MasterRepeat: 5, MasterDelay: 5 * time.Second, MasterRefreshRepeat: 1}

// TrackInterface makes an instance follow a link's state.
type TrackInterface struct {
	Name string
	// Weight 0 puts the instance in FAULT while the link is down; a
	// positive weight is added while it is up, a negative one while down.
	Weight  int
	Reverse bool
}

// TrackScript makes an instance follow a ScriptConfig's result, with the
// same weight rules as TrackInterface.
type TrackScript struct {
	Name    string
	Weight  int
	Reverse bool
}

// TrackFile is a track_file an instance follows. With weight 0 a
// non-zero value in the file is a FAULT (zero, with Reverse); otherwise
// value times weight (negated with Reverse) is added to the priority, and
// a sum below -253 is a FAULT, as with keepalived.
type TrackFile struct {
	Name    string
	Weight  int
	Reverse bool
}

// FileConfig is a track_file block: a file holding a number, read when
// it changes.
type FileConfig struct {
	Name string
	Path string
	// Init writes InitValue to the file at start when it does not exist
	// (always, with InitOverwrite): keepalived's init_file.
	Init          bool
	InitValue     int64
	InitOverwrite bool
}

// ScriptConfig is a vrrp_script.
type ScriptConfig struct {
	Name     string
	Command  string
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
	User     string
	// InitFail starts the script in the failed state.
	InitFail bool
}

// NotifyConfig holds notify commands (a program and arguments, split like
// a shell word list).
type NotifyConfig struct {
	Master, Backup, Fault, Stop string
	// Any is `notify`: run on every change with INSTANCE|GROUP, the name,
	// the state and the priority appended.
	Any string
	// MasterRxLowerPri is notify_master_rx_lower_pri: run (with no
	// arguments added) each time a master hears a lower priority.
	MasterRxLowerPri string
}

// SyncGroupConfig is a vrrp_sync_group: its instances change state
// together.
type SyncGroupConfig struct {
	Name      string
	Instances []string
	Notify    NotifyConfig
}

// AllVIPs returns the advertised and the excluded addresses.
func (c *InstanceConfig) AllVIPs() []VIP {
	if len(c.ExcludedVIPs) == 0 {
		return c.VIPs
	}
	return append(append([]VIP{}, c.VIPs...), c.ExcludedVIPs...)
}

// Group is the multicast group of a multicast instance (McastGroup, or
// the VRRP group of its family); invalid for a unicast one.
func (c *InstanceConfig) Group() netip.Addr {
	switch {
	case len(c.UnicastPeers) > 0:
		return netip.Addr{}
	case c.McastGroup.IsValid():
		return c.McastGroup
	case c.IsIPv6():
		return packet.GroupIPv6
	}
	return packet.GroupIPv4
}

// destination names where the instance's adverts go, for VRID
// uniqueness.
func (c *InstanceConfig) destination() string {
	if g := c.Group(); g.IsValid() {
		return g.String()
	}
	return "unicast"
}

// IsIPv6 returns whether the instance runs over IPv6.
func (c *InstanceConfig) IsIPv6() bool {
	for _, v := range c.VIPs {
		return v.Prefix.Addr().Is6()
	}
	for _, p := range c.UnicastPeers {
		return p.Is6()
	}
	return c.SourceAddr.Is6()
}

// Validate checks the configuration and fills defaults.
// clone copies the slices Validate writes defaults into, so the Router
// never changes a configuration its caller keeps.
func (c Config) clone() Config {
	c.Instances = slices.Clone(c.Instances)
	c.Scripts = slices.Clone(c.Scripts)
	c.Files = slices.Clone(c.Files)
	c.SyncGroups = slices.Clone(c.SyncGroups)
	c.Thread.CPUs = slices.Clone(c.Thread.CPUs)
	return c
}

func (c *Config) Validate() error {
	var errs []error
	if t := c.Thread; t.RealtimePriority < 0 || t.RealtimePriority > 99 {
		errs = append(errs, fmt.Errorf("vrrp_rt_priority %d: want 1-99, or 0 for normal scheduling", t.RealtimePriority))
	}
	if t := c.Thread; t.Nice < -20 || t.Nice > 19 {
		errs = append(errs, fmt.Errorf("vrrp_priority %d: want -20 to 19", t.Nice))
	}
	for _, cpu := range c.Thread.CPUs {
		if cpu < 0 || cpu >= 1024 {
			errs = append(errs, fmt.Errorf("vrrp_cpu_affinity %d: want a CPU number 0-1023", cpu))
		}
	}
	names := map[string]bool{}
	scripts := map[string]bool{}
	for i := range c.Scripts {
		s := &c.Scripts[i]
		if s.Name == "" || s.Command == "" {
			errs = append(errs, fmt.Errorf("vrrp_script %q: needs a name and a script", s.Name))
		}
		if s.Interval <= 0 {
			s.Interval = time.Second
		}
		if s.Timeout <= 0 {
			s.Timeout = s.Interval
		}
		s.Rise = max(s.Rise, 1)
		s.Fall = max(s.Fall, 1)
		scripts[s.Name] = true
	}
	files := map[string]bool{}
	for _, f := range c.Files {
		if f.Name == "" || f.Path == "" {
			errs = append(errs, fmt.Errorf("track_file %q: needs a name and a file", f.Name))
		}
		files[f.Name] = true
	}
	vrids := map[string]string{}
	for i := range c.Instances {
		in := &c.Instances[i]
		if err := in.validate(scripts, files); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[in.Name] {
			errs = append(errs, fmt.Errorf("vrrp_instance %s: defined twice", in.Name))
		}
		names[in.Name] = true
		fam := "ipv4"
		if in.IsIPv6() {
			fam = "ipv6"
		}
		// One socket per interface and family carries every instance
		// on it: the VRID and the destination (a multicast group, or
		// a unicast address) tell them apart.
		key := fmt.Sprintf("%s/%s/%d/%s", in.Interface, fam, in.VRID, in.destination())
		if other, ok := vrids[key]; ok {
			errs = append(errs, fmt.Errorf("vrrp_instance %s: virtual_router_id %d on %s is already used by %s (use another VRID, or another mcast_dst_ip)", in.Name, in.VRID, in.Interface, other))
		}
		vrids[key] = in.Name
	}
	member := map[string]string{}
	for _, g := range c.SyncGroups {
		for _, n := range g.Instances {
			if !names[n] {
				errs = append(errs, fmt.Errorf("vrrp_sync_group %s: unknown instance %q", g.Name, n))
			}
			if other, ok := member[n]; ok {
				errs = append(errs, fmt.Errorf("vrrp_sync_group %s: instance %s is already in group %s", g.Name, n, other))
			}
			member[n] = g.Name
		}
	}
	return errors.Join(errs...)
}

func (in *InstanceConfig) validate(scripts, files map[string]bool) error {
	where := "vrrp_instance " + in.Name
	switch {
	case in.Name == "":
		return errors.New("vrrp_instance: needs a name")
	case in.Interface == "":
		return fmt.Errorf("%s: needs an interface", where)
	case in.VRID == 0:
		return fmt.Errorf("%s: virtual_router_id 0 (want 1..255)", where)
	case in.Priority == 0:
		return fmt.Errorf("%s: priority 0 (want 1..255)", where)
	}
	is6 := in.IsIPv6()
	if is6 && in.Version == 2 {
		in.Version = 3 // keepalived: IPv6 forces VRRPv3
	}
	if in.Version == 0 {
		in.Version = 2
	}
	if in.AdvertInterval <= 0 {
		in.AdvertInterval = time.Second
	}
	switch in.Version {
	case 2:
		if in.AdvertInterval%time.Second != 0 || in.AdvertInterval > 255*time.Second {
			return fmt.Errorf("%s: advert_int %v must be whole seconds (1..255) with VRRPv2 (use vrrp_version 3 for sub-second intervals)", where, in.AdvertInterval)
		}
	case 3:
		if in.AdvertInterval%(10*time.Millisecond) != 0 || in.AdvertInterval > packet.MaxV3Interval {
			return fmt.Errorf("%s: advert_int %v must be a multiple of 10ms up to 40.95s with VRRPv3", where, in.AdvertInterval)
		}
		if in.AuthType != packet.AuthNone {
			return fmt.Errorf("%s: authentication is VRRPv2 only (remove it or use vrrp_version 2)", where)
		}
	default:
		return fmt.Errorf("%s: version %d (want 2 or 3)", where, in.Version)
	}
	if in.AuthType == packet.AuthAH {
		return fmt.Errorf("%s: auth_type AH is not supported (use PASS or none)", where)
	}
	for _, v := range in.VIPs {
		if !v.Prefix.IsValid() || v.Prefix.Addr().Is6() != is6 {
			return fmt.Errorf("%s: virtual address %s: all addresses of an instance must be of one family", where, v.Prefix)
		}
	}
	if len(in.VIPs) > 255 {
		return fmt.Errorf("%s: %d virtual addresses (max 255 in an advert; use virtual_ipaddress_excluded)", where, len(in.VIPs))
	}
	for _, p := range in.UnicastPeers {
		if p.Is6() != is6 {
			return fmt.Errorf("%s: unicast_peer %s is not of the VIPs' family", where, p)
		}
	}
	if in.UnicastTTL == 0 {
		in.UnicastTTL = packet.TTL
	}
	if g := in.McastGroup; g.IsValid() && (!g.IsMulticast() || g.Is6() != is6) {
		return fmt.Errorf("%s: mcast_dst_ip %s is not a multicast address of the VIPs' family", where, g)
	}
	if in.DownTimerAdverts < 0 || in.DownTimerAdverts > 100 {
		return fmt.Errorf("%s: down_timer_adverts %d (want 1..100)", where, in.DownTimerAdverts)
	}
	if in.GARP.LowerPrioRepeat < 0 || in.GARP.LowerPrioDelay < 0 {
		return fmt.Errorf("%s: garp_lower_prio_repeat %d / garp_lower_prio_delay %v must not be negative", where, in.GARP.LowerPrioRepeat, in.GARP.LowerPrioDelay)
	}
	if in.GARP.MasterRepeat <= 0 {
		in.GARP.MasterRepeat = DefaultGARP.MasterRepeat
	}
	if in.GARP.MasterRefreshRepeat <= 0 {
		in.GARP.MasterRefreshRepeat = DefaultGARP.MasterRefreshRepeat
	}
	for _, ts := range in.TrackScripts {
		if !scripts[ts.Name] {
			return fmt.Errorf("%s: track_script %q is not a defined vrrp_script", where, ts.Name)
		}
	}
	for _, tf := range in.TrackFiles {
		if !files[tf.Name] {
			return fmt.Errorf("%s: track_file %q is not a defined track_file", where, tf.Name)
		}
	}
	return nil
}
