package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// instanceUnsupported lists vrrp_instance keywords xkeep recognises but does
// not implement.
var instanceUnsupported = map[string]string{
	"use_vmac":                  altVMAC,
	"use_vmac_addr":             altVMAC,
	"vmac_xmit_base":            altVMAC,
	"use_ipvlan":                altVMAC,
	"garp_extra_if":             "gratuitous ARPs go out on the instance's interface only",
	"garp_extra_if_vmac":        altVMAC,
	"vrf":                       "run xkeep in the VRF's context instead",
	"virtual_routes":            altRoutes,
	"virtual_rules":             altRoutes,
	"track_process":             altTrackProc,
	"track_bfd":                 altBFD,
	"auth_hmac":                 altAuthHMAC,
	"track_src_ip":              "the source address is not tracked",
	"old_unicast_checksum":      "xkeep computes the RFC checksum; use v3_checksum_as_v2 for peers that leave out the pseudo-header",
	"timer_expired_backup":      altNoEffect,
	"unicast_fault_no_peer":     altNoEffect,
	"notify_priority_changes":   altFifo,
	"notify_deleted":            altFifo,
	"kernel_rx_buf_size":        altNoEffect,
	"linkbeat_use_polling":      altLinkbeat,
	"lvs_sync_daemon_interface": altLVSSync,
	"lvs_sync_daemon":           altLVSSync,
}

// syncGroupUnsupported lists vrrp_sync_group keywords xkeep recognises but
// does not implement.
var syncGroupUnsupported = map[string]string{
	"track_process":           altTrackProc,
	"track_bfd":               altBFD,
	"notify_priority_changes": altFifo,
	"notify_deleted":          altFifo,
}

// blockName reads the single name of "vrrp_instance NAME {" and the like.
func (b *builder) blockName(n *node) (string, bool) {
	if len(n.args) == 0 {
		b.d.errorf(n.kw.Pos, "%s needs a name: %s NAME { ... }", n.name(), n.name())
		return "", false
	}
	if len(n.args) > 1 {
		b.d.errorf(n.args[1].Pos, "%s takes one name, not %q (block skipped)", n.name(), n.argText())
		return "", false
	}
	return n.args[0].Text, true
}

