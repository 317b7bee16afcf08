package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// harness drives a Machine on a fake clock and records every action with
// the time it came out, relative to the start.
type harness struct {
	t   *testing.T
	m   *Machine
	t0  time.Time
	now time.Time
	log []string
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &harness{t: t, m: NewMachine(), t0: t0, now: t0}
	h.m.Configure(t0, cfg)
	h.collect()
	return h
}

func (h *harness) collect() {
	for _, a := range h.m.Ready() {
		h.log = append(h.log, fmt.Sprintf("%v %s", h.now.Sub(h.t0), describe(a)))
	}
}

func describe(a Action) string {
	switch a := a.(type) {
	case SendAdvert:
		return fmt.Sprintf("%s advert prio %d", a.Instance, a.Priority)
	case AddVIPs:
		return fmt.Sprintf("%s add %s", a.Instance, vipList(a.VIPs))
	case RemoveVIPs:
		return fmt.Sprintf("%s remove %s", a.Instance, vipList(a.VIPs))
	case SendGARP:
		return fmt.Sprintf("%s garp %s x%d", a.Instance, vipList(a.VIPs), a.Count)
	case StateChanged:
		return fmt.Sprintf("%s %s->%s", a.Instance, a.From, a.To)
	case GroupStateChanged:
		return fmt.Sprintf("group %s %s->%s", a.Group, a.From, a.To)
	case PriorityChanged:
		return fmt.Sprintf("%s priority %d", a.Instance, a.Effective)
	case LowerPriorityReceived:
		return fmt.Sprintf("%s heard lower prio %d from %s", a.Instance, a.Priority, a.From)
	}
	return fmt.Sprintf("%T", a)
}

func vipList(vs []VIP) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Prefix.String()
	}
	return strings.Join(s, ",")
}

// run advances the clock through every deadline up to d after the start.
func (h *harness) run(d time.Duration) {
	end := h.t0.Add(d)
	for {
		next, ok := h.m.NextDeadline()
		if !ok || next.After(end) {
			break
		}
		h.now = next
		h.m.Advance(next)
		h.collect()
	}
	h.now = end
}

// at moves the clock to d after the start (firing timers on the way) and
// feeds ev.
func (h *harness) at(d time.Duration, ev Event) {
	h.run(d)
	h.m.Step(h.now, ev)
	h.collect()
}

// expect compares the log since the last expect with want.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	if !slices.Equal(h.log, want) {
		h.t.Fatalf("actions:\n  %s\nwant:\n  %s", strings.Join(h.log, "\n  "), strings.Join(want, "\n  "))
	}
	h.log = nil
}

func (h *harness) status(name string) InstanceStatus {
	for _, s := range h.m.Status() {
		if s.Name == name {
			return s
		}
	}
	h.t.Fatalf("no instance %s", name)
	return InstanceStatus{}
}

var (
	vip     = VIP{Prefix: netip.MustParsePrefix("10.0.0.100/32")}
	self    = netip.MustParseAddr("10.0.0.2")
	lowPeer = netip.MustParseAddr("10.0.0.1")
	hiPeer  = netip.MustParseAddr("10.0.0.3")
)

func inst(mod ...func(*InstanceConfig)) InstanceConfig {
	c := InstanceConfig{
		Name: "VI_1", Interface: "eth0", VRID: 51, Version: 2, Priority: 100,
		AdvertInterval: time.Second, VIPs: []VIP{vip}, SourceAddr: self, GARP: DefaultGARP,
	}
	for _, f := range mod {
		f(&c)
	}
	return c
}

func one(mod ...func(*InstanceConfig)) Config {
	return Config{Instances: []InstanceConfig{inst(mod...)}}
}

// advert builds a valid advert for the default instance from src.
func advert(name string, src netip.Addr, prio uint8, mod ...func(*packet.Packet)) AdvertReceived {
	p := &packet.Packet{Src: src, Dst: packet.GroupIPv4, TTL: 255,
		Advert: packet.Advert{Version: 2, VRID: 51, Priority: prio, Interval: time.Second, Addrs: []netip.Addr{vip.Prefix.Addr()}}}
	for _, f := range mod {
		f(p)
	}
	return AdvertReceived{Instance: name, Packet: p}
}

func v3(interval time.Duration) func(*packet.Packet) {
	return func(p *packet.Packet) { p.Version = 3; p.Interval = interval; p.ChecksumMode = packet.PseudoHeader }
}

const ms = time.Millisecond

// --- RFC 5798 section 6.4.1, Initialize ---

// "If the Priority = 255 (i.e., the router owns the IPvX address(es)
// associated with the virtual router), then: Send an ADVERTISEMENT,
// broadcast a gratuitous ARP request ... Set the Adver_Timer to
// Advertisement_Interval, Transition to the {Master} state."
func TestInitOwnerBecomesMasterAtOnce(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255 }))
	h.expect(
		"0s VI_1 add 10.0.0.100/32",
		"0s VI_1 advert prio 255",
		"0s VI_1 garp 10.0.0.100/32 x5",
		"0s VI_1 INIT->MASTER",
	)
	h.run(2 * time.Second)
	h.expect("1s VI_1 advert prio 255", "2s VI_1 advert prio 255")
}

// "else ... Set Master_Adver_Interval to Advertisement_Interval, Set the
// Master_Down_Timer to Master_Down_Interval, Transition to the {Backup}
// state." With priority 100 at 1 s (VRRPv2) that is 3 + 156/256 s.
func TestInitBackupTakesOverAfterMasterDownInterval(t *testing.T) {
	h := newHarness(t, one())
	h.expect("0s VI_1 remove 10.0.0.100/32", "0s VI_1 INIT->BACKUP")
	h.run(10 * time.Second)
	h.expect(
		"3.609375s VI_1 add 10.0.0.100/32",
		"3.609375s VI_1 advert prio 100",
		"3.609375s VI_1 garp 10.0.0.100/32 x5",
		"3.609375s VI_1 BACKUP->MASTER",
		"4.609375s VI_1 advert prio 100",
		"5.609375s VI_1 advert prio 100",
		"6.609375s VI_1 advert prio 100",
		"7.609375s VI_1 advert prio 100",
		"8.609375s VI_1 advert prio 100",
		// keepalived's default second block of gratuitous ARPs, 5 s later.
		"8.609375s VI_1 garp 10.0.0.100/32 x5",
		"9.609375s VI_1 advert prio 100",
	)
	if s := h.status("VI_1"); s.Counters.BecameMaster != 1 || s.Counters.AdvertsSent != 7 || s.State != StateMaster {
		t.Fatalf("status %+v", s)
	}
}

// keepalived's `state MASTER`: take over after one interval plus the
// smallest skew unless a master speaks first.
func TestInitStateMasterTakesOverAfterOneInterval(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.StartAsMaster = true }))
	h.log = nil
	h.run(1100 * ms)
	h.expect(
		"1.00390625s VI_1 add 10.0.0.100/32",
		"1.00390625s VI_1 advert prio 100",
		"1.00390625s VI_1 garp 10.0.0.100/32 x5",
		"1.00390625s VI_1 BACKUP->MASTER",
	)
}

// --- RFC 5798 section 6.1 / 6.4.2, Backup ---

