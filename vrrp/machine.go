package vrrp

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// State is an instance's VRRP state.
type State uint8

// VRRP states (RFC 5798 6.4) plus FAULT (keepalived: a tracked link or
// script is down) and STOP (shut down or removed).
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	case StateStop:
		return "STOP"
	}
	return fmt.Sprintf("STATE-%d", uint8(s))
}

// Priorities with a meaning of their own.
const (
	PriorityStop  = 0   // the master resigns
	PriorityOwner = 255 // the address owner
)

// Event is an input to the Machine.
type Event interface{ isEvent() }

// AdvertReceived is a decoded advert for an instance (the runtime has
// matched its VRID, family and interface).
type AdvertReceived struct {
	Instance string
	Packet   *packet.Packet
}

// ScriptResult is one run of a vrrp_script: OK is exit status 0.
type ScriptResult struct {
	Script string
	OK     bool
}

// FileValue is the number a track_file's file holds now. It may come
// before the Configure that names the file, so instances start with it.
type FileValue struct {
	File  string
	Value int64
}

// LinkChanged is a link going up or down, or appearing and vanishing.
type LinkChanged struct {
	Interface string
	Up        bool
	// Missing is true while the interface does not exist (or its VRRP
	// socket cannot be opened on it): a FAULT reason, like a link down,
	// that says so.
	Missing bool
}

// Shutdown stops every instance: masters send priority 0 and release
// their addresses.
type Shutdown struct{}

func (AdvertReceived) isEvent() {}
func (ScriptResult) isEvent()   {}
func (FileValue) isEvent()      {}
func (LinkChanged) isEvent()    {}
func (Shutdown) isEvent()       {}

// Action is an output of the Machine for the runtime to carry out, in
// order.
type Action interface{ isAction() }

// SendAdvert sends an advert with the given priority.
type SendAdvert struct {
	Instance string
	Priority uint8
}

// AddVIPs installs virtual addresses.
type AddVIPs struct {
	Instance string
	VIPs     []VIP
}

// RemoveVIPs removes virtual addresses (absent ones are no error).
type RemoveVIPs struct {
	Instance string
	VIPs     []VIP
}

// SendGARP announces the instance's addresses: Count gratuitous ARPs (or
// unsolicited neighbour advertisements) per address.
type SendGARP struct {
	Instance string
	VIPs     []VIP
	Count    int
}

// StateChanged reports a transition; the runtime runs notify scripts and
// the daemon's hooks on it.
type StateChanged struct {
	Instance string
	From, To State
	Priority uint8
	Reason   string
}

// GroupStateChanged reports a sync group's transition (its notify
// scripts run on it).
type GroupStateChanged struct {
	Group    string
	From, To State
}

// PriorityChanged reports a new effective priority.
type PriorityChanged struct {
	Instance        string
	Base, Effective uint8
}

// LowerPriorityReceived reports that a master heard a lower priority
// (keepalived's MASTER_RX_LOWER_PRI event: notify_master_rx_lower_pri
// runs on it).
type LowerPriorityReceived struct {
	Instance string
	From     netip.Addr
	Priority uint8
}

func (SendAdvert) isAction()            {}
func (AddVIPs) isAction()               {}
func (RemoveVIPs) isAction()            {}
func (SendGARP) isAction()              {}
func (StateChanged) isAction()          {}
func (GroupStateChanged) isAction()     {}
func (PriorityChanged) isAction()       {}
func (LowerPriorityReceived) isAction() {}

// Counters are an instance's protocol counters.
type Counters struct {
	AdvertsSent          uint64
	AdvertsReceived      uint64
	BecameMaster         uint64
	ReleasedMaster       uint64
	PriorityZeroSent     uint64
	PriorityZeroReceived uint64
	// Errors counts dropped packets by reason.
	Errors map[packet.Reason]uint64
}

func (c *Counters) drop(r packet.Reason) {
	if c.Errors == nil {
		c.Errors = map[packet.Reason]uint64{}
	}
	c.Errors[r]++
}

func (c Counters) clone() Counters {
	if c.Errors != nil {
		m := make(map[packet.Reason]uint64, len(c.Errors))
		for k, v := range c.Errors {
			m[k] = v
		}
		c.Errors = m
	}
	return c
}

// InstanceStatus is a snapshot of one instance.
type InstanceStatus struct {
	Name              string
	Interface         string
	VRID              uint8
	State             State
	BasePriority      uint8
	EffectivePriority uint8
	// MasterAddr is the current master's address (ours when MASTER).
	MasterAddr     netip.Addr
	MasterPriority uint8
	AdvertInterval time.Duration
	// MasterAdvertInterval is the interval learned from the master (v3).
	MasterAdvertInterval time.Duration
	LastTransition       time.Time
	// FaultReasons says why the instance is in FAULT.
	FaultReasons []string
	Counters     Counters
}