func (b *builder) vrrpScript(n *node) {
	name, ok := b.blockName(n)
	if !ok || !b.needBlock(n) {
		return
	}
	if prev := b.scripts[name]; prev != nil {
		b.d.errorf(n.args[0].Pos, "vrrp_script %q is already defined at %s", name, prev.Pos)
		return
	}
	s := &VRRPScript{Name: name, Interval: time.Second, Rise: 1, Fall: 1, Pos: n.kw.Pos, Explicit: Explicit{}}
	for _, c := range n.block {
		ok := true
		switch c.name() {
		case "script":
			s.Script, ok = b.command(c, false)
		case "interval":
			s.Interval, ok = b.secondsPositive(c, s.Interval)
		case "timeout":
			s.Timeout, ok = b.secondsPositive(c, s.Timeout)
		case "weight":
			b.noBlock(c)
			s.Weight, s.Reverse, ok = b.weightArgs(c, c.args, -253, 253)
		case "rise":
			s.Rise, ok = b.intOr(c, 1, math.MaxInt32, s.Rise)
		case "fall":
			s.Fall, ok = b.intOr(c, 1, math.MaxInt32, s.Fall)
		case "user":
			b.noBlock(c)
			if len(c.args) == 0 {
				b.d.errorf(c.kw.Pos, "user needs a value (want username [[:]groupname])")
				ok = false
			} else {
				s.User, s.Group = splitUserGroup(c.args)
				b.extra(c, 2)
			}
		case "init_fail":
			b.bare(c)
			s.InitFail = true
		default:
			b.other(c, "in vrrp_script", nil)
			continue
		}
		if ok {
			s.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	if s.Script == nil {
		if !s.Explicit.Has("script") {
			b.d.errorf(n.kw.Pos, "vrrp_script %q has no script (keepalived drops it; add script \"/path/to/check\")", name)
		}
		// An invalid script was reported where it was written.
	}
	if !s.Explicit.Has("timeout") {
		s.Timeout = s.Interval
	}
	b.scripts[name] = s
	b.cfg.Scripts = append(b.cfg.Scripts, s)
}

// secondsPositive reads a timer that must be more than zero.
func (b *builder) secondsPositive(n *node, old time.Duration) (time.Duration, bool) {
	if v, ok := b.secondsValue(n, time.Microsecond, 0); ok {
		return v, true
	}
	return old, false
}

func (b *builder) vrrpInstance(n *node) {
	name, ok := b.blockName(n)
	if !ok || !b.needBlock(n) {
		return
	}
	if prev := b.instances[name]; prev != nil {
		b.d.errorf(n.args[0].Pos, "vrrp_instance %q is already defined at %s", name, prev.Pos)
		return
	}
	in := &VRRPInstance{
		Name:           name,
		AdvertInterval: time.Second,
		UnicastTTL:     255,
		Pos:            n.kw.Pos,
		Explicit:       Explicit{},
	}
	tried := map[string]bool{}
	b.tried[in] = tried
	for _, c := range n.block {
		ok := true
		tried[c.name()] = true
		switch c.name() {
		case "state":
			var t token
			if t, ok = b.value(c, "MASTER or BACKUP"); ok {
				switch State(t.Text) {
				case StateMaster, StateBackup:
					in.State = State(t.Text)
				default:
					b.d.errorf(t.Pos, "unknown state %q (want MASTER or BACKUP)", t.Text)
					ok = false
				}
			}
		case "interface":
			var t token
			if t, ok = b.value(c, "an interface name"); ok {
				in.Interface = t.Text
			}
		case "virtual_router_id":
			in.VRID, ok = b.intOr(c, 1, 255, in.VRID)
		case "priority":
			in.Priority, ok = b.intOr(c, 1, 255, in.Priority)
		case "advert_int":
			in.AdvertInterval, ok = b.secondsPositive(c, in.AdvertInterval)
		case "version":
			in.Version, ok = b.versionValue(c, in.Version)
		case "authentication":
			ok = b.authentication(c, in)
		case "virtual_ipaddress":
			in.VIPs = append(in.VIPs, b.addressBlock(c)...)
		case "virtual_ipaddress_excluded":
			in.ExcludedVIPs = append(in.ExcludedVIPs, b.addressBlock(c)...)
		case "track_script":
			in.TrackScripts = append(in.TrackScripts, b.trackScripts(c)...)
		case "track_interface":
			in.TrackInterfaces = append(in.TrackInterfaces, b.trackInterfaces(c)...)
		case "track_file":
			b.trackFileEntries(c, "vrrp_instance "+in.Name, in)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify", "notify_master_rx_lower_pri":
			ok = b.notify(c, &in.Notify)
		case "nopreempt":
			b.bare(c)
			in.Nopreempt = true
		case "preempt":
			b.bare(c)
			in.Nopreempt = false
		case "preempt_delay":
			var v time.Duration
			if v, ok = b.secondsValue(c, 0, 1000*time.Second); ok {
				in.PreemptDelay = v
			}
		case "garp_master_delay":
			in.GarpMasterDelay, ok = b.wholeSeconds(c, in.GarpMasterDelay)
		case "garp_master_repeat":
			in.GarpMasterRepeat, ok = b.intOr(c, 1, 255, in.GarpMasterRepeat)
		case "garp_lower_prio_delay":
			in.GarpLowerPrioDelay, ok = b.wholeSeconds(c, in.GarpLowerPrioDelay)
		case "garp_lower_prio_repeat":
			in.GarpLowerPrioRepeat, ok = b.intOr(c, 0, 255, in.GarpLowerPrioRepeat)
		case "garp_master_refresh":
			in.GarpMasterRefresh, ok = b.wholeSeconds(c, in.GarpMasterRefresh)
		case "garp_master_refresh_repeat":
			in.GarpMasterRefreshRepeat, ok = b.intOr(c, 1, 255, in.GarpMasterRefreshRepeat)
		case "mcast_src_ip", "unicast_src_ip":
			var a netip.Addr
			if a, ok = b.addrValue(c); ok {
				in.SrcIP = a
				in.Explicit.set("src_ip", c.kw.Pos)
			}
		case "unicast_peer":
			in.UnicastPeers = append(in.UnicastPeers, b.unicastPeers(c)...)
		case "unicast_ttl":
			in.UnicastTTL, ok = b.intOr(c, 0, 255, in.UnicastTTL)
		case "mcast_dst_ip":
			var a netip.Addr
			if a, ok = b.addrValue(c); ok {
				if !a.IsMulticast() || (a.Is6() && !a.IsLinkLocalMulticast()) {
					b.invalid(c, c.args[0], "a multicast address; IPv6 ones link-local (ff02::...)")
					ok = false
				} else {
					in.McastDstIP = a
				}
			}
		case "accept":
			b.bare(c)
			in.Accept = true
		case "no_accept":
			b.bare(c)
			in.Accept = false
			in.Explicit.set("accept", c.kw.Pos)
		case "dont_track_primary":
			b.bare(c)
			in.DontTrackPrimary = true
		case "lower_prio_no_advert":
			in.LowerPrioNoAdvert, ok = b.flagOr(c, in.LowerPrioNoAdvert)
		case "higher_prio_send_advert":
			in.HigherPrioSendAdvert, ok = b.flagOr(c, in.HigherPrioSendAdvert)
		case "skip_check_adv_addr":
			in.SkipCheckAdvAddr, ok = b.flagOr(c, in.SkipCheckAdvAddr)
		case "strict_mode":
			in.StrictMode, ok = b.flagOr(c, in.StrictMode)
		case "check_unicast_src":
			b.bare(c)
			in.CheckUnicastSrc = true
		case "v3_checksum_as_v2":
			in.V3ChecksumAsV2, ok = b.flagOr(c, in.V3ChecksumAsV2)
		case "down_timer_adverts":
			in.DownTimerAdverts, ok = b.intOr(c, 1, 100, in.DownTimerAdverts)
		case "no_virtual_ipaddress":
			b.bare(c)
			in.NoVirtualIPAddress = true
		case "promote_secondaries":
			b.bare(c)
			in.PromoteSecondaries = true
		case "debug":
			in.Debug, ok = b.intOr(c, 0, 4, in.Debug)
		case "smtp_alert":
			in.SMTPAlert, ok = b.flagOr(c, in.SMTPAlert)
			b.d.unsupportedf(c.kw.Pos, "smtp_alert: recognised but not supported by xkeep (%s)", altNoEmail)
		case "native_ipv6":
			b.bare(c)
			in.Family = IPv6
			b.d.warnf(c.kw.Pos, "native_ipv6 is deprecated (the virtual addresses decide the family)")
		default:
			b.other(c, "in vrrp_instance", instanceUnsupported)
			continue
		}
		if ok {
			in.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	b.instances[name] = in
	b.cfg.Instances = append(b.cfg.Instances, in)
}

func (b *builder) authentication(n *node, in *VRRPInstance) bool {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return false
	}
	a := &Authentication{Pos: n.kw.Pos}
	var typeSet, passSet bool
	for _, c := range n.block {
		switch c.name() {
		case "auth_type":
			t, ok := b.value(c, "PASS or AH")
			if !ok {
				continue
			}
			switch AuthType(t.Text) {
			case AuthPass:
				a.Type, typeSet = AuthPass, true
			case AuthAH:
				a.Type, typeSet = AuthAH, true
				b.d.unsupportedf(t.Pos, "auth_type AH: recognised but not supported by xkeep (use PASS, or no authentication)")
			default:
				b.d.errorf(t.Pos, "unknown auth_type %q (want PASS or AH)", t.Text)
			}
		case "auth_pass":
			t, ok := b.value(c, "a password of up to 8 characters")
			if !ok {
				continue
			}
			a.Pass, passSet = t.Text, true
			if len(a.Pass) > 8 {
				a.Pass = a.Pass[:8]
				b.d.warnf(t.Pos, "auth_pass is longer than 8 characters; only the first 8 (%q) are used, as keepalived does", a.Pass)
			}
		default:
			b.other(c, "in authentication", nil)
		}
	}
	if !typeSet {
		b.d.errorf(n.kw.Pos, "authentication needs auth_type (want PASS or AH)")
		return false
	}
	if !passSet || a.Pass == "" {
		b.d.warnf(n.kw.Pos, "authentication without auth_pass is ignored (as keepalived ignores it)")
		return false
	}
	in.Auth = a
	return true
}

// addressBlock reads the lines of virtual_ipaddress(_excluded).
func (b *builder) addressBlock(n *node) []VirtualAddress {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return nil
	}
	var out []VirtualAddress
	for _, c := range n.block {
		if v, ok := b.virtualAddress(n.name(), c); ok {
			out = append(out, v)
		}
	}
	return out
}

var addressOptions = "brd, dev, scope, label, peer, home, -nodad, mngtmpaddr, noprefixroute, autojoin, no_track, preferred_lft"

// virtualAddress reads "ADDR[/LEN] [brd ADDR] [dev IF] [scope S] [label L]
// [peer ADDR] [home] [-nodad] [mngtmpaddr] [noprefixroute] [autojoin]
// [no_track] [preferred_lft N|forever]".
func (b *builder) virtualAddress(block string, n *node) (VirtualAddress, bool) {
	if n.hasBlock {
		b.d.warnf(n.open, "%s: an address takes no block (block ignored)", block)
	}
	words := n.words()
	p, ok := parsePrefix(words[0].Text)
	if !ok {
		b.d.errorf(words[0].Pos, "invalid %s address %q (want ADDR or ADDR/LEN, e.g. 192.168.1.10/24)", block, words[0].Text)
		return VirtualAddress{}, false
	}
	v := VirtualAddress{Prefix: p, Pos: words[0].Pos}
	ok = true
	for i := 1; i < len(words); i++ {
		w := words[i]
		arg := func(want string) (token, bool) {
			if i+1 >= len(words) {
				b.d.errorf(w.Pos, "%s option %s needs a value (want %s)", block, w.Text, want)
				return token{}, false
			}
			i++
			return words[i], true
		}
		switch w.Text {
		case "brd", "broadcast":
			t, good := arg("an address, - or +")
			if !good {
				return v, false
			}
			switch t.Text {
			case "-", "+":
				v.Flags = append(v.Flags, "brd"+t.Text)
			default:
				a, good := parseAddr(t.Text)
				if !good || a.Is4() != p.Addr().Is4() {
					b.d.errorf(t.Pos, "invalid broadcast address %q (want an address of the same family, - or +)", t.Text)
					ok = false
				}
				v.Broadcast = a
			}
		case "dev":
			t, good := arg("an interface name")
			if !good {
				return v, false
			}
			v.Dev = t.Text
		case "scope":
			t, good := arg("site, link, host, nowhere or global")
			if !good {
				return v, false
			}
			switch t.Text {
			case "site", "link", "host", "nowhere", "global":
				v.Scope = t.Text
			default:
				if n, err := strconv.ParseUint(t.Text, 0, 8); err == nil {
					v.Scope = strconv.FormatUint(n, 10)
				} else {
					b.d.errorf(t.Pos, "unknown scope %q (want site, link, host, nowhere or global)", t.Text)
					ok = false
				}
			}
		case "label":
			t, good := arg("a label such as eth0:1")
			if !good {
				return v, false
			}
			v.Label = t.Text
		case "peer":
			t, good := arg("an address")
			if !good {
				return v, false
			}
			pp, good := parsePrefix(t.Text)
			if !good || pp.Addr().Is4() != p.Addr().Is4() {
				b.d.errorf(t.Pos, "invalid peer address %q (want an address of the same family)", t.Text)
				ok = false
			}
			v.Peer = pp
		case "home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin":
			v.Flags = append(v.Flags, w.Text)
		case "no_track":
			v.NoTrack = true
		case "preferred_lft":
			t, good := arg("seconds or forever")
			if !good {
				return v, false
			}
			if _, err := strconv.ParseUint(t.Text, 10, 32); err != nil && t.Text != "forever" {
				b.d.errorf(t.Pos, "invalid preferred_lft %q (want seconds or forever)", t.Text)
				ok = false
			}
			v.PreferredLft = t.Text
		case "use_vmac":
			b.d.unsupportedf(w.Pos, "use_vmac: recognised but not supported by xkeep (%s)", altVMAC)
			if i+1 < len(words) && !isAddressOption(words[i+1].Text) {
				i++
			}
		case "track_group":
			arg("a track group name")
			b.d.warnf(w.Pos, "track_group applies to static addresses only (ignored)")
		default:
			b.d.errorf(w.Pos, "unknown %s option %q (want %s)", block, w.Text, addressOptions)
			return v, false
		}
	}
	return v, ok
}

func isAddressOption(s string) bool {
	return slices.Contains(strings.Split(addressOptions+", use_vmac, track_group", ", "), s)
}

// trackScripts reads the lines of track_script: "NAME [weight N
// [reverse|noreverse]]".
func (b *builder) trackScripts(n *node) []TrackScript {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return nil
	}
	var out []TrackScript
	for _, c := range n.block {
		b.noBlock(c)
		ts := TrackScript{Name: c.kw.Text, Pos: c.kw.Pos}
		if len(c.args) > 0 {
			if c.args[0].Text != "weight" {
				b.d.errorf(c.args[0].Pos, "unexpected %q after track_script %s (want NAME [weight N [reverse]])", c.args[0].Text, ts.Name)
				continue
			}
			w, rev, ok := b.weightArgs(c, c.args[1:], -253, 253)
			if !ok {
				continue
			}
			ts.Weight, ts.Reverse, ts.WeightSet = w, rev, true
		}
		out = append(out, ts)
	}
	return out
}

// trackInterfaces reads the lines of track_interface: "IFNAME [weight N
// [reverse]]".
func (b *builder) trackInterfaces(n *node) []TrackInterface {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return nil
	}
	var out []TrackInterface
	for _, c := range n.block {
		b.noBlock(c)
		ti := TrackInterface{Name: c.kw.Text, Pos: c.kw.Pos}
		if len(c.args) > 0 {
			if c.args[0].Text != "weight" {
				b.d.errorf(c.args[0].Pos, "unexpected %q after track_interface %s (want IFNAME [weight N [reverse]])", c.args[0].Text, ti.Name)
				continue
			}
			w, rev, ok := b.weightArgs(c, c.args[1:], -253, 253)
			if !ok {
				continue
			}
			ti.Weight, ti.Reverse = w, rev
		}
		out = append(out, ti)
	}
	return out
}