// "Master_Down_Interval: Time interval for Backup to declare Master down
// (seconds). Calculated as: (3 * Master_Advertisement_Interval) +
// Skew_time" — counted from the last advert accepted.
func TestBackupTakesOverMasterDownIntervalAfterLastAdvert(t *testing.T) {
	h := newHarness(t, one())
	h.log = nil
	for _, d := range []time.Duration{500 * ms, 1500 * ms, 2500 * ms, 3500 * ms} {
		h.at(d, advert("VI_1", hiPeer, 200))
	}
	h.run(7100 * ms)
	h.expect()
	h.run(7200 * ms)
	h.expect(
		"7.109375s VI_1 add 10.0.0.100/32",
		"7.109375s VI_1 advert prio 100",
		"7.109375s VI_1 garp 10.0.0.100/32 x5",
		"7.109375s VI_1 BACKUP->MASTER",
	)
	if s := h.status("VI_1"); s.MasterAddr != self || s.Counters.AdvertsReceived != 4 {
		t.Fatalf("status %+v", s)
	}
}

// Skew_Time (RFC 3768 6.1): (256 - Priority) / 256 seconds; the skew
// makes the highest backup win.
func TestSkewTimeV2(t *testing.T) {
	for _, tt := range []struct {
		prio uint8
		want time.Duration
	}{{254, 3*time.Second + 7812500}, {100, 3609375 * time.Microsecond}, {1, 3*time.Second + 996093750}} {
		h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = tt.prio }))
		if next, _ := h.m.NextDeadline(); next.Sub(h.t0) != tt.want {
			t.Errorf("priority %d: takeover at %v, want %v", tt.prio, next.Sub(h.t0), tt.want)
		}
	}
}

// RFC 5798 6.4.2: "Set Master_Adver_Interval to Adver Interval contained
// in the ADVERTISEMENT, Recompute the Master_Down_Interval". Skew_Time is
// (((256 - priority) * Master_Adver_Interval) / 256).
func TestV3BackupAdoptsMasterInterval(t *testing.T) {
	cfg := one(func(c *InstanceConfig) { c.Version = 3 })
	h := newHarness(t, cfg)
	h.log = nil
	h.at(0, advert("VI_1", hiPeer, 200, v3(100*ms)))
	h.run(time.Second)
	// 300 ms + 156 * 100 ms / 256 = 360.9375 ms.
	h.expect(
		"360.9375ms VI_1 add 10.0.0.100/32",
		"360.9375ms VI_1 advert prio 100",
		"360.9375ms VI_1 garp 10.0.0.100/32 x5",
		"360.9375ms VI_1 BACKUP->MASTER",
	)
	// As master it advertises its own interval again.
	if s := h.status("VI_1"); s.MasterAdvertInterval != time.Second {
		t.Fatalf("master advert interval %v", s.MasterAdvertInterval)
	}
}

func TestV3CentisecondTimers(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Version = 3; c.AdvertInterval = 10 * ms }))
	h.log = nil
	h.at(0, advert("VI_1", hiPeer, 200, v3(10*ms)))
	next, _ := h.m.NextDeadline()
	// 30 ms + 156 * 10 ms / 256 = 36.09375 ms.
	if got := next.Sub(h.t0); got != 36093750 {
		t.Fatalf("master down after %v, want 36.09375ms", got)
	}
}

// RFC 3768 7.1: "MUST verify that the Adver Interval in the packet is the
// same as the locally configured for this virtual router. If the above
// check fails, the receiver MUST discard the packet".
func TestV2DropsAdvertWithAnotherInterval(t *testing.T) {
	h := newHarness(t, one())
	h.log = nil
	h.at(3*time.Second, advert("VI_1", hiPeer, 200, func(p *packet.Packet) { p.Interval = 2 * time.Second }))
	h.run(3700 * ms)
	h.expect(
		"3.609375s VI_1 add 10.0.0.100/32",
		"3.609375s VI_1 advert prio 100",
		"3.609375s VI_1 garp 10.0.0.100/32 x5",
		"3.609375s VI_1 BACKUP->MASTER",
	)
	if s := h.status("VI_1"); s.Counters.Errors[packet.ReasonInterval] != 1 || s.Counters.AdvertsReceived != 0 {
		t.Fatalf("counters %+v", s.Counters)
	}
}

// RFC 5798 6.4.2: "If the Priority in the ADVERTISEMENT is zero, then:
// Set the Master_Down_Timer to Skew_Time".
func TestBackupTakesOverSkewAfterPriorityZero(t *testing.T) {
	h := newHarness(t, one())
	h.log = nil
	h.at(time.Second, advert("VI_1", hiPeer, 200))
	h.at(1500*ms, advert("VI_1", hiPeer, 0))
	h.run(3 * time.Second)
	h.expect(
		"2.109375s VI_1 add 10.0.0.100/32",
		"2.109375s VI_1 advert prio 100",
		"2.109375s VI_1 garp 10.0.0.100/32 x5",
		"2.109375s VI_1 BACKUP->MASTER",
	)
	if c := h.status("VI_1").Counters; c.PriorityZeroReceived != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// RFC 5798 6.4.2: "If Preempt_Mode is False, or if the Priority in the
// ADVERTISEMENT is greater than or equal to the local Priority, then:
// ... Reset the Master_Down_Timer ... Else (Priority in the ADVERTISEMENT
// is less than the local Priority and Preempt_Mode is True): Discard the
// ADVERTISEMENT".
func TestBackupPreemptsLowerPriorityMaster(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 150 }))
	h.log = nil
	for d := 500 * ms; d < 5*time.Second; d += time.Second {
		h.at(d, advert("VI_1", lowPeer, 100))
	}
	// Discarded adverts leave the first timer running: 3 + 106/256 s.
	h.expect(
		"3.4140625s VI_1 add 10.0.0.100/32",
		"3.4140625s VI_1 advert prio 150",
		"3.4140625s VI_1 garp 10.0.0.100/32 x5",
		"3.4140625s VI_1 BACKUP->MASTER",
		// As master it answers the lower priority at once.
		"3.5s VI_1 advert prio 150",
		"3.5s VI_1 heard lower prio 100 from 10.0.0.1",
		"4.4140625s VI_1 advert prio 150",
		"4.5s VI_1 advert prio 150",
		"4.5s VI_1 heard lower prio 100 from 10.0.0.1",
	)
}

func TestNoPreemptKeepsLowerPriorityMaster(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 150; c.NoPreempt = true }))
	h.log = nil
	for d := 500 * ms; d < 10*time.Second; d += time.Second {
		h.at(d, advert("VI_1", lowPeer, 100))
	}
	h.expect()
	if s := h.status("VI_1"); s.State != StateBackup || s.MasterAddr != lowPeer || s.MasterPriority != 100 {
		t.Fatalf("status %+v", s)
	}
}

// preempt_delay: a lower-priority master is accepted for that long after
// startup (or after first being seen) before preemption.
func TestPreemptDelay(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 150; c.PreemptDelay = 5 * time.Second }))
	h.log = nil
	for d := 500 * ms; d < 12*time.Second; d += time.Second {
		h.at(d, advert("VI_1", lowPeer, 100))
	}
	// The last accepted advert is at 4.5 s (before 5 s); 3.4140625 s later
	// the timer runs out.
	h.expect(
		"7.9140625s VI_1 add 10.0.0.100/32",
		"7.9140625s VI_1 advert prio 150",
		"7.9140625s VI_1 garp 10.0.0.100/32 x5",
		"7.9140625s VI_1 BACKUP->MASTER",
		"8.5s VI_1 advert prio 150",
		"8.5s VI_1 heard lower prio 100 from 10.0.0.1",
		"8.9140625s VI_1 advert prio 150",
		"9.5s VI_1 advert prio 150",
		"9.5s VI_1 heard lower prio 100 from 10.0.0.1",
		"9.9140625s VI_1 advert prio 150",
		"10.5s VI_1 advert prio 150",
		"10.5s VI_1 heard lower prio 100 from 10.0.0.1",
		"10.9140625s VI_1 advert prio 150",
		"11.5s VI_1 advert prio 150",
		"11.5s VI_1 heard lower prio 100 from 10.0.0.1",
	)
}