// Machine is the VRRP protocol for a set of instances, pure: it opens no
// socket and reads no clock. Events and the passing of time go in through
// Configure, Step and Advance (each given the current time); what to do
// comes out of Ready, in order. NextDeadline says when Advance must be
// called next.
type Machine struct {
	now       time.Time
	instances []*instance
	byName    map[string]*instance
	groups    map[string]*syncGroup
	scripts   map[string]*scriptState
	// files are the track_file values (a file not read yet counts as 0).
	files map[string]int64
	// links holds the state of every link heard of; unknown links are up.
	links   map[string]linkState
	actions []Action
	// configured is set by the first Configure; until delayUntil
	// (vrrp_startup_delay) no instance becomes master.
	configured bool
	delayUntil time.Time
}

type instance struct {
	cfg   InstanceConfig
	state State
	eff   uint8
	group *syncGroup

	masterAdverInt time.Duration
	// Deadlines; zero when not armed.
	downAt    time.Time // BACKUP: Master_Down_Timer
	adverAt   time.Time // MASTER: Adver_Timer
	garpAt    time.Time // MASTER: second block of gratuitous ARPs
	refreshAt time.Time // MASTER: gratuitous ARP refresh
	// lowerGarpAt are the delayed blocks of gratuitous ARPs after lower
	// priority adverts (garp_lower_prio_delay), oldest first.
	lowerGarpAt []time.Time
	// preemptAt is when preempt_delay lets a lower-priority master be
	// preempted; zero when no delay runs.
	preemptAt time.Time

	masterAddr     netip.Addr
	masterPrio     uint8
	lastTransition time.Time
	counters       Counters
}

type linkState struct{ up, missing bool }

type syncGroup struct {
	cfg     SyncGroupConfig
	members []*instance
	state   State
}

type scriptState struct {
	cfg            ScriptConfig
	up             bool
	okRun, failRun int
}

// NewMachine returns a machine with no instances.
func NewMachine() *Machine {
	return &Machine{
		byName:  map[string]*instance{},
		groups:  map[string]*syncGroup{},
		scripts: map[string]*scriptState{},
		files:   map[string]int64{},
		links:   map[string]linkState{},
	}
}

// Ready returns the actions produced since the last call, in the order
// they must be carried out.
func (m *Machine) Ready() []Action {
	a := m.actions
	m.actions = nil
	return a
}

func (m *Machine) emit(a Action) { m.actions = append(m.actions, a) }

// NextDeadline returns the earliest armed timer.
func (m *Machine) NextDeadline() (time.Time, bool) {
	var next time.Time
	for _, in := range m.instances {
		for _, t := range []time.Time{in.downAt, in.adverAt, in.garpAt, in.refreshAt} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if len(in.lowerGarpAt) > 0 && (next.IsZero() || in.lowerGarpAt[0].Before(next)) {
			next = in.lowerGarpAt[0]
		}
	}
	return next, !next.IsZero()
}

// NextMasterDown returns the earliest armed Master_Down_Timer: the
// deadline at which a backup takes over unless an advert comes first.
// The runtime keeps that one to the microsecond (see poll_linux.go).
func (m *Machine) NextMasterDown() (time.Time, bool) {
	var next time.Time
	for _, in := range m.instances {
		if in.state == StateBackup && !in.downAt.IsZero() && (next.IsZero() || in.downAt.Before(next)) {
			next = in.downAt
		}
	}
	return next, !next.IsZero()
}

func (m *Machine) setNow(now time.Time) {
	if now.After(m.now) {
		m.now = now
	}
}

// Configure applies a (new) configuration: instances that are new start
// in INIT, removed ones stop, and changed ones keep their state when the
// change allows it (a new interface, VRID, version, family or unicast
// setup restarts the instance). cfg must have passed Validate.
func (m *Machine) Configure(now time.Time, cfg Config) {
	m.setNow(now)
	if !m.configured {
		m.configured = true
		if cfg.StartupDelay > 0 {
			m.delayUntil = m.now.Add(cfg.StartupDelay)
		}
	}
	// Scripts keep their state across reloads when their name stays.
	scripts := map[string]*scriptState{}
	for _, sc := range cfg.Scripts {
		if old, ok := m.scripts[sc.Name]; ok {
			old.cfg = sc
			scripts[sc.Name] = old
		} else {
			scripts[sc.Name] = &scriptState{cfg: sc, up: !sc.InitFail}
		}
	}
	m.scripts = scripts
	files := make(map[string]int64, len(cfg.Files))
	for _, f := range cfg.Files {
		files[f.Name] = m.files[f.Name]
	}
	m.files = files

	want := map[string]bool{}
	for _, ic := range cfg.Instances {
		want[ic.Name] = true
	}
	for _, in := range slices.Clone(m.instances) {
		if !want[in.cfg.Name] {
			m.stop(in, "removed from the configuration")
			m.drop(in)
		}
	}

	// Groups are rebuilt; members keep their own state.
	m.groups = map[string]*syncGroup{}
	groupOf := map[string]*syncGroup{}
	for _, gc := range cfg.SyncGroups {
		g := &syncGroup{cfg: gc, state: StateInit}
		m.groups[gc.Name] = g
		for _, n := range gc.Instances {
			groupOf[n] = g
		}
	}

	var order []*instance
	var fresh []*instance
	for _, ic := range cfg.Instances {
		in, ok := m.byName[ic.Name]
		if ok && restartNeeded(in.cfg, ic) {
			m.stop(in, "configuration changed")
			m.drop(in)
			ok = false
		}
		if !ok {
			in = &instance{cfg: ic, state: StateInit, masterAdverInt: ic.AdvertInterval}
			m.byName[ic.Name] = in
			fresh = append(fresh, in)
		} else {
			m.update(in, ic)
		}
		in.group = groupOf[ic.Name]
		if in.group != nil {
			in.group.members = append(in.group.members, in)
		}
		order = append(order, in)
	}
	m.instances = order
	for _, g := range m.groups {
		g.state = g.derivedState()
	}
	for _, in := range fresh {
		m.start(in)
	}
	m.reconcile("configuration")
}