// unicastPeers reads the lines of unicast_peer: "ADDR [min_ttl N] [max_ttl N]".
func (b *builder) unicastPeers(n *node) []UnicastPeer {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return nil
	}
	var out []UnicastPeer
	for _, c := range n.block {
		b.noBlock(c)
		a, ok := parseAddr(c.kw.Text)
		if !ok {
			b.d.errorf(c.kw.Pos, "invalid unicast_peer address %q (want an IPv4 or IPv6 address)", c.kw.Text)
			continue
		}
		p := UnicastPeer{Addr: a, MinTTL: 0, MaxTTL: 255, Pos: c.kw.Pos}
		for i := 0; i < len(c.args); i++ {
			opt := c.args[i]
			if (opt.Text != "min_ttl" && opt.Text != "max_ttl") || i+1 >= len(c.args) {
				b.d.errorf(opt.Pos, "unexpected %q in unicast_peer (want ADDR [min_ttl 0-255] [max_ttl 0-255])", opt.Text)
				ok = false
				break
			}
			i++
			v, err := strconv.Atoi(c.args[i].Text)
			if err != nil || v < 0 || v > 255 {
				b.d.errorf(c.args[i].Pos, "invalid %s %q (want 0-255)", opt.Text, c.args[i].Text)
				ok = false
				break
			}
			if opt.Text == "min_ttl" {
				p.MinTTL = v
			} else {
				p.MaxTTL = v
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// notify reads notify_master/backup/fault/stop, notify and
// notify_master_rx_lower_pri into nt.
func (b *builder) notify(n *node, nt *Notify) bool {
	var dst **Command
	switch n.name() {
	case "notify_master":
		dst = &nt.Master
	case "notify_backup":
		dst = &nt.Backup
	case "notify_fault":
		dst = &nt.Fault
	case "notify_stop":
		dst = &nt.Stop
	case "notify":
		dst = &nt.Any
	case "notify_master_rx_lower_pri":
		dst = &nt.MasterRxLowerPri
	}
	c, ok := b.command(n, true)
	if !ok {
		return false
	}
	if *dst != nil {
		b.d.warnf(n.kw.Pos, "%s already set at %s (this one is ignored, as keepalived ignores it)", n.name(), (*dst).Pos)
		return false
	}
	*dst = c
	return true
}

func (b *builder) syncGroup(n *node) {
	name, ok := b.blockName(n)
	if !ok || !b.needBlock(n) {
		return
	}
	for _, g := range b.cfg.SyncGroups {
		if g.Name == name {
			b.d.errorf(n.args[0].Pos, "vrrp_sync_group %q is already defined at %s", name, g.Pos)
			return
		}
	}
	g := &SyncGroup{Name: name, Pos: n.kw.Pos, Explicit: Explicit{}}
	for _, c := range n.block {
		ok := true
		switch c.name() {
		case "group":
			b.extra(c, 0)
			if !b.needBlock(c) {
				continue
			}
			if g.Explicit.Has("group") {
				b.d.errorf(c.kw.Pos, "vrrp_sync_group %q already has a group block at %s", name, g.Explicit["group"])
				continue
			}
			for _, m := range c.block {
				b.noBlock(m)
				for _, w := range m.words() {
					g.Instances = append(g.Instances, w.Text)
					b.memberPos[g] = append(b.memberPos[g], w.Pos)
				}
			}
		case "track_script":
			g.TrackScripts = append(g.TrackScripts, b.trackScripts(c)...)
		case "track_file":
			b.trackFileEntries(c, "vrrp_sync_group "+g.Name, g)
		case "track_interface":
			g.TrackInterfaces = append(g.TrackInterfaces, b.trackInterfaces(c)...)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			ok = b.notify(c, &g.Notify)
		case "smtp_alert":
			g.SMTPAlert, ok = b.flagOr(c, g.SMTPAlert)
			b.d.unsupportedf(c.kw.Pos, "smtp_alert: recognised but not supported by xkeep (%s)", altNoEmail)
		case "global_tracking":
			b.bare(c)
			g.TrackingWeight = true
			b.d.warnf(c.kw.Pos, "global_tracking is deprecated (use sync_group_tracking_weight, or track_* on the sync group)")
		case "sync_group_tracking_weight":
			b.bare(c)
			g.TrackingWeight = true
		default:
			if _, known := syncGroupUnsupported[c.name()]; !known && len(c.args) == 0 && !c.hasBlock {
				b.d.warnf(c.kw.Pos, "unknown keyword %q in vrrp_sync_group (ignored; instance names go inside group { ... })", c.name())
				continue
			}
			b.other(c, "in vrrp_sync_group", syncGroupUnsupported)
			continue
		}
		if ok {
			g.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	b.cfg.SyncGroups = append(b.cfg.SyncGroups, g)
}

// resolveInstances fills the defaults that depend on global settings or on
// other fields, and applies keepalived's consistency rules
// (vrrp_complete_instance in vrrp.c): the adjustments keepalived makes are
// warnings, what makes it drop an instance is an error.
func (b *builder) resolveInstances() {
	g := &b.cfg.Global
	for _, in := range b.cfg.Instances {
		ex := in.Explicit
		where := func(kw string) Pos {
			if p, ok := ex[kw]; ok {
				return p
			}
			return in.Pos
		}
		if !ex.Has("strict_mode") {
			in.StrictMode = g.VRRPStrict
		}
		strict := in.StrictMode

		// Family: from the VIPs, else the source or peers, else IPv4.
		switch {
		case len(in.VIPs) > 0:
			in.Family = familyOf(in.VIPs[0].Addr())
		case in.SrcIP.IsValid() && in.Family == "":
			in.Family = familyOf(in.SrcIP)
		case len(in.UnicastPeers) > 0 && in.Family == "":
			in.Family = familyOf(in.UnicastPeers[0].Addr)
		case in.Family == "":
			in.Family = IPv4
		}
		for _, v := range in.VIPs {
			if familyOf(v.Addr()) != in.Family {
				b.d.errorf(v.Pos, "vrrp_instance %s: virtual_ipaddress mixes IPv4 and IPv6 (%s is not %s; put it in virtual_ipaddress_excluded or another instance)", in.Name, v.Addr(), in.Family)
			}
		}
		if in.SrcIP.IsValid() && familyOf(in.SrcIP) != in.Family {
			b.d.errorf(where("src_ip"), "vrrp_instance %s: source address %s is not %s like its virtual addresses", in.Name, in.SrcIP, in.Family)
		}
		for _, p := range in.UnicastPeers {
			if familyOf(p.Addr) != in.Family {
				b.d.errorf(p.Pos, "vrrp_instance %s: unicast_peer %s is not %s like its virtual addresses", in.Name, p.Addr, in.Family)
			}
		}

		// Version.
		if !ex.Has("version") {
			in.Version = g.VRRPVersion
			if in.Family == IPv6 {
				in.Version = 3
			}
		} else if in.Family == IPv6 && in.Version == 2 {
			b.d.warnf(where("version"), "vrrp_instance %s: VRRP version 2 carries IPv4 only; using version 3", in.Name)
			in.Version = 3
		}

		// Mandatory settings (keepalived's chk_min_cfg).
		if in.VRID == 0 && !b.tried[in]["virtual_router_id"] {
			b.d.errorf(in.Pos, "vrrp_instance %s has no virtual_router_id (want 1-255)", in.Name)
		}
		if in.Interface == "" && len(in.UnicastPeers) == 0 {
			b.d.errorf(in.Pos, "vrrp_instance %s has no interface (add interface IFNAME, or unicast_peer)", in.Name)
		}
		if len(in.VIPs) == 0 && !in.NoVirtualIPAddress && !b.tried[in]["virtual_ipaddress"] {
			if in.Version == 3 || in.Family == IPv6 || strict {
				b.d.errorf(in.Pos, "vrrp_instance %s has no virtual_ipaddress (VRRPv3 and strict mode need one; add one or no_virtual_ipaddress)", in.Name)
			} else {
				b.d.warnf(in.Pos, "vrrp_instance %s has no virtual_ipaddress (add one, or no_virtual_ipaddress if that is intended)", in.Name)
			}
		}

		// Priority and initial state derive from each other.
		if !ex.Has("priority") {
			in.Priority = 100
			if in.State == StateMaster {
				in.Priority = 255
			}
		}
		if !ex.Has("state") {
			in.State = StateBackup
			if in.Owner() {
				in.State = StateMaster
			}
		} else if strict && (in.State == StateMaster) != in.Owner() {
			want := StateBackup
			if in.Owner() {
				want = StateMaster
			}
			b.d.warnf(where("state"), "vrrp_instance %s: in strict mode state MASTER means address owner (priority 255); using %s", in.Name, want)
			in.State = want
		}

		// Authentication.
		if in.Auth != nil {
			switch {
			case strict:
				b.d.warnf(in.Auth.Pos, "vrrp_instance %s: strict mode does not allow authentication (ignored)", in.Name)
				in.Auth = nil
			case in.Version == 3:
				b.d.warnf(in.Auth.Pos, "vrrp_instance %s: VRRP version 3 has no authentication (ignored)", in.Name)
				in.Auth = nil
			case in.Family == IPv6 && in.Auth.Type == AuthAH:
				b.d.warnf(in.Auth.Pos, "vrrp_instance %s: AH authentication does not work with IPv6 (ignored)", in.Name)
				in.Auth = nil
			case in.Auth.Type == AuthAH && in.State == StateMaster && !in.Owner():
				b.d.warnf(where("state"), "vrrp_instance %s: initial state MASTER does not work with AH authentication; using BACKUP", in.Name)
				in.State = StateBackup
			}
		}

		if strict && len(in.UnicastPeers) > 0 {
			b.d.errorf(in.UnicastPeers[0].Pos, "vrrp_instance %s: unicast_peer is not allowed in strict mode (remove vrrp_strict/strict_mode, or the peers)", in.Name)
		}
		if in.Family == IPv6 && len(in.UnicastPeers) == 0 && len(in.VIPs) > 0 && !in.VIPs[0].Addr().IsLinkLocalUnicast() {
			b.d.warnf(in.VIPs[0].Pos, "vrrp_instance %s: the first IPv6 virtual address should be link-local (fe80::/10), as RFC 5798 requires", in.Name)
		}
		if fit := maxVIPs(in); len(in.VIPs) > fit {
			b.d.warnf(in.VIPs[fit].Pos, "vrrp_instance %s: more than %d virtual addresses do not fit in an advert; the rest are treated as virtual_ipaddress_excluded", in.Name, fit)
			in.ExcludedVIPs = append(slices.Clone(in.VIPs[fit:]), in.ExcludedVIPs...)
			in.VIPs = in.VIPs[:fit]
		}

		// Preemption.
		if in.Owner() && in.Nopreempt {
			b.d.warnf(where("nopreempt"), "vrrp_instance %s: nopreempt does not apply to priority 255 (ignored)", in.Name)
			in.Nopreempt = false
		}
		if in.State == StateMaster {
			if in.Nopreempt {
				b.d.warnf(where("nopreempt"), "vrrp_instance %s: nopreempt does not work with initial state MASTER (ignored; use state BACKUP)", in.Name)
				in.Nopreempt = false
			}
			if in.PreemptDelay > 0 {
				b.d.warnf(where("preempt_delay"), "vrrp_instance %s: preempt_delay does not work with initial state MASTER (ignored; use state BACKUP)", in.Name)
				in.PreemptDelay = 0
			}
		}
		if in.PreemptDelay > 0 && strict {
			b.d.warnf(where("preempt_delay"), "vrrp_instance %s: preempt_delay is not allowed in strict mode (ignored)", in.Name)
			in.PreemptDelay = 0
		}
		if in.PreemptDelay > 0 && in.Nopreempt {
			b.d.warnf(where("preempt_delay"), "vrrp_instance %s: preempt_delay has no effect with nopreempt (ignored)", in.Name)
			in.PreemptDelay = 0
		}

		// Accept mode.
		if !ex.Has("accept") {
			in.Accept = !strict
		}
		if in.Accept && !in.Owner() && strict && in.Version == 2 {
			b.d.warnf(where("accept"), "vrrp_instance %s: accept mode with VRRP version 2 does not comply with RFC 3768 in strict mode (turned off)", in.Name)
			in.Accept = false
		}

		// GARP and advert settings inherited from global_defs.
		if !ex.Has("garp_master_delay") {
			in.GarpMasterDelay = g.VRRPGarpMasterDelay
		}
		if !ex.Has("garp_master_repeat") {
			in.GarpMasterRepeat = g.VRRPGarpMasterRepeat
		}
		if !ex.Has("garp_master_refresh") {
			in.GarpMasterRefresh = g.VRRPGarpMasterRefresh
		}
		if !ex.Has("garp_master_refresh_repeat") {
			in.GarpMasterRefreshRepeat = g.VRRPGarpMasterRefreshRepeat
		}
		switch {
		case !ex.Has("garp_lower_prio_repeat"):
			in.GarpLowerPrioRepeat = g.VRRPGarpLowerPrioRepeat
			if strict {
				in.GarpLowerPrioRepeat = 0
			}
		case strict && in.GarpLowerPrioRepeat != 0:
			b.d.warnf(where("garp_lower_prio_repeat"), "vrrp_instance %s: strict mode sends no repeated GARPs (garp_lower_prio_repeat set to 0)", in.Name)
			in.GarpLowerPrioRepeat = 0
		}
		switch {
		case !ex.Has("garp_lower_prio_delay"):
			in.GarpLowerPrioDelay = g.VRRPGarpLowerPrioDelay
			if strict {
				in.GarpLowerPrioDelay = 0
			}
		case strict && in.GarpLowerPrioDelay != 0:
			b.d.warnf(where("garp_lower_prio_delay"), "vrrp_instance %s: strict mode sends no repeated GARPs (garp_lower_prio_delay set to 0)", in.Name)
			in.GarpLowerPrioDelay = 0
		}
		switch {
		case !ex.Has("lower_prio_no_advert"):
			in.LowerPrioNoAdvert = strict || g.VRRPLowerPrioNoAdvert
		case strict && !in.LowerPrioNoAdvert:
			b.d.warnf(where("lower_prio_no_advert"), "vrrp_instance %s: strict mode requires lower_prio_no_advert (turned on)", in.Name)
			in.LowerPrioNoAdvert = true
		}
		switch {
		case !ex.Has("higher_prio_send_advert"):
			in.HigherPrioSendAdvert = !strict && g.VRRPHigherPrioSendAdvert
		case strict && in.HigherPrioSendAdvert:
			b.d.warnf(where("higher_prio_send_advert"), "vrrp_instance %s: strict mode does not allow higher_prio_send_advert (turned off)", in.Name)
			in.HigherPrioSendAdvert = false
		}
		if !ex.Has("skip_check_adv_addr") {
			in.SkipCheckAdvAddr = g.VRRPSkipCheckAdvAddr
		}
		if !ex.Has("check_unicast_src") {
			in.CheckUnicastSrc = g.VRRPCheckUnicastSrc
		}
		for _, p := range in.UnicastPeers {
			if p.MinTTL != 0 || p.MaxTTL != 255 {
				in.CheckUnicastSrc = true // min_ttl/max_ttl turn it on
			}
		}
		if !ex.Has("v3_checksum_as_v2") {
			in.V3ChecksumAsV2 = g.V3ChecksumAsV2
		}
		if !ex.Has("down_timer_adverts") {
			in.DownTimerAdverts = g.VRRPDownTimerAdverts
		}

		b.roundAdvert(in, where("advert_int"))
		b.resolveTrackScripts(in.TrackScripts, fmt.Sprintf("vrrp_instance %s", in.Name))
		in.TrackFiles = append(in.TrackFiles, b.resolveTrackFiles("vrrp_instance "+in.Name, in)...)
		if in.Owner() {
			for _, ts := range in.TrackScripts {
				if ts.Weight != 0 {
					b.d.warnf(ts.Pos, "vrrp_instance %s: priority 255 cannot be changed by track_script %s weight %d (use weight 0, or a lower priority)", in.Name, ts.Name, ts.Weight)
				}
			}
			for _, tf := range in.TrackFiles {
				if tf.Weight != 0 {
					b.d.warnf(tf.Pos, "vrrp_instance %s: priority 255 cannot be changed by track_file %s weight %d (use weight 0, or a lower priority)", in.Name, tf.Name, tf.Weight)
				}
			}
		}
	}
	b.checkVRIDs()
}

// maxVIPs is how many addresses fit in an advert: 255 at most, fewer when
// an Ethernet MTU of 1500 is the limit.
func maxVIPs(in *VRRPInstance) int {
	hdr := 14 + 8 // Ethernet + VRRP header
	size := 4
	if in.Family == IPv6 {
		hdr += 40
		size = 16
	} else {
		hdr += 20
		if in.Version == 2 {
			hdr += 8
		}
	}
	return min(255, (1500-hdr)/size)
}

// roundAdvert rounds advert_int as keepalived does: whole seconds below
// 256 s for VRRPv2, centiseconds below 40.96 s for VRRPv3.
func (b *builder) roundAdvert(in *VRRPInstance, pos Pos) {
	unit, limit := time.Second, 255*time.Second
	if in.Version == 3 {
		unit, limit = 10*time.Millisecond, 4095*10*time.Millisecond
	}
	switch a := in.AdvertInterval; {
	case a > limit:
		b.d.warnf(pos, "vrrp_instance %s: advert_int %s is more than VRRPv%d allows; using %s", in.Name, fmtSeconds(a), in.Version, fmtSeconds(limit))
		in.AdvertInterval = limit
	case a%unit != 0:
		r := max(unit, (a+unit/2)/unit*unit)
		what := "whole seconds"
		if in.Version == 3 {
			what = "hundredths of a second"
		}
		b.d.warnf(pos, "vrrp_instance %s: VRRPv%d advert_int is in %s; %s rounded to %s", in.Name, in.Version, what, fmtSeconds(a), fmtSeconds(r))
		in.AdvertInterval = r
	}
}

// resolveTrackScripts checks that tracked scripts exist and gives entries
// without a weight the script's.
func (b *builder) resolveTrackScripts(list []TrackScript, owner string) {
	for i := range list {
		ts := &list[i]
		s := b.scripts[ts.Name]
		if s == nil {
			b.d.errorf(ts.Pos, "%s: track_script %q is not a defined vrrp_script%s", owner, ts.Name, b.scriptNames())
			continue
		}
		if !ts.WeightSet {
			ts.Weight, ts.Reverse = s.Weight, s.Reverse
		}
	}
}

func (b *builder) scriptNames() string {
	names := make([]string, len(b.cfg.Scripts))
	for i, s := range b.cfg.Scripts {
		names[i] = s.Name
	}
	return definedNames(names)
}

// checkVRIDs reports two instances with the same VRID on one interface and
// address family. Unicast instances may share a VRID when their peers do
// not overlap, and multicast ones when their groups differ.
func (b *builder) checkVRIDs() {
	type key struct {
		iface  string
		family Family
		vrid   int
	}
	seen := map[key][]*VRRPInstance{}
	for _, a := range b.cfg.Instances {
		if a.VRID == 0 || a.Interface == "" {
			continue
		}
		k := key{a.Interface, a.Family, a.VRID}
		for _, o := range seen[k] {
			if a.Unicast() != o.Unicast() {
				continue
			}
			if a.Unicast() && !peersOverlap(a.UnicastPeers, o.UnicastPeers) {
				continue
			}
			if !a.Unicast() && a.McastDstIP != o.McastDstIP {
				continue
			}
			pos := a.Pos
			if p, ok := a.Explicit["virtual_router_id"]; ok {
				pos = p
			}
			b.d.errorf(pos, "virtual_router_id %d on %s (%s) is already used by vrrp_instance %s at %s (want a VRID unique per interface and family)", a.VRID, a.Interface, a.Family, o.Name, o.Pos)
			break
		}
		seen[k] = append(seen[k], a)
	}
}

func peersOverlap(a, b []UnicastPeer) bool {
	for _, p := range a {
		for _, q := range b {
			if p.Addr == q.Addr {
				return true
			}
		}
	}
	return false
}

func (b *builder) resolveSyncGroups() {
	member := map[string]*SyncGroup{}
	kept := b.cfg.SyncGroups[:0]
	for _, g := range b.cfg.SyncGroups {
		var names []string
		for i, name := range g.Instances {
			pos := b.memberPos[g][i]
			in := b.instances[name]
			switch {
			case in == nil:
				b.d.errorf(pos, "vrrp_sync_group %s: vrrp_instance %q is not defined", g.Name, name)
				continue
			case member[name] == g:
				b.d.warnf(pos, "vrrp_sync_group %s lists %s twice", g.Name, name)
				continue
			case member[name] != nil:
				b.d.errorf(pos, "vrrp_instance %s is already in vrrp_sync_group %s (an instance can be in one group only)", name, member[name].Name)
				continue
			}
			member[name] = g
			in.SyncGroup = g.Name
			names = append(names, name)
		}
		g.Instances = names
		b.resolveTrackScripts(g.TrackScripts, fmt.Sprintf("vrrp_sync_group %s", g.Name))
		g.TrackFiles = b.resolveTrackFiles("vrrp_sync_group "+g.Name, g)
		switch len(names) {
		case 0:
			b.d.warnf(g.Pos, "vrrp_sync_group %s has no instances (ignored; list them in group { ... })", g.Name)
			continue
		case 1:
			b.d.warnf(g.Pos, "vrrp_sync_group %s has only one instance (%s); a sync group is for two or more", g.Name, names[0])
		}
		if !g.TrackingWeight {
			// Members of a sync group must not move their priority on
			// their own (keepalived.conf(5), VRRP synchronization group).
			for _, name := range names {
				in := b.instances[name]
				for i := range in.TrackScripts {
					if ts := &in.TrackScripts[i]; ts.Weight != 0 {
						b.d.warnf(ts.Pos, "track_script %s weight %d is ignored: %s is in vrrp_sync_group %s (add sync_group_tracking_weight to keep it)", ts.Name, ts.Weight, name, g.Name)
						ts.Weight = 0
					}
				}
				for i := range in.TrackInterfaces {
					if ti := &in.TrackInterfaces[i]; ti.Weight != 0 {
						b.d.warnf(ti.Pos, "track_interface %s weight %d is ignored: %s is in vrrp_sync_group %s (add sync_group_tracking_weight to keep it)", ti.Name, ti.Weight, name, g.Name)
						ti.Weight = 0
					}
				}
				for i := range in.TrackFiles {
					if tf := &in.TrackFiles[i]; tf.Weight != 0 {
						b.d.warnf(tf.Pos, "track_file %s weight %d is ignored: %s is in vrrp_sync_group %s (add sync_group_tracking_weight to keep it)", tf.Name, tf.Weight, name, g.Name)
						tf.Weight = 0
					}
				}
			}
		}
		kept = append(kept, g)
	}
	b.cfg.SyncGroups = kept
}