// --- RFC 5798 section 6.4.3, Master ---

// "If the Adver_Timer fires, then: Send an ADVERTISEMENT, Reset the
// Adver_Timer to Advertisement_Interval".
func TestMasterAdvertisesEveryInterval(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255; c.Version = 3; c.AdvertInterval = 100 * ms }))
	h.log = nil
	h.run(350 * ms)
	h.expect("100ms VI_1 advert prio 255", "200ms VI_1 advert prio 255", "300ms VI_1 advert prio 255")
}

// "If the Priority in the ADVERTISEMENT is zero, then: Send an
// ADVERTISEMENT, Reset the Adver_Timer to Advertisement_Interval".
func TestMasterAnswersPriorityZero(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255 }))
	h.log = nil
	h.at(1500*ms, advert("VI_1", hiPeer, 0))
	h.run(3 * time.Second)
	h.expect("1s VI_1 advert prio 255", "1.5s VI_1 advert prio 255", "2.5s VI_1 advert prio 255")
}

// "If the Priority in the ADVERTISEMENT is greater than the local
// Priority, or the Priority in the ADVERTISEMENT is equal to the local
// Priority and the primary IPvX Address of the sender is greater than the
// local primary IPvX Address, then: Cancel Adver_Timer, Set
// Master_Adver_Interval to Adver Interval contained in the ADVERTISEMENT,
// Recompute the Skew_Time, Recompute the Master_Down_Interval, Set
// Master_Down_Timer to Master_Down_Interval, Transition to the {Backup}
// state".
func TestMasterYieldsToHigherPriority(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Version = 3; c.StartAsMaster = true }))
	h.run(1500 * ms)
	h.log = nil
	h.at(1600*ms, advert("VI_1", lowPeer, 101, v3(200*ms)))
	h.expect("1.6s VI_1 remove 10.0.0.100/32", "1.6s VI_1 MASTER->BACKUP")
	next, _ := h.m.NextDeadline()
	// 3 * 200 ms + 156 * 200 ms / 256 = 721.875 ms later.
	if got := next.Sub(h.t0); got != 1600*ms+721875*time.Microsecond {
		t.Fatalf("master down at %v", got)
	}
	if c := h.status("VI_1").Counters; c.ReleasedMaster != 1 || c.BecameMaster != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestMasterEqualPriorityHigherAddressWins(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.StartAsMaster = true }))
	h.run(1500 * ms)
	h.log = nil
	// Equal priority from a lower address: we stay and answer.
	h.at(1600*ms, advert("VI_1", lowPeer, 100))
	h.expect("1.6s VI_1 advert prio 100", "1.6s VI_1 heard lower prio 100 from 10.0.0.1")
	// Equal priority from a higher address: we yield.
	h.at(1700*ms, advert("VI_1", hiPeer, 100))
	h.expect("1.7s VI_1 remove 10.0.0.100/32", "1.7s VI_1 MASTER->BACKUP")
}

// keepalived: a master hearing a lower priority sends an advert at once
// ("forcing new election") unless lower_prio_no_advert.
func TestMasterLowerPriorityAdvert(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255; c.LowerPrioNoAdvert = quiet }))
		h.log = nil
		h.at(300*ms, advert("VI_1", hiPeer, 50))
		if quiet {
			h.expect("300ms VI_1 heard lower prio 50 from 10.0.0.3")
		} else {
			h.expect("300ms VI_1 advert prio 255", "300ms VI_1 heard lower prio 50 from 10.0.0.3")
		}
	}
}

// RFC 5798 6.4.3: "If a Shutdown event is received, then: Cancel the
// Adver_Timer, Send an ADVERTISEMENT with Priority = 0, Transition to the
// {Initialize} state" (keepalived: STOP, addresses removed).
func TestShutdownResignsWithPriorityZero(t *testing.T) {
	cfg := Config{Instances: []InstanceConfig{
		inst(func(c *InstanceConfig) { c.Priority = 255 }),
		inst(func(c *InstanceConfig) { c.Name = "VI_2"; c.VRID = 52 }),
	}}
	h := newHarness(t, cfg)
	h.log = nil
	h.at(500*ms, Shutdown{})
	h.expect(
		"500ms VI_1 advert prio 0",
		"500ms VI_1 remove 10.0.0.100/32",
		"500ms VI_1 MASTER->STOP",
		"500ms VI_2 BACKUP->STOP",
	)
	if _, ok := h.m.NextDeadline(); ok {
		t.Fatal("timers still armed after shutdown")
	}
	if c := h.status("VI_1").Counters; c.PriorityZeroSent != 1 || c.ReleasedMaster != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// --- RFC 5798 section 7.1, Receiving VRRP Packets (the checks that need
// the instance's configuration; the codec does the rest) ---

func TestReceiveChecks(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*InstanceConfig)
		pkt  func(*packet.Packet)
		want packet.Reason
	}{
		{"MUST verify that the IP TTL is 255", nil, func(p *packet.Packet) { p.TTL = 64 }, packet.ReasonTTL},
		{"MUST verify the VRRP version", nil, v3(time.Second), packet.ReasonVersion},
		{"MUST verify that the VRID is configured", nil, func(p *packet.Packet) { p.VRID = 52 }, packet.ReasonVRID},
		{"MUST perform authentication (type)", func(c *InstanceConfig) { c.AuthType = packet.AuthPass; c.AuthPass = "secret" }, nil, packet.ReasonAuth},
		{"MUST perform authentication (password)", func(c *InstanceConfig) { c.AuthType = packet.AuthPass; c.AuthPass = "secret" },
			func(p *packet.Packet) { p.AuthType = packet.AuthPass; p.AuthData = packet.AuthPassword("wrong") }, packet.ReasonAuth},
		{"MAY verify the IP addresses (count)", nil, func(p *packet.Packet) { p.Addrs = nil }, packet.ReasonAddrs},
		{"MAY verify the IP addresses (list)", nil, func(p *packet.Packet) { p.Addrs = []netip.Addr{netip.MustParseAddr("10.9.9.9")} }, packet.ReasonAddrs},
		{"v3 checksum form differs", func(c *InstanceConfig) { c.Version = 3; c.Checksum = packet.MessageOnly }, v3(time.Second), packet.ReasonChecksum},
		{"unicast source not a peer", func(c *InstanceConfig) { c.UnicastPeers = []netip.Addr{lowPeer} }, nil, packet.ReasonSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods := []func(*InstanceConfig){}
			if tt.cfg != nil {
				mods = append(mods, tt.cfg)
			}
			h := newHarness(t, one(mods...))
			pm := []func(*packet.Packet){}
			if tt.pkt != nil {
				pm = append(pm, tt.pkt)
			}
			h.at(time.Second, advert("VI_1", hiPeer, 200, pm...))
			c := h.status("VI_1").Counters
			if c.Errors[tt.want] != 1 || c.AdvertsReceived != 0 {
				t.Fatalf("counters %+v, want one %q drop", c, tt.want)
			}
		})
	}
	// And a good one passes with PASS authentication and unicast TTL.
	h := newHarness(t, one(func(c *InstanceConfig) {
		c.AuthType = packet.AuthPass
		c.AuthPass = "secret"
		c.UnicastPeers = []netip.Addr{hiPeer}
	}))
	h.at(time.Second, advert("VI_1", hiPeer, 200, func(p *packet.Packet) {
		p.AuthType = packet.AuthPass
		p.AuthData = packet.AuthPassword("secret")
		p.TTL = 64
	}))
	if c := h.status("VI_1").Counters; c.AdvertsReceived != 1 || len(c.Errors) != 0 {
		t.Fatalf("counters %+v", c)
	}
}