// restartNeeded reports whether a change means a new instance rather than
// an update of the running one. A source address found for an instance
// that had none (its interface appeared) is an update.
func restartNeeded(old, cfg InstanceConfig) bool {
	return old.Interface != cfg.Interface || old.VRID != cfg.VRID || old.Version != cfg.Version ||
		old.IsIPv6() != cfg.IsIPv6() || !slices.Equal(old.UnicastPeers, cfg.UnicastPeers) ||
		(old.SourceAddr != cfg.SourceAddr && old.SourceAddr.IsValid())
}

// update applies a changed configuration to a running instance.
func (m *Machine) update(in *instance, cfg InstanceConfig) {
	old := in.cfg
	in.cfg = cfg
	if in.state == StateMaster && in.masterAddr == old.SourceAddr {
		in.masterAddr = cfg.SourceAddr
	}
	if in.state != StateMaster {
		if in.state == StateBackup && old.AdvertInterval != cfg.AdvertInterval && cfg.Version == 2 {
			in.masterAdverInt = cfg.AdvertInterval
		}
		return
	}
	in.masterAdverInt = cfg.AdvertInterval
	if old.AdvertInterval != cfg.AdvertInterval {
		in.adverAt = m.now.Add(cfg.AdvertInterval)
	}
	removed, added := diffVIPs(old.AllVIPs(), cfg.AllVIPs())
	if len(removed) > 0 {
		m.emit(RemoveVIPs{Instance: cfg.Name, VIPs: removed})
	}
	if len(added) > 0 {
		m.emit(AddVIPs{Instance: cfg.Name, VIPs: added})
		m.emit(SendGARP{Instance: cfg.Name, VIPs: added, Count: cfg.GARP.MasterRepeat})
	}
	if cfg.GARP.MasterRefresh == 0 {
		in.refreshAt = time.Time{}
	} else if in.refreshAt.IsZero() || old.GARP.MasterRefresh != cfg.GARP.MasterRefresh {
		in.refreshAt = m.now.Add(cfg.GARP.MasterRefresh)
	}
}

func diffVIPs(old, cur []VIP) (removed, added []VIP) {
	for _, v := range old {
		if !slices.Contains(cur, v) {
			removed = append(removed, v)
		}
	}
	for _, v := range cur {
		if !slices.Contains(old, v) {
			added = append(added, v)
		}
	}
	return removed, added
}

func (m *Machine) drop(in *instance) {
	delete(m.byName, in.cfg.Name)
	m.instances = slices.DeleteFunc(m.instances, func(x *instance) bool { return x == in })
}

// start runs RFC 5798 6.4.1 for a new instance: the owner becomes master
// at once; others start as backup, with keepalived's `state MASTER`
// shortening the first Master_Down_Timer to one interval.
func (m *Machine) start(in *instance) {
	in.eff, _ = m.priority(in)
	if in.cfg.PreemptDelay > 0 {
		in.preemptAt = m.now.Add(in.cfg.PreemptDelay)
	}
	if len(m.groupFaulty(in)) > 0 {
		return // reconcile moves it to FAULT
	}
	owner := in.cfg.Priority == PriorityOwner && !m.groupBlocksMaster(in)
	if owner && !m.delaying() {
		m.becomeMaster(in, "address owner")
		return
	}
	// Addresses left over from an earlier run go away: we are not master.
	if vips := in.cfg.AllVIPs(); len(vips) > 0 {
		m.emit(RemoveVIPs{Instance: in.cfg.Name, VIPs: vips})
	}
	switch {
	case owner:
		m.waitStartupDelay(in, "start")
	case in.cfg.StartAsMaster && !in.cfg.NoPreempt:
		m.becomeBackup(in, "start", in.masterAdverInt+m.skewMin(in))
	default:
		m.becomeBackup(in, "start", 0)
	}
}

// delaying reports whether vrrp_startup_delay still holds instances
// back from becoming master.
func (m *Machine) delaying() bool { return m.now.Before(m.delayUntil) }