// --- Tracking ---

func TestTrackScriptWeightRiseFallAndClamp(t *testing.T) {
	cfg := one(func(c *InstanceConfig) {
		c.Priority = 255 - 1
		c.TrackScripts = []TrackScript{{Name: "chk", Weight: -20}, {Name: "plus", Weight: 30}}
	})
	cfg.Scripts = []ScriptConfig{{Name: "chk", Command: "/bin/true", Rise: 2, Fall: 2}, {Name: "plus", Command: "/bin/true"}}
	h := newHarness(t, cfg)
	if s := h.status("VI_1"); s.EffectivePriority != 254 {
		t.Fatalf("254 + 30 must clamp to 254, got %d", s.EffectivePriority)
	}
	h.log = nil
	h.at(1*time.Second, ScriptResult{Script: "chk", OK: false})
	h.expect()
	h.at(2*time.Second, ScriptResult{Script: "chk", OK: false})
	h.expect() // 254 - 20 + 30 still clamps
	h.at(2500*ms, ScriptResult{Script: "plus", OK: false})
	h.expect("2.5s VI_1 priority 234")
	h.at(2600*ms, ScriptResult{Script: "chk", OK: true})
	h.expect()
	h.at(2700*ms, ScriptResult{Script: "chk", OK: true})
	h.expect("2.7s VI_1 priority 254")
}

func TestTrackWeightsReverseAndFloor(t *testing.T) {
	for _, tt := range []struct {
		weight  int
		reverse bool
		up      bool
		want    uint8
	}{
		{10, false, true, 60}, {10, false, false, 50},
		{-10, false, true, 50}, {-10, false, false, 40},
		{10, true, true, 40}, {10, true, false, 50},
		{-10, true, true, 50}, {-10, true, false, 60},
		{-100, false, false, 1},
	} {
		cfg := one(func(c *InstanceConfig) {
			c.Priority = 50
			c.TrackInterfaces = []TrackInterface{{Name: "eth1", Weight: tt.weight, Reverse: tt.reverse}}
		})
		h := newHarness(t, cfg)
		h.at(0, LinkChanged{Interface: "eth1", Up: tt.up})
		if got := h.status("VI_1").EffectivePriority; got != tt.want {
			t.Errorf("weight %d reverse %v up %v: priority %d, want %d", tt.weight, tt.reverse, tt.up, got, tt.want)
		}
	}
}

// An unweighted tracked script that fails puts the instance in FAULT: a
// master resigns with priority 0 and releases its addresses; on recovery
// it starts over as backup.
func TestZeroWeightScriptFault(t *testing.T) {
	cfg := one(func(c *InstanceConfig) {
		c.StartAsMaster = true
		c.TrackScripts = []TrackScript{{Name: "chk"}}
	})
	cfg.Scripts = []ScriptConfig{{Name: "chk", Command: "/bin/true"}}
	h := newHarness(t, cfg)
	h.run(2100 * ms)
	h.log = nil
	h.at(2500*ms, ScriptResult{Script: "chk", OK: false})
	h.expect(
		"2.5s VI_1 advert prio 0",
		"2.5s VI_1 remove 10.0.0.100/32",
		"2.5s VI_1 MASTER->FAULT",
	)
	h.run(20 * time.Second)
	h.expect()
	h.at(20*time.Second, ScriptResult{Script: "chk", OK: true})
	h.expect("20s VI_1 FAULT->BACKUP")
	h.run(24 * time.Second)
	h.expect(
		"23.609375s VI_1 add 10.0.0.100/32",
		"23.609375s VI_1 advert prio 100",
		"23.609375s VI_1 garp 10.0.0.100/32 x5",
		"23.609375s VI_1 BACKUP->MASTER",
	)
	if s := h.status("VI_1"); s.State != StateMaster || len(s.FaultReasons) != 0 {
		t.Fatalf("status %+v", s)
	}
}

func TestInterfaceDownFaultAndOwnerRecovery(t *testing.T) {
	cfg := one(func(c *InstanceConfig) {
		c.Priority = 255
		c.TrackInterfaces = []TrackInterface{{Name: "uplink"}}
	})
	h := newHarness(t, cfg)
	h.log = nil
	h.at(100*ms, LinkChanged{Interface: "uplink", Up: false})
	h.expect("100ms VI_1 advert prio 0", "100ms VI_1 remove 10.0.0.100/32", "100ms VI_1 MASTER->FAULT")
	if s := h.status("VI_1"); len(s.FaultReasons) != 1 || s.FaultReasons[0] != "track_interface uplink down" {
		t.Fatalf("fault reasons %q", s.FaultReasons)
	}
	h.at(200*ms, LinkChanged{Interface: "eth0", Up: false})
	h.at(300*ms, LinkChanged{Interface: "uplink", Up: true})
	h.expect() // its own interface is still down
	h.at(400*ms, LinkChanged{Interface: "eth0", Up: true})
	h.expect(
		"400ms VI_1 add 10.0.0.100/32",
		"400ms VI_1 advert prio 255",
		"400ms VI_1 garp 10.0.0.100/32 x5",
		"400ms VI_1 FAULT->MASTER",
	)
}

func TestStartsInFaultWhenInterfaceDown(t *testing.T) {
	m := NewMachine()
	t0 := time.Unix(0, 0)
	m.Step(t0, LinkChanged{Interface: "eth0", Up: false})
	cfg := one()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Configure(t0, cfg)
	got := []string{}
	for _, a := range m.Ready() {
		got = append(got, describe(a))
	}
	if !slices.Equal(got, []string{"VI_1 INIT->FAULT"}) {
		t.Fatalf("actions %q", got)
	}
}

// --- Sync groups ---

func groupCfg() Config {
	cfg := Config{
		Instances: []InstanceConfig{
			inst(func(c *InstanceConfig) { c.TrackInterfaces = []TrackInterface{{Name: "eth1"}} }),
			inst(func(c *InstanceConfig) {
				c.Name = "VI_2"
				c.VRID = 52
				c.Priority = 90
				c.VIPs = []VIP{{Prefix: netip.MustParsePrefix("10.0.1.100/32")}}
			}),
		},
		SyncGroups: []SyncGroupConfig{{Name: "G", Instances: []string{"VI_1", "VI_2"}}},
	}
	return cfg
}

func TestSyncGroupMovesTogether(t *testing.T) {
	h := newHarness(t, groupCfg())
	h.expect(
		"0s VI_1 remove 10.0.0.100/32",
		"0s VI_1 INIT->BACKUP",
		"0s VI_2 remove 10.0.1.100/32",
		"0s VI_2 INIT->BACKUP",
		"0s group G INIT->BACKUP",
	)
	// VI_1 (priority 100) times out first and takes VI_2 along.
	h.run(4 * time.Second)
	h.expect(
		"3.609375s VI_1 add 10.0.0.100/32",
		"3.609375s VI_1 advert prio 100",
		"3.609375s VI_1 garp 10.0.0.100/32 x5",
		"3.609375s VI_1 BACKUP->MASTER",
		"3.609375s VI_2 add 10.0.1.100/32",
		"3.609375s VI_2 advert prio 90",
		"3.609375s VI_2 garp 10.0.1.100/32 x5",
		"3.609375s VI_2 BACKUP->MASTER",
		"3.609375s group G BACKUP->MASTER",
	)
	// A higher priority master for VI_2 sends both back.
	h.at(4100*ms, AdvertReceived{Instance: "VI_2", Packet: &packet.Packet{Src: hiPeer, TTL: 255,
		Advert: packet.Advert{Version: 2, VRID: 52, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("10.0.1.100")}}}})
	h.expect(
		"4.1s VI_2 remove 10.0.1.100/32",
		"4.1s VI_2 MASTER->BACKUP",
		"4.1s VI_1 remove 10.0.0.100/32",
		"4.1s VI_1 MASTER->BACKUP",
		"4.1s group G MASTER->BACKUP",
	)
	// A fault of one member faults both.
	h.at(4200*ms, LinkChanged{Interface: "eth1", Up: false})
	h.expect("4.2s VI_1 BACKUP->FAULT", "4.2s VI_2 BACKUP->FAULT", "4.2s group G BACKUP->FAULT")
	if s := h.status("VI_2"); len(s.FaultReasons) != 1 || s.FaultReasons[0] != "sync group G member VI_1 in FAULT" {
		t.Fatalf("VI_2 fault reasons %q", s.FaultReasons)
	}
	h.run(20 * time.Second)
	h.expect()
	h.at(20*time.Second, LinkChanged{Interface: "eth1", Up: true})
	h.expect("20s VI_1 FAULT->BACKUP", "20s VI_2 FAULT->BACKUP", "20s group G FAULT->BACKUP")
}

// --- GARP ---

func TestGARPDelayAndRefresh(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) {
		c.Priority = 255
		c.AdvertInterval = 10 * time.Second
		c.GARP = GARPConfig{MasterRepeat: 2, MasterDelay: 3 * time.Second, MasterRefresh: 7 * time.Second, MasterRefreshRepeat: 1}
	}))
	h.log = nil
	h.run(15 * time.Second)
	h.expect(
		"3s VI_1 garp 10.0.0.100/32 x2",
		"7s VI_1 garp 10.0.0.100/32 x1",
		"10s VI_1 advert prio 255",
		"14s VI_1 garp 10.0.0.100/32 x1",
	)
}

// --- Reload ---

func TestReloadKeepsUnchangedInstances(t *testing.T) {
	cfg := Config{Instances: []InstanceConfig{
		inst(func(c *InstanceConfig) { c.Priority = 255 }),
		inst(func(c *InstanceConfig) { c.Name = "VI_2"; c.VRID = 52; c.Priority = 255 }),
		inst(func(c *InstanceConfig) { c.Name = "VI_3"; c.VRID = 53; c.Priority = 255 }),
	}}
	h := newHarness(t, cfg)
	h.run(500 * ms)
	h.log = nil

	next := Config{Instances: []InstanceConfig{
		inst(func(c *InstanceConfig) { c.Priority = 255 }), // unchanged
		inst(func(c *InstanceConfig) { // one more address
			c.Name, c.VRID, c.Priority = "VI_2", 52, 255
			c.VIPs = []VIP{vip, {Prefix: netip.MustParsePrefix("10.0.0.101/32")}}
		}),
		inst(func(c *InstanceConfig) { c.Name = "VI_4"; c.VRID = 54 }), // new
	}}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	h.now = h.t0.Add(600 * ms)
	h.m.Configure(h.now, next)
	h.collect()
	h.expect(
		"600ms VI_3 advert prio 0",
		"600ms VI_3 remove 10.0.0.100/32",
		"600ms VI_3 MASTER->STOP",
		"600ms VI_2 add 10.0.0.101/32",
		"600ms VI_2 garp 10.0.0.101/32 x5",
		"600ms VI_4 remove 10.0.0.100/32",
		"600ms VI_4 INIT->BACKUP",
	)
	// The unchanged masters keep their cadence.
	h.run(1100 * ms)
	h.expect("1s VI_1 advert prio 255", "1s VI_2 advert prio 255")
}

func TestReloadWithNewVRIDRestarts(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255 }))
	h.log = nil
	next := one(func(c *InstanceConfig) { c.Priority = 255; c.VRID = 60 })
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	h.m.Configure(h.now, next)
	h.collect()
	h.expect(
		"0s VI_1 advert prio 0",
		"0s VI_1 remove 10.0.0.100/32",
		"0s VI_1 MASTER->STOP",
		"0s VI_1 add 10.0.0.100/32",
		"0s VI_1 advert prio 255",
		"0s VI_1 garp 10.0.0.100/32 x5",
		"0s VI_1 INIT->MASTER",
	)
}

func TestValidateErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{one(func(c *InstanceConfig) { c.VRID = 0 }), "vrrp_instance VI_1: virtual_router_id 0 (want 1..255)"},
		{one(func(c *InstanceConfig) { c.AdvertInterval = 1500 * ms }), "advert_int 1.5s must be whole seconds"},
		{one(func(c *InstanceConfig) { c.Version = 3; c.AuthType = packet.AuthPass }), "authentication is VRRPv2 only"},
		{one(func(c *InstanceConfig) { c.TrackScripts = []TrackScript{{Name: "nope"}} }), `track_script "nope" is not a defined vrrp_script`},
		{Config{Instances: []InstanceConfig{inst(), inst(func(c *InstanceConfig) { c.Name = "VI_2" })}}, "virtual_router_id 51 on eth0 is already used by VI_1"},
	} {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want %q", err, tt.want)
		}
	}
}

// A missing interface (never there, or deleted) is a FAULT reason like a
// link down, named as such; the instance starts over as backup once it is
// back and up.
func TestInterfaceMissingFault(t *testing.T) {
	m := NewMachine()
	t0 := time.Unix(0, 0)
	m.Step(t0, LinkChanged{Interface: "eth0", Missing: true})
	cfg := Config{Instances: []InstanceConfig{inst(), inst(func(c *InstanceConfig) {
		c.Name, c.Interface, c.VRID, c.Priority, c.AdvertInterval = "VI_2", "eth1", 52, 255, 10*time.Second
	})}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, m: m, t0: t0, now: t0}
	m.Configure(t0, cfg)
	h.collect()
	h.expect(
		"0s VI_2 add 10.0.0.100/32",
		"0s VI_2 advert prio 255",
		"0s VI_2 garp 10.0.0.100/32 x5",
		"0s VI_2 INIT->MASTER",
		"0s VI_1 INIT->FAULT",
	)
	if r := h.status("VI_1").FaultReasons; !slices.Equal(r, []string{"interface eth0 missing"}) {
		t.Fatalf("fault reasons %q", r)
	}
	// It appears, down: still FAULT, now because it is down.
	h.at(time.Second, LinkChanged{Interface: "eth0", Up: false})
	h.expect()
	if r := h.status("VI_1").FaultReasons; !slices.Equal(r, []string{"interface eth0 down"}) {
		t.Fatalf("fault reasons %q", r)
	}
	h.at(2*time.Second, LinkChanged{Interface: "eth0", Up: true})
	h.expect("2s VI_1 FAULT->BACKUP")
	// The owner's interface vanishes: it resigns (its advert cannot
	// leave, but its address goes) and VI_1 carries on.
	h.at(2500*ms, LinkChanged{Interface: "eth1", Missing: true})
	h.expect(
		"2.5s VI_2 advert prio 0",
		"2.5s VI_2 remove 10.0.0.100/32",
		"2.5s VI_2 MASTER->FAULT",
	)
	h.at(3*time.Second, LinkChanged{Interface: "eth1", Up: true})
	h.expect(
		"3s VI_2 add 10.0.0.100/32",
		"3s VI_2 advert prio 255",
		"3s VI_2 garp 10.0.0.100/32 x5",
		"3s VI_2 FAULT->MASTER",
	)
	// A tracked interface that is missing counts as down.
	h2 := newHarness(t, one(func(c *InstanceConfig) { c.TrackInterfaces = []TrackInterface{{Name: "uplink"}} }))
	h2.log = nil
	h2.at(time.Second, LinkChanged{Interface: "uplink", Missing: true})
	h2.expect("1s VI_1 BACKUP->FAULT")
	if r := h2.status("VI_1").FaultReasons; !slices.Equal(r, []string{"track_interface uplink missing"}) {
		t.Fatalf("fault reasons %q", r)
	}
}