// armDown sets the Master_Down_Timer d from now or, during the startup
// delay, d from its end (keepalived's vrrp_startup_delay).
func (m *Machine) armDown(in *instance, d time.Duration) {
	base := m.now
	if m.delaying() {
		base = m.delayUntil
	}
	in.downAt = base.Add(d)
}

// waitStartupDelay holds an address owner in BACKUP until the startup
// delay ends (then its Master_Down_Timer expires and it takes over).
func (m *Machine) waitStartupDelay(in *instance, reason string) {
	in.downAt = m.delayUntil
	m.transition(in, StateBackup, reason+" (vrrp_startup_delay)")
}

// Step feeds one event in.
func (m *Machine) Step(now time.Time, ev Event) {
	m.setNow(now)
	switch ev := ev.(type) {
	case AdvertReceived:
		if in, ok := m.byName[ev.Instance]; ok && ev.Packet != nil {
			m.receive(in, ev.Packet)
		}
	case ScriptResult:
		if s, ok := m.scripts[ev.Script]; ok {
			s.record(ev.OK)
		}
		m.reconcile("track_script " + ev.Script)
	case FileValue:
		if old, ok := m.files[ev.File]; ok && old == ev.Value {
			return
		}
		m.files[ev.File] = ev.Value
		m.reconcile("track_file " + ev.File)
	case LinkChanged:
		m.links[ev.Interface] = linkState{up: ev.Up && !ev.Missing, missing: ev.Missing}
		m.reconcile("link " + ev.Interface)
	case Shutdown:
		for _, in := range m.instances {
			m.stop(in, "shutdown")
		}
		m.updateGroups()
	}
}

// Advance fires every timer due at now.
func (m *Machine) Advance(now time.Time) {
	m.setNow(now)
	for _, in := range m.instances {
		switch in.state {
		case StateBackup:
			if !in.downAt.IsZero() && !now.Before(in.downAt) {
				in.downAt = time.Time{}
				m.masterDown(in)
			}
		case StateMaster:
			if !in.adverAt.IsZero() && !now.Before(in.adverAt) {
				m.sendAdvert(in, in.eff)
				next := in.adverAt.Add(in.cfg.AdvertInterval)
				if !next.After(now) {
					next = now.Add(in.cfg.AdvertInterval)
				}
				in.adverAt = next
			}
			if !in.garpAt.IsZero() && !now.Before(in.garpAt) {
				in.garpAt = time.Time{}
				m.emit(SendGARP{Instance: in.cfg.Name, VIPs: in.cfg.AllVIPs(), Count: in.cfg.GARP.MasterRepeat})
			}
			if !in.refreshAt.IsZero() && !now.Before(in.refreshAt) {
				in.refreshAt = now.Add(in.cfg.GARP.MasterRefresh)
				m.emit(SendGARP{Instance: in.cfg.Name, VIPs: in.cfg.AllVIPs(), Count: in.cfg.GARP.MasterRefreshRepeat})
			}
			for len(in.lowerGarpAt) > 0 && !now.Before(in.lowerGarpAt[0]) {
				in.lowerGarpAt = in.lowerGarpAt[1:]
				m.emit(SendGARP{Instance: in.cfg.Name, VIPs: in.cfg.AllVIPs(), Count: in.cfg.GARP.LowerPrioRepeat})
			}
		}
	}
	m.updateGroups()
}

// masterDown handles an expired Master_Down_Timer; with a sync group the
// whole group takes over.
func (m *Machine) masterDown(in *instance) {
	if m.groupBlocksMaster(in) {
		m.armDown(in, m.masterDownInterval(in))
		return
	}
	m.becomeMaster(in, "master down timer expired")
	if in.group != nil {
		for _, o := range in.group.members {
			if o != in && o.state == StateBackup {
				m.becomeMaster(o, "sync group "+in.group.cfg.Name+" member "+in.cfg.Name+" became master")
			}
		}
	}
}

// groupBlocksMaster reports whether a sync group member in FAULT (or
// stopped) keeps the instance from becoming master.
func (m *Machine) groupBlocksMaster(in *instance) bool {
	if in.group == nil {
		return false
	}
	for _, o := range in.group.members {
		if o.state == StateStop || len(m.faulty(o)) > 0 {
			return true
		}
	}
	return false
}

// receive checks an advert against the instance's configuration (what
// the codec cannot know) and runs it through the state's rules.
func (m *Machine) receive(in *instance, p *packet.Packet) {
	if r, ok := m.check(in, p); !ok {
		in.counters.drop(r)
		return
	}
	in.counters.AdvertsReceived++
	if p.Priority == PriorityStop {
		in.counters.PriorityZeroReceived++
	}
	switch in.state {
	case StateMaster:
		m.masterReceive(in, p)
	case StateBackup:
		m.backupReceive(in, p)
	}
	m.updateGroups()
}