// NextMasterDown is the backup's Master_Down_Timer only (the runtime
// keeps that deadline exactly); a master's advert timer is not one.
func TestNextMasterDown(t *testing.T) {
	cfg := Config{Instances: []InstanceConfig{
		inst(func(c *InstanceConfig) { c.Priority = 255 }),
		inst(func(c *InstanceConfig) { c.Name, c.VRID = "VI_2", 52 }),
	}}
	h := newHarness(t, cfg)
	if next, _ := h.m.NextDeadline(); next.Sub(h.t0) != time.Second {
		t.Fatalf("next deadline %v", next.Sub(h.t0))
	}
	if down, ok := h.m.NextMasterDown(); !ok || down.Sub(h.t0) != 3609375*time.Microsecond {
		t.Fatalf("master down %v %v", down.Sub(h.t0), ok)
	}
	h.run(4 * time.Second)
	if down, ok := h.m.NextMasterDown(); ok {
		t.Fatalf("master down %v with both masters", down.Sub(h.t0))
	}
}

// --- keepalived's extensions ---

// higher_prio_send_advert: a master that hears a higher priority (or an
// equal one from a higher address) sends one advert of its own before it
// becomes backup.
func TestHigherPrioSendAdvert(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, one(func(c *InstanceConfig) { c.Priority = 255; c.HigherPrioSendAdvert = on }))
		h.log = nil
		h.at(300*ms, advert("VI_1", hiPeer, 255))
		want := []string{"300ms VI_1 remove 10.0.0.100/32", "300ms VI_1 MASTER->BACKUP"}
		if on {
			want = append([]string{"300ms VI_1 advert prio 255"}, want...)
		}
		h.expect(want...)
	}
	// Not on a lower priority, nor as a backup.
	h := newHarness(t, one(func(c *InstanceConfig) { c.HigherPrioSendAdvert = true; c.LowerPrioNoAdvert = true }))
	h.at(time.Second, advert("VI_1", hiPeer, 200))
	h.run(4700 * ms) // master at 4.609375 s
	h.log = nil
	h.at(4800*ms, advert("VI_1", lowPeer, 50))
	h.expect("4.8s VI_1 heard lower prio 50 from 10.0.0.1")
	h.at(4900*ms, advert("VI_1", hiPeer, 100)) // equal priority, higher address
	h.expect("4.9s VI_1 advert prio 100", "4.9s VI_1 remove 10.0.0.100/32", "4.9s VI_1 MASTER->BACKUP")
}

// garp_lower_prio_repeat / garp_lower_prio_delay: a master that hears a
// lower priority announces its addresses again, now and after the delay
// (one delayed block per advert heard); members of its sync group that
// are master do the same; leaving MASTER cancels what is pending.
func TestGARPLowerPrio(t *testing.T) {
	lower := func(c *InstanceConfig) {
		c.Priority = 255
		c.AdvertInterval = 10 * time.Second
		c.GARP = GARPConfig{MasterRepeat: 1, LowerPrioRepeat: 3, LowerPrioDelay: 2 * time.Second}
	}
	h := newHarness(t, one(lower))
	h.log = nil
	h.at(time.Second, advert("VI_1", lowPeer, 100, func(p *packet.Packet) { p.Interval = 10 * time.Second }))
	h.at(1500*ms, advert("VI_1", lowPeer, 100, func(p *packet.Packet) { p.Interval = 10 * time.Second }))
	h.run(5 * time.Second)
	h.expect(
		"1s VI_1 advert prio 255",
		"1s VI_1 garp 10.0.0.100/32 x3",
		"1s VI_1 heard lower prio 100 from 10.0.0.1",
		"1.5s VI_1 advert prio 255",
		"1.5s VI_1 garp 10.0.0.100/32 x3",
		"1.5s VI_1 heard lower prio 100 from 10.0.0.1",
		"3s VI_1 garp 10.0.0.100/32 x3",
		"3.5s VI_1 garp 10.0.0.100/32 x3",
	)

	// No delay: one block; repeat 0 (the zero value): none.
	for _, g := range []GARPConfig{{LowerPrioRepeat: 2}, {LowerPrioDelay: time.Second}} {
		h := newHarness(t, one(lower, func(c *InstanceConfig) { c.GARP = g; c.LowerPrioNoAdvert = true }))
		h.log = nil
		h.at(time.Second, advert("VI_1", lowPeer, 100, func(p *packet.Packet) { p.Interval = 10 * time.Second }))
		h.run(5 * time.Second)
		want := []string{"1s VI_1 heard lower prio 100 from 10.0.0.1"}
		if g.LowerPrioRepeat > 0 {
			want = append([]string{"1s VI_1 garp 10.0.0.100/32 x2"}, want...)
		}
		h.expect(want...)
	}

	// A pending block is dropped when the instance leaves MASTER.
	h = newHarness(t, one(lower))
	h.log = nil
	h.at(time.Second, advert("VI_1", lowPeer, 100, func(p *packet.Packet) { p.Interval = 10 * time.Second }))
	h.at(2500*ms, LinkChanged{Interface: "eth0", Up: false})
	h.run(5 * time.Second)
	h.expect(
		"1s VI_1 advert prio 255",
		"1s VI_1 garp 10.0.0.100/32 x3",
		"1s VI_1 heard lower prio 100 from 10.0.0.1",
		"2.5s VI_1 advert prio 0",
		"2.5s VI_1 remove 10.0.0.100/32",
		"2.5s VI_1 MASTER->FAULT",
	)

	// Sync group: the other master member announces too.
	cfg := Config{
		Instances: []InstanceConfig{
			inst(lower),
			inst(lower, func(c *InstanceConfig) {
				c.Name, c.VRID = "VI_2", 52
				c.VIPs = []VIP{{Prefix: netip.MustParsePrefix("10.0.1.100/32")}}
				c.GARP.LowerPrioDelay = 0
			}),
		},
		SyncGroups: []SyncGroupConfig{{Name: "G", Instances: []string{"VI_1", "VI_2"}}},
	}
	h = newHarness(t, cfg)
	h.log = nil
	h.at(time.Second, advert("VI_1", lowPeer, 100, func(p *packet.Packet) { p.Interval = 10 * time.Second }))
	h.run(5 * time.Second)
	h.expect(
		"1s VI_1 advert prio 255",
		"1s VI_1 garp 10.0.0.100/32 x3",
		"1s VI_2 garp 10.0.1.100/32 x3",
		"1s VI_1 heard lower prio 100 from 10.0.0.1",
		"3s VI_1 garp 10.0.0.100/32 x3",
	)
}

// notify_master_rx_lower_pri: the machine reports each lower priority a
// master hears; the runtime runs the script on it. A backup does not.
func TestMasterRxLowerPriority(t *testing.T) {
	h := newHarness(t, one())
	h.log = nil
	h.at(time.Second, advert("VI_1", lowPeer, 50)) // backup: discarded
	h.run(4 * time.Second)
	h.log = nil
	h.at(4500*ms, advert("VI_1", lowPeer, 50))
	h.expect("4.5s VI_1 advert prio 100", "4.5s VI_1 heard lower prio 50 from 10.0.0.1")
}

// mcast_dst_ip: an instance takes only adverts sent to its own group
// (another group may run the same VRID on the interface); unicast
// adverts to our address still count.
func TestMcastGroup(t *testing.T) {
	group := netip.MustParseAddr("224.0.0.99")
	h := newHarness(t, one(func(c *InstanceConfig) { c.McastGroup = group }))
	h.at(time.Second, advert("VI_1", hiPeer, 200)) // to 224.0.0.18
	if c := h.status("VI_1").Counters; c.Errors[packet.ReasonVRID] != 1 || c.AdvertsReceived != 0 {
		t.Fatalf("counters %+v", c)
	}
	h.at(1500*ms, advert("VI_1", hiPeer, 200, func(p *packet.Packet) { p.Dst = group }))
	h.at(1600*ms, advert("VI_1", hiPeer, 200, func(p *packet.Packet) { p.Dst = self }))
	if c := h.status("VI_1").Counters; c.AdvertsReceived != 2 {
		t.Fatalf("counters %+v", c)
	}

	cfg := Config{Instances: []InstanceConfig{
		inst(func(c *InstanceConfig) { c.McastGroup = group }),
		inst(func(c *InstanceConfig) { c.Name = "VI_2" }),
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("one VRID in two groups: %v", err)
	}
	for _, tt := range []struct {
		g    string
		want string
	}{{"10.0.0.9", "mcast_dst_ip 10.0.0.9 is not a multicast address"}, {"ff02::99", "mcast_dst_ip ff02::99 is not a multicast address of the VIPs' family"}} {
		bad := one(func(c *InstanceConfig) { c.McastGroup = netip.MustParseAddr(tt.g) })
		err := bad.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want %q", err, tt.want)
		}
	}
	if g := inst(func(c *InstanceConfig) { c.McastGroup = group; c.UnicastPeers = []netip.Addr{hiPeer} }); g.Group().IsValid() {
		t.Errorf("a unicast instance has group %v", g.Group())
	}
}

// vrrp_startup_delay: no instance becomes master before it ends; a
// backup's Master_Down_Timer runs from its end, adverts heard meanwhile
// count as usual (a master heard keeps it backup).
func TestStartupDelay(t *testing.T) {
	delayed := func(mod ...func(*InstanceConfig)) Config {
		c := one(mod...)
		c.StartupDelay = 5 * time.Second
		return c
	}
	h := newHarness(t, delayed())
	h.expect("0s VI_1 remove 10.0.0.100/32", "0s VI_1 INIT->BACKUP")
	h.run(10 * time.Second)
	h.expect(
		"8.609375s VI_1 add 10.0.0.100/32",
		"8.609375s VI_1 advert prio 100",
		"8.609375s VI_1 garp 10.0.0.100/32 x5",
		"8.609375s VI_1 BACKUP->MASTER",
		"9.609375s VI_1 advert prio 100",
	)

	// A priority 0 advert during the delay: its skew counts from the
	// end of the delay too.
	h = newHarness(t, delayed())
	h.log = nil
	h.at(time.Second, advert("VI_1", hiPeer, 200))
	h.at(2*time.Second, advert("VI_1", hiPeer, 0))
	h.run(6 * time.Second)
	h.expect(
		"5.609375s VI_1 add 10.0.0.100/32",
		"5.609375s VI_1 advert prio 100",
		"5.609375s VI_1 garp 10.0.0.100/32 x5",
		"5.609375s VI_1 BACKUP->MASTER",
	)

	// A master heard through the delay keeps the backup a backup.
	h = newHarness(t, delayed())
	h.log = nil
	for d := 500 * ms; d < 12*time.Second; d += time.Second {
		h.at(d, advert("VI_1", hiPeer, 200))
	}
	h.expect()

	// The owner waits for the end of the delay; `state MASTER` takes
	// over one interval (plus the smallest skew) after it.
	h = newHarness(t, delayed(func(c *InstanceConfig) { c.Priority = 255 }))
	h.expect("0s VI_1 remove 10.0.0.100/32", "0s VI_1 INIT->BACKUP")
	h.run(5 * time.Second)
	h.expect("5s VI_1 add 10.0.0.100/32", "5s VI_1 advert prio 255", "5s VI_1 garp 10.0.0.100/32 x5", "5s VI_1 BACKUP->MASTER")
	h = newHarness(t, delayed(func(c *InstanceConfig) { c.StartAsMaster = true }))
	h.log = nil
	h.run(6100 * ms)
	h.expect("6.00390625s VI_1 add 10.0.0.100/32", "6.00390625s VI_1 advert prio 100", "6.00390625s VI_1 garp 10.0.0.100/32 x5", "6.00390625s VI_1 BACKUP->MASTER")

	// A reload adds no delay: a new owner instance is master at once.
	h = newHarness(t, delayed())
	h.run(6 * time.Second)
	next := delayed(func(c *InstanceConfig) { c.Priority = 255 })
	next.Instances[0].Name, next.Instances[0].VRID = "VI_2", 52
	next.Instances = append(next.Instances, inst())
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	h.log = nil
	h.m.Configure(h.now, next)
	h.collect()
	h.expect("6s VI_2 add 10.0.0.100/32", "6s VI_2 advert prio 255", "6s VI_2 garp 10.0.0.100/32 x5", "6s VI_2 INIT->MASTER")
}

// down_timer_adverts: Master_Down_Interval is that many intervals plus
// the skew time.
func TestDownTimerAdverts(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{0, 3609375 * time.Microsecond}, {3, 3609375 * time.Microsecond}, {1, 1609375 * time.Microsecond}, {10, 10609375 * time.Microsecond}} {
		h := newHarness(t, one(func(c *InstanceConfig) { c.DownTimerAdverts = tt.n }))
		h.at(time.Second, advert("VI_1", hiPeer, 200))
		if next, _ := h.m.NextDeadline(); next.Sub(h.t0) != time.Second+tt.want {
			t.Errorf("down_timer_adverts %d: takeover at %v, want %v", tt.n, next.Sub(h.t0), time.Second+tt.want)
		}
	}
	// VRRPv3 at 100 ms with 1: 100 ms + 156 * 100 ms / 256.
	h := newHarness(t, one(func(c *InstanceConfig) { c.Version = 3; c.AdvertInterval = 100 * ms; c.DownTimerAdverts = 1 }))
	h.log = nil
	h.at(0, advert("VI_1", hiPeer, 200, v3(100*ms)))
	h.run(time.Second)
	h.expect(
		"160.9375ms VI_1 add 10.0.0.100/32",
		"160.9375ms VI_1 advert prio 100",
		"160.9375ms VI_1 garp 10.0.0.100/32 x5",
		"160.9375ms VI_1 BACKUP->MASTER",
		"260.9375ms VI_1 advert prio 100",
		"360.9375ms VI_1 advert prio 100",
		"460.9375ms VI_1 advert prio 100",
		"560.9375ms VI_1 advert prio 100",
		"660.9375ms VI_1 advert prio 100",
		"760.9375ms VI_1 advert prio 100",
		"860.9375ms VI_1 advert prio 100",
		"960.9375ms VI_1 advert prio 100",
	)
	bad := one(func(c *InstanceConfig) { c.DownTimerAdverts = 101 })
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "down_timer_adverts 101 (want 1..100)") {
		t.Errorf("Validate() = %v", err)
	}
}

// A master that hears its own priority from its own address (its advert
// come back through a loop, or a duplicate address) neither yields nor
// answers: keepalived ignores it.
func TestMasterIgnoresOwnAdvert(t *testing.T) {
	h := newHarness(t, one(func(c *InstanceConfig) { c.StartAsMaster = true }))
	h.run(1500 * ms)
	h.log = nil
	h.at(1600*ms, advert("VI_1", self, 100))
	h.expect()
	if s := h.status("VI_1"); s.State != StateMaster || s.Counters.AdvertsReceived != 1 {
		t.Fatalf("status %+v", s)
	}
}