func (m *Machine) check(in *instance, p *packet.Packet) (packet.Reason, bool) {
	c := &in.cfg
	if len(c.UnicastPeers) == 0 && p.TTL != packet.TTL {
		return packet.ReasonTTL, false
	}
	if int(p.Version) != c.Version {
		return packet.ReasonVersion, false
	}
	if p.VRID != c.VRID {
		return packet.ReasonVRID, false
	}
	if p.Src.Is6() != c.IsIPv6() {
		return packet.ReasonFamily, false
	}
	if c.Version == 2 {
		if p.AuthType != c.AuthType {
			return packet.ReasonAuth, false
		}
		if c.AuthType == packet.AuthPass && p.AuthData != packet.AuthPassword(c.AuthPass) {
			return packet.ReasonAuth, false
		}
		if p.Interval != c.AdvertInterval {
			return packet.ReasonInterval, false
		}
	} else if !c.IsIPv6() && p.ChecksumMode != c.Checksum {
		return packet.ReasonChecksum, false
	}
	if g := c.Group(); g.IsValid() && p.Dst.IsMulticast() && p.Dst != g {
		return packet.ReasonVRID, false // another group's instance
	}
	if len(p.Addrs) != len(c.VIPs) {
		return packet.ReasonAddrs, false
	}
	for _, v := range c.VIPs {
		if !slices.Contains(p.Addrs, v.Prefix.Addr()) {
			return packet.ReasonAddrs, false
		}
	}
	if len(c.UnicastPeers) > 0 && !c.UnicastAnySource && !slices.Contains(c.UnicastPeers, p.Src) {
		return packet.ReasonSource, false
	}
	return "", true
}

// masterReceive is RFC 5798 6.4.3 "If an ADVERTISEMENT is received",
// with keepalived's answer to lower priorities.
func (m *Machine) masterReceive(in *instance, p *packet.Packet) {
	switch {
	case p.Priority == in.eff && p.Src == in.cfg.SourceAddr:
		// Our own advert come back (a loop in the segment), or another
		// router with our address: neither higher nor lower, ignored
		// (keepalived logs it and does nothing).
	case p.Priority == PriorityStop:
		m.sendAdvert(in, in.eff)
		in.adverAt = m.now.Add(in.cfg.AdvertInterval)
	case p.Priority > in.eff || (p.Priority == in.eff && addrGreater(p.Src, in.cfg.SourceAddr)):
		if in.cfg.HigherPrioSendAdvert {
			// Our advert makes the new master see a lower priority,
			// and send its gratuitous ARPs again (keepalived).
			m.sendAdvert(in, in.eff)
		}
		if in.cfg.Version == 3 {
			in.masterAdverInt = p.Interval
		}
		in.masterAddr, in.masterPrio = p.Src, p.Priority
		m.leaveMasterForBackup(in, fmt.Sprintf("higher priority %d from %s", p.Priority, p.Src))
		if in.group != nil {
			for _, o := range in.group.members {
				if o != in && o.state == StateMaster {
					m.leaveMasterForBackup(o, "sync group "+in.group.cfg.Name+" member "+in.cfg.Name+" became backup")
				}
			}
		}
	default:
		// A lower priority (or an equal one from a lower address): a
		// backup that preempted wrongly, or one that lost our adverts.
		// keepalived answers at once so it sees a master again, and
		// announces the addresses again (itself and its sync group's
		// other members), since the other may have taken them over.
		if !in.cfg.LowerPrioNoAdvert {
			m.sendAdvert(in, in.eff)
		}
		m.lowerPrioGARP(in)
		if in.group != nil {
			for _, o := range in.group.members {
				if o != in && o.state == StateMaster {
					m.lowerPrioGARP(o)
				}
			}
		}
		m.emit(LowerPriorityReceived{Instance: in.cfg.Name, From: p.Src, Priority: p.Priority})
	}
}

// maxLowerGARPs bounds the delayed blocks of lower priority gratuitous
// ARPs waiting at once (keepalived schedules one per advert heard).
const maxLowerGARPs = 64

// lowerPrioGARP sends garp_lower_prio_repeat gratuitous ARPs now and
// schedules as many garp_lower_prio_delay later.
func (m *Machine) lowerPrioGARP(in *instance) {
	g := in.cfg.GARP
	vips := in.cfg.AllVIPs()
	if g.LowerPrioRepeat <= 0 || len(vips) == 0 {
		return
	}
	m.emit(SendGARP{Instance: in.cfg.Name, VIPs: vips, Count: g.LowerPrioRepeat})
	if g.LowerPrioDelay > 0 && len(in.lowerGarpAt) < maxLowerGARPs {
		in.lowerGarpAt = append(in.lowerGarpAt, m.now.Add(g.LowerPrioDelay))
	}
}