// keepalived checks a unicast advert's source against unicast_peer only
// with check_unicast_src; UnicastAnySource is its default.
func TestUnicastAnySource(t *testing.T) {
	for _, anySrc := range []bool{false, true} {
		h := newHarness(t, one(func(c *InstanceConfig) {
			c.UnicastPeers = []netip.Addr{lowPeer}
			c.UnicastAnySource = anySrc
		}))
		h.at(time.Second, advert("VI_1", hiPeer, 200, func(p *packet.Packet) { p.Dst = self }))
		c := h.status("VI_1").Counters
		if anySrc != (c.AdvertsReceived == 1) || anySrc == (c.Errors[packet.ReasonSource] == 1) {
			t.Errorf("any source %v: counters %+v", anySrc, c)
		}
	}
}

// A backup's priority changing moves its running Master_Down_Timer by the
// change of skew time (keepalived's vrrp_set_effective_priority).
func TestPriorityChangeMovesMasterDownTimer(t *testing.T) {
	cfg := one(func(c *InstanceConfig) { c.TrackScripts = []TrackScript{{Name: "chk", Weight: 100}} })
	cfg.Scripts = []ScriptConfig{{Name: "chk", Command: "/bin/true", InitFail: true}}
	h := newHarness(t, cfg)
	h.at(time.Second, advert("VI_1", hiPeer, 250))
	// 1 s + 3 s + 156/256 s.
	if next, _ := h.m.NextMasterDown(); next.Sub(h.t0) != 4609375*time.Microsecond {
		t.Fatalf("master down at %v", next.Sub(h.t0))
	}
	h.log = nil
	h.at(2*time.Second, ScriptResult{Script: "chk", OK: true}) // 100 -> 200: skew 156/256 -> 56/256 s
	h.expect("2s VI_1 priority 200")
	if next, _ := h.m.NextMasterDown(); next.Sub(h.t0) != 4218750*time.Microsecond {
		t.Fatalf("master down at %v after the priority rose", next.Sub(h.t0))
	}
}

func TestScriptsReportsDebouncedResults(t *testing.T) {
	cfg := one(func(c *InstanceConfig) { c.TrackScripts = []TrackScript{{Name: "chk", Weight: -20}} })
	cfg.Scripts = []ScriptConfig{{Name: "chk", Command: "/bin/true", Fall: 2}, {Name: "a_init_fail", Command: "/bin/true", InitFail: true}}
	h := newHarness(t, cfg)
	want := func(chk bool) {
		t.Helper()
		got := h.m.Scripts()
		exp := []ScriptStatus{{Name: "a_init_fail", OK: false}, {Name: "chk", OK: chk}}
		if !slices.Equal(got, exp) {
			t.Fatalf("Scripts() = %v, want %v", got, exp)
		}
	}
	want(true)
	h.at(time.Second, ScriptResult{Script: "chk", OK: false})
	want(true) // fall 2: one failure is not enough
	h.at(2*time.Second, ScriptResult{Script: "chk", OK: false})
	want(false)
}

// An instance with no address to send adverts from (its interface has
// no IPv4 address yet) is in FAULT, as keepalived's is; the address
// found later (the runtime reconfigures) starts it as backup.
func TestNoSourceAddressFault(t *testing.T) {
	m := NewMachine()
	t0 := time.Unix(0, 0)
	h := &harness{t: t, m: m, t0: t0, now: t0}
	cfg := one(func(c *InstanceConfig) { c.SourceAddr = netip.Addr{} })
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Configure(t0, cfg)
	h.collect()
	h.expect("0s VI_1 INIT->FAULT")
	if r := h.status("VI_1").FaultReasons; !slices.Equal(r, []string{"no IPv4 address on eth0"}) {
		t.Fatalf("fault reasons %q", r)
	}
	h.run(time.Second)
	m.Configure(h.now, one())
	h.collect()
	h.expect("1s VI_1 FAULT->BACKUP")
	// And it takes over after its Master_Down_Interval from there.
	h.run(5 * time.Second)
	h.expect(
		"4.609375s VI_1 add 10.0.0.100/32",
		"4.609375s VI_1 advert prio 100",
		"4.609375s VI_1 garp 10.0.0.100/32 x5",
		"4.609375s VI_1 BACKUP->MASTER",
	)
}

// track_file, as keepalived: with weight 0 a non-zero value is a FAULT
// (a zero one with reverse); with a weight, value times weight joins the
// priority, and below -253 it is a FAULT. A value read before the
// instance is configured is the one it starts with.
func TestTrackFile(t *testing.T) {
	m := NewMachine()
	t0 := time.Unix(0, 0)
	h := &harness{t: t, m: m, t0: t0, now: t0}
	cfg := one(func(c *InstanceConfig) {
		c.TrackFiles = []TrackFile{{Name: "maint"}, {Name: "load", Weight: 10}, {Name: "spare", Weight: 5, Reverse: true}}
		c.AdvertInterval = 100 * time.Second // stays BACKUP throughout
	})
	cfg.Files = []FileConfig{{Name: "maint", Path: "/run/maint"}, {Name: "load", Path: "/run/load"}, {Name: "spare", Path: "/run/spare"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Step(t0, FileValue{File: "maint", Value: 1})
	m.Configure(t0, cfg)
	h.collect()
	h.expect("0s VI_1 INIT->FAULT")
	if r := h.status("VI_1").FaultReasons; !slices.Equal(r, []string{"track_file maint holds 1"}) {
		t.Fatalf("fault reasons %q", r)
	}
	h.at(time.Second, FileValue{File: "maint", Value: 0})
	h.expect("1s VI_1 FAULT->BACKUP")

	h.at(2*time.Second, FileValue{File: "load", Value: 3})
	h.expect("2s VI_1 priority 130")
	h.at(3*time.Second, FileValue{File: "spare", Value: 2})
	h.expect("3s VI_1 priority 120")
	// 100 + 10*15 - 10 = 240; 100 + 10*16 - 10 = 250; clamped at 254.
	h.at(4*time.Second, FileValue{File: "load", Value: 20})
	h.expect("4s VI_1 priority 254")
	// -26 * 10 = -260 < -253: FAULT, whatever the sum.
	h.at(5*time.Second, FileValue{File: "load", Value: -26})
	h.expect("5s VI_1 priority 90", "5s VI_1 BACKUP->FAULT")
	if r := h.status("VI_1").FaultReasons; !slices.Equal(r, []string{"track_file load holds -26 (times weight 10: below -253)"}) {
		t.Fatalf("fault reasons %q", r)
	}
	// -25 * 10 = -250 is a priority change: 100 - 250 - 10 clamps to 1.
	h.at(6*time.Second, FileValue{File: "load", Value: -25})
	h.expect("6s VI_1 priority 1", "6s VI_1 FAULT->BACKUP")
	// A value past 32 bits is clamped as keepalived's int is: no overflow.
	h.at(7*time.Second, FileValue{File: "load", Value: 1 << 62})
	h.expect("7s VI_1 priority 254")

	// Reverse with weight 0: zero is the failure.
	cfg.Instances[0].TrackFiles = []TrackFile{{Name: "maint", Reverse: true}}
	m.Configure(t0.Add(8*time.Second), cfg)
	h.now = t0.Add(8 * time.Second)
	h.collect()
	h.expect("8s VI_1 priority 100", "8s VI_1 BACKUP->FAULT")
}