// backupReceive is RFC 5798 6.4.2 "If an ADVERTISEMENT is received".
func (m *Machine) backupReceive(in *instance, p *packet.Packet) {
	if p.Priority == PriorityStop {
		m.armDown(in, m.skew(in))
		return
	}
	delaying := in.cfg.PreemptDelay > 0 && (in.preemptAt.IsZero() || m.now.Before(in.preemptAt))
	if in.cfg.NoPreempt || p.Priority >= in.eff || delaying {
		if in.cfg.Version == 3 {
			in.masterAdverInt = p.Interval
		}
		m.armDown(in, m.masterDownInterval(in))
		in.masterAddr, in.masterPrio = p.Src, p.Priority
		if in.cfg.PreemptDelay > 0 {
			if p.Priority >= in.eff {
				in.preemptAt = time.Time{}
			} else if in.preemptAt.IsZero() {
				in.preemptAt = m.now.Add(in.cfg.PreemptDelay)
			}
		}
		return
	}
	// A lower priority master and we may preempt: discard the advert and
	// let the Master_Down_Timer run out.
	in.masterAddr, in.masterPrio = p.Src, p.Priority
}

func addrGreater(a, b netip.Addr) bool {
	return a.Compare(b) > 0
}

func (m *Machine) sendAdvert(in *instance, prio uint8) {
	m.emit(SendAdvert{Instance: in.cfg.Name, Priority: prio})
	in.counters.AdvertsSent++
	if prio == PriorityStop {
		in.counters.PriorityZeroSent++
	}
}

func (m *Machine) transition(in *instance, to State, reason string) {
	from := in.state
	in.state = to
	in.lastTransition = m.now
	m.emit(StateChanged{Instance: in.cfg.Name, From: from, To: to, Priority: in.eff, Reason: reason})
}

func (m *Machine) becomeMaster(in *instance, reason string) {
	in.downAt = time.Time{}
	in.masterAdverInt = in.cfg.AdvertInterval
	in.masterAddr, in.masterPrio = in.cfg.SourceAddr, in.eff
	name := in.cfg.Name
	vips := in.cfg.AllVIPs()
	if len(vips) > 0 {
		m.emit(AddVIPs{Instance: name, VIPs: vips})
	}
	m.sendAdvert(in, in.eff)
	if len(vips) > 0 {
		m.emit(SendGARP{Instance: name, VIPs: vips, Count: in.cfg.GARP.MasterRepeat})
	}
	in.adverAt = m.now.Add(in.cfg.AdvertInterval)
	if d := in.cfg.GARP.MasterDelay; d > 0 && len(vips) > 0 {
		in.garpAt = m.now.Add(d)
	}
	if r := in.cfg.GARP.MasterRefresh; r > 0 && len(vips) > 0 {
		in.refreshAt = m.now.Add(r)
	}
	in.counters.BecameMaster++
	m.transition(in, StateMaster, reason)
}

// becomeBackup enters BACKUP with a full Master_Down_Timer (or the given
// one).
func (m *Machine) becomeBackup(in *instance, reason string, down time.Duration) {
	if down == 0 {
		down = m.masterDownInterval(in)
	}
	m.armDown(in, down)
	m.transition(in, StateBackup, reason)
}

func (m *Machine) clearMasterTimers(in *instance) {
	in.adverAt, in.garpAt, in.refreshAt = time.Time{}, time.Time{}, time.Time{}
	in.lowerGarpAt = nil
}

func (m *Machine) leaveMasterForBackup(in *instance, reason string) {
	m.clearMasterTimers(in)
	if vips := in.cfg.AllVIPs(); len(vips) > 0 {
		m.emit(RemoveVIPs{Instance: in.cfg.Name, VIPs: vips})
	}
	in.counters.ReleasedMaster++
	m.becomeBackup(in, reason, 0)
}

// resign is what a master does when it stops or fails: a priority 0
// advert so the backup takes over after its skew time, then its
// addresses go.
func (m *Machine) resign(in *instance) {
	m.clearMasterTimers(in)
	m.sendAdvert(in, PriorityStop)
	if vips := in.cfg.AllVIPs(); len(vips) > 0 {
		m.emit(RemoveVIPs{Instance: in.cfg.Name, VIPs: vips})
	}
	in.counters.ReleasedMaster++
}

func (m *Machine) stop(in *instance, reason string) {
	if in.state == StateStop {
		return
	}
	if in.state == StateMaster {
		m.resign(in)
	}
	in.downAt, in.preemptAt = time.Time{}, time.Time{}
	m.transition(in, StateStop, reason)
}

// skew is Skew_Time: (256-Priority)/256 s in VRRPv2 (RFC 3768 6.1),
// ((256-Priority) * Master_Adver_Interval)/256 in VRRPv3 (RFC 5798 6.1).
func (m *Machine) skew(in *instance) time.Duration {
	base := time.Second
	if in.cfg.Version == 3 {
		base = in.masterAdverInt
	}
	return time.Duration((256 - int64(in.eff)) * int64(base) / 256)
}

// skewMin is the skew of the highest priority: keepalived's shortened
// first timer for `state MASTER`.
func (m *Machine) skewMin(in *instance) time.Duration {
	base := time.Second
	if in.cfg.Version == 3 {
		base = in.masterAdverInt
	}
	return base / 256
}

// masterDownInterval is 3 * Master_Adver_Interval + Skew_Time, or
// down_timer_adverts intervals instead of 3.
func (m *Machine) masterDownInterval(in *instance) time.Duration {
	n := time.Duration(in.cfg.DownTimerAdverts)
	if n == 0 {
		n = 3
	}
	return n*in.masterAdverInt + m.skew(in)
}

func (s *scriptState) record(ok bool) {
	if ok {
		s.okRun++
		s.failRun = 0
		if !s.up && s.okRun >= s.cfg.Rise {
			s.up = true
		}
		return
	}
	s.failRun++
	s.okRun = 0
	if s.up && s.failRun >= s.cfg.Fall {
		s.up = false
	}
}

func (m *Machine) linkUp(name string) bool {
	s, known := m.links[name]
	return !known || s.up
}

// linkDown says why a link counts as down ("" when up).
func (m *Machine) linkDown(name string) string {
	switch s, known := m.links[name]; {
	case !known || s.up:
		return ""
	case s.missing:
		return "missing"
	}
	return "down"
}

// weightOf is one tracked object's contribution: a positive weight is
// added while up, a negative one while down; reverse subtracts instead
// (keepalived's table: +w reverse lowers the priority while up, -w
// reverse raises it while down).
func weightOf(weight int, reverse, up bool) int {
	if (weight > 0 && up) || (weight < 0 && !up) {
		if reverse {
			return -weight
		}
		return weight
	}
	return 0
}

// minFileWeight: a track_file adding less than this puts the instance
// in FAULT (keepalived's "less than -253").
const minFileWeight = -253

// fileWeight is what a weighted track_file adds: value times weight,
// negated with reverse. The value is clamped to 32 bits first, as
// keepalived reads it into an int, so the product cannot overflow.
func fileWeight(tf TrackFile, value int64) int64 {
	v := min(max(value, math.MinInt32), math.MaxInt32) * int64(tf.Weight)
	if tf.Reverse {
		return -v
	}
	return v
}

// zeroWeightDown reports whether an unweighted tracked object puts the
// instance in FAULT.
func zeroWeightDown(reverse, up bool) bool { return up == reverse }

// priority computes the effective priority: base plus tracked weights,
// clamped to 1..254; the owner keeps 255.
func (m *Machine) priority(in *instance) (uint8, bool) {
	if in.cfg.Priority == PriorityOwner {
		return PriorityOwner, false
	}
	sum := int(in.cfg.Priority)
	for _, ti := range in.cfg.TrackInterfaces {
		if ti.Weight != 0 {
			sum += weightOf(ti.Weight, ti.Reverse, m.linkUp(ti.Name))
		}
	}
	for _, ts := range in.cfg.TrackScripts {
		if s, ok := m.scripts[ts.Name]; ok && ts.Weight != 0 {
			sum += weightOf(ts.Weight, ts.Reverse, s.up)
		}
	}
	for _, tf := range in.cfg.TrackFiles {
		if add := fileWeight(tf, m.files[tf.Name]); tf.Weight != 0 && add >= minFileWeight {
			sum += int(add)
		}
	}
	return uint8(min(max(sum, 1), 254)), true
}

// faulty lists why an instance (alone) must be in FAULT.
func (m *Machine) faulty(in *instance) []string {
	var why []string
	if d := m.linkDown(in.cfg.Interface); d != "" {
		why = append(why, "interface "+in.cfg.Interface+" "+d)
	} else if !in.cfg.SourceAddr.IsValid() {
		// Nothing to send adverts from (keepalived: "no IPv4 address
		// for interface"); the runtime looks again when one is added.
		why = append(why, "no "+map[bool]string{false: "IPv4", true: "IPv6 link-local"}[in.cfg.IsIPv6()]+
			" address on "+in.cfg.Interface)
	}
	for _, ti := range in.cfg.TrackInterfaces {
		if ti.Weight == 0 && zeroWeightDown(ti.Reverse, m.linkUp(ti.Name)) {
			d := m.linkDown(ti.Name)
			if d == "" {
				d = "up (reverse)"
			}
			why = append(why, "track_interface "+ti.Name+" "+d)
		}
	}
	for _, ts := range in.cfg.TrackScripts {
		if s, ok := m.scripts[ts.Name]; ok && ts.Weight == 0 && zeroWeightDown(ts.Reverse, s.up) {
			why = append(why, "track_script "+ts.Name+" failed")
		}
	}
	for _, tf := range in.cfg.TrackFiles {
		v := m.files[tf.Name]
		switch {
		case tf.Weight == 0 && zeroWeightDown(tf.Reverse, v == 0):
			why = append(why, fmt.Sprintf("track_file %s holds %d", tf.Name, v))
		case tf.Weight != 0 && fileWeight(tf, v) < minFileWeight:
			why = append(why, fmt.Sprintf("track_file %s holds %d (times weight %d: below %d)", tf.Name, v, tf.Weight, minFileWeight))
		}
	}
	return why
}

// groupFaulty lists fault reasons of an instance including its group's.
func (m *Machine) groupFaulty(in *instance) []string {
	why := m.faulty(in)
	if in.group != nil {
		for _, o := range in.group.members {
			if o != in && len(m.faulty(o)) > 0 {
				why = append(why, "sync group "+in.group.cfg.Name+" member "+o.cfg.Name+" in FAULT")
			}
		}
	}
	return why
}

// reconcile applies tracked state: new effective priorities, and moves
// into and out of FAULT.
func (m *Machine) reconcile(cause string) {
	for _, in := range m.instances {
		if in.state == StateStop {
			continue
		}
		if eff, _ := m.priority(in); eff != in.eff {
			oldSkew := m.skew(in)
			in.eff = eff
			if in.state == StateBackup && !in.downAt.IsZero() {
				// keepalived moves a running Master_Down_Timer by the
				// change of skew: a backup whose priority rose takes
				// over sooner, as if the last advert had found it so.
				in.downAt = in.downAt.Add(m.skew(in) - oldSkew)
			}
			m.emit(PriorityChanged{Instance: in.cfg.Name, Base: in.cfg.Priority, Effective: eff})
		}
	}
	for _, in := range m.instances {
		why := m.groupFaulty(in)
		switch {
		case in.state == StateStop:
		case len(why) > 0 && in.state != StateFault:
			if in.state == StateMaster {
				m.resign(in)
			}
			in.downAt = time.Time{}
			m.transition(in, StateFault, why[0])
		case len(why) == 0 && in.state == StateFault:
			m.leaveFault(in, cause+" recovered")
		case len(why) == 0 && in.state == StateInit:
			m.start(in)
		}
	}
	m.updateGroups()
}

func (m *Machine) leaveFault(in *instance, reason string) {
	in.masterAdverInt = in.cfg.AdvertInterval
	if in.cfg.Priority == PriorityOwner && !m.groupBlocksMaster(in) {
		if m.delaying() {
			m.waitStartupDelay(in, reason)
			return
		}
		m.becomeMaster(in, reason)
		return
	}
	m.becomeBackup(in, reason, 0)
}

func (g *syncGroup) derivedState() State {
	if len(g.members) == 0 {
		return StateInit
	}
	all := g.members[0].state
	for _, in := range g.members {
		if in.state == StateFault {
			return StateFault
		}
		if in.state != all {
			return StateBackup
		}
	}
	return all
}

func (m *Machine) updateGroups() {
	names := make([]string, 0, len(m.groups))
	for n := range m.groups {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		g := m.groups[n]
		if s := g.derivedState(); s != g.state && s != StateInit {
			m.emit(GroupStateChanged{Group: n, From: g.state, To: s})
			g.state = s
		}
	}
}

// ScriptStatus is a vrrp_script's result after rise/fall.
type ScriptStatus struct {
	Name string
	OK   bool
}

// Scripts returns every vrrp_script's result after rise/fall, by name.
func (m *Machine) Scripts() []ScriptStatus {
	out := make([]ScriptStatus, 0, len(m.scripts))
	for name, s := range m.scripts {
		out = append(out, ScriptStatus{Name: name, OK: s.up})
	}
	slices.SortFunc(out, func(a, b ScriptStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// FileStatus is a track_file's value as last read.
type FileStatus struct {
	Name  string
	Value int64
}

// Files returns every track_file's value, by name.
func (m *Machine) Files() []FileStatus {
	out := make([]FileStatus, 0, len(m.files))
	for name, v := range m.files {
		out = append(out, FileStatus{Name: name, Value: v})
	}
	slices.SortFunc(out, func(a, b FileStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Status returns a snapshot of every instance, in configuration order.
func (m *Machine) Status() []InstanceStatus {
	out := make([]InstanceStatus, 0, len(m.instances))
	for _, in := range m.instances {
		out = append(out, InstanceStatus{
			Name:                 in.cfg.Name,
			Interface:            in.cfg.Interface,
			VRID:                 in.cfg.VRID,
			State:                in.state,
			BasePriority:         in.cfg.Priority,
			EffectivePriority:    in.eff,
			MasterAddr:           in.masterAddr,
			MasterPriority:       in.masterPrio,
			AdvertInterval:       in.cfg.AdvertInterval,
			MasterAdvertInterval: in.masterAdverInt,
			LastTransition:       in.lastTransition,
			FaultReasons:         m.groupFaulty(in),
			Counters:             in.counters.clone(),
		})
	}
	return out
}

// State returns an instance's state (StateInit for an unknown one).
func (m *Machine) State(name string) State {
	if in, ok := m.byName[name]; ok {
		return in.state
	}
	return StateInit
}

// CountDrop counts a packet the runtime dropped for an instance before
// it reached the machine.
func (m *Machine) CountDrop(instance string, r packet.Reason) {
	if in, ok := m.byName[instance]; ok {
		in.counters.drop(r)
	}
}
