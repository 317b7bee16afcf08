package config

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lbAlgos are the schedulers keepalived accepts (lvs_sched in
// keepalived.conf(5)).
var lbAlgos = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf", "twos"}

// xdpAlgos are the schedulers the XDP dataplane implements.
var xdpAlgos = []string{"rr", "wrr", "lc", "wlc", "sh", "mh"}

var schedFlags = []string{"hashed", "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback", "ops"}

// virtualServerUnsupported lists virtual_server keywords xkeep recognises
// but does not implement.
var virtualServerUnsupported = map[string]string{
	"snmp_name":  altMetrics,
	"smtp_alert": altNoEmail,
}

var realServerUnsupported = map[string]string{
	"snmp_name":  altMetrics,
	"smtp_alert": altNoEmail,
}

// timing holds the checker settings a virtual or real server passes down
// to its checkers; nil fields were not written.
type timing struct {
	connectTimeout   *time.Duration
	retry            *int
	delayBeforeRetry *time.Duration
	warmup           *time.Duration
	weight           *int
}

// readTiming handles a keyword shared by virtual servers, real servers and
// checkers. It returns false when kw is not one of them.
func (b *builder) readTiming(c *node, t *timing) (handled, ok bool) {
	switch c.name() {
	case "connect_timeout":
		v, ok := b.secondsValue(c, time.Microsecond, 0)
		if ok {
			t.connectTimeout = &v
		}
		return true, ok
	case "retry", "nb_get_retry":
		// nb_get_retry is retry's name before keepalived 2.0.
		v, ok := b.intValue(c, 0, math.MaxInt32)
		if ok {
			t.retry = &v
		}
		return true, ok
	case "delay_before_retry":
		v, ok := b.secondsValue(c, 0, 0)
		if ok {
			t.delayBeforeRetry = &v
		}
		return true, ok
	case "warmup":
		v, ok := b.secondsValue(c, 0, 0)
		if ok {
			t.warmup = &v
		}
		return true, ok
	}
	return false, false
}

func (b *builder) virtualServerGroup(n *node) {
	name, ok := b.blockName(n)
	if !ok || !b.needBlock(n) {
		return
	}
	if prev := b.vsGroups[name]; prev != nil {
		b.d.errorf(n.args[0].Pos, "virtual_server_group %q is already defined at %s", name, prev.Pos)
		return
	}
	g := &VirtualServerGroup{Name: name, Pos: n.kw.Pos}
	var family Family
	for _, c := range n.block {
		b.noBlock(c)
		words := c.words()
		if c.kw.Text == "fwmark" {
			e := VSGEntry{Pos: c.kw.Pos}
			if len(c.args) == 0 {
				b.d.errorf(c.kw.Pos, "virtual_server_group %s: fwmark needs a value (want 1-4294967295)", name)
				continue
			}
			m, err := strconv.ParseUint(c.args[0].Text, 10, 32)
			if err != nil || m == 0 {
				b.d.errorf(c.args[0].Pos, "invalid fwmark %q (want 1-4294967295)", c.args[0].Text)
				continue
			}
			e.FWMark = uint32(m)
			if len(c.args) > 1 {
				switch f := Family(c.args[1].Text); f {
				case IPv4, IPv6:
					e.Family = f
				default:
					b.d.errorf(c.args[1].Pos, "unknown address family %q (want inet or inet6)", c.args[1].Text)
					continue
				}
			}
			b.extra(c, 2)
			g.Entries = append(g.Entries, e)
			continue
		}
		first, last, ok := parseRange(words[0].Text)
		if !ok {
			b.d.errorf(words[0].Pos, "invalid virtual_server_group address %q (want ADDR, ADDR-LAST, ADDR-ADDR or ADDR/LEN)", words[0].Text)
			continue
		}
		e := VSGEntry{First: first, Last: last, Pos: words[0].Pos}
		if len(c.args) > 0 {
			p, ok := parsePort(c.args[0].Text)
			if !ok || p == 0 {
				b.d.errorf(c.args[0].Pos, "invalid virtual_server_group port %q (want 1-65535)", c.args[0].Text)
				continue
			}
			e.Port = p
			b.extra(c, 1)
		}
		if f := familyOf(first); family == "" {
			family = f
		} else if f != family {
			b.d.errorf(words[0].Pos, "virtual_server_group %s mixes IPv4 and IPv6 addresses (want one family per group)", name)
			continue
		}
		g.Entries = append(g.Entries, e)
	}
	if len(g.Entries) == 0 {
		b.d.warnf(n.kw.Pos, "virtual_server_group %s has no entries (ignored)", name)
		return
	}
	b.vsGroups[name] = g
	b.cfg.VirtualServerGroups = append(b.cfg.VirtualServerGroups, g)
}

// parseRange reads A, A-LAST (the last IPv4 octet or IPv6 group), A-B or
// A/LEN.
func parseRange(s string) (first, last netip.Addr, ok bool) {
	if strings.Contains(s, "/") {
		p, ok := parsePrefix(s)
		if !ok {
			return first, last, false
		}
		p = p.Masked()
		first = p.Addr()
		last = first
		// Set the host bits.
		bs := first.AsSlice()
		for i := p.Bits(); i < len(bs)*8; i++ {
			bs[i/8] |= 0x80 >> (i % 8)
		}
		last, _ = netip.AddrFromSlice(bs)
		return first, last, true
	}
	a, b, isRange := strings.Cut(s, "-")
	first, ok = parseAddr(a)
	if !ok {
		return first, last, false
	}
	if !isRange {
		return first, first, true
	}
	if l, ok := parseAddr(b); ok {
		last = l
	} else {
		bs := first.AsSlice()
		if first.Is4() {
			v, err := strconv.ParseUint(b, 10, 8)
			if err != nil {
				return first, last, false
			}
			bs[3] = byte(v)
		} else {
			v, err := strconv.ParseUint(b, 16, 16)
			if err != nil {
				return first, last, false
			}
			bs[14], bs[15] = byte(v>>8), byte(v)
		}
		last, _ = netip.AddrFromSlice(bs)
	}
	if last.Is4() != first.Is4() || last.Less(first) {
		return first, last, false
	}
	return first, last, true
}

// vsState is what the builder keeps about a virtual server while reading
// it: the settings its real servers and checkers inherit.
type vsState struct {
	timing timing
	rs     map[*RealServer]*timing
	// rsLines counts real_server lines, valid or not.
	rsLines int
}

func (b *builder) virtualServer(n *node) {
	vs := &VirtualServer{
		DelayLoop: 60 * time.Second,
		LBAlgo:    "wlc",
		LBKind:    LBKindNAT,
		Protocol:  TCP,
		Quorum:    1,
		Pos:       n.kw.Pos,
		Explicit:  Explicit{},
	}
	st := &vsState{rs: map[*RealServer]*timing{}}
	if !b.needBlock(n) {
		return
	}
	switch {
	case len(n.args) == 0:
		b.d.errorf(n.kw.Pos, "virtual_server needs an address: virtual_server ADDR [PORT], fwmark N or group NAME (block skipped)")
		return
	case n.args[0].Text == "fwmark":
		if len(n.args) < 2 {
			b.d.errorf(n.args[0].Pos, "virtual_server fwmark needs a mark (want 1-4294967295; block skipped)")
			return
		}
		m, err := strconv.ParseUint(n.args[1].Text, 10, 32)
		if err != nil || m == 0 {
			b.d.errorf(n.args[1].Pos, "invalid fwmark %q (want 1-4294967295; block skipped)", n.args[1].Text)
			return
		}
		vs.FWMark = uint32(m)
		b.extra(n, 2)
	case n.args[0].Text == "group":
		if len(n.args) < 2 {
			b.d.errorf(n.args[0].Pos, "virtual_server group needs a virtual_server_group name (block skipped)")
			return
		}
		vs.Group = n.args[1].Text
		vs.Explicit.set("group", n.args[1].Pos)
		b.extra(n, 2)
	default:
		a, ok := parseAddr(n.args[0].Text)
		if !ok {
			b.d.errorf(n.args[0].Pos, "invalid virtual_server address %q (want ADDR [PORT], fwmark N or group NAME; block skipped)", n.args[0].Text)
			return
		}
		vs.Addr = a
		vs.Family = familyOf(a)
		if len(n.args) > 1 {
			p, ok := parsePort(n.args[1].Text)
			if !ok || p == 0 {
				b.d.errorf(n.args[1].Pos, "invalid virtual_server port %q (want 1-65535; block skipped)", n.args[1].Text)
				return
			}
			vs.Port = p
			b.extra(n, 2)
		}
	}
	for _, c := range n.block {
		ok := true
		if handled, good := b.readTiming(c, &st.timing); handled {
			if good {
				vs.Explicit.set(c.name(), c.kw.Pos)
			}
			continue
		}
		switch name := c.name(); name {
		case "delay_loop":
			vs.DelayLoop, ok = b.secondsPositive(c, vs.DelayLoop)
		case "lb_algo", "lvs_sched":
			var t token
			if t, ok = b.value(c, strings.Join(lbAlgos, ", ")); ok {
				if !slices.Contains(lbAlgos, t.Text) {
					b.d.errorf(t.Pos, "unknown %s %q (want %s)", name, t.Text, strings.Join(lbAlgos, ", "))
					ok = false
				} else {
					vs.LBAlgo = t.Text
					vs.Explicit.set("lb_algo", c.kw.Pos)
				}
			}
		case "lb_kind", "lvs_method":
			var k LBKind
			if k, ok = b.lbKind(c); ok {
				vs.LBKind = k
				vs.Explicit.set("lb_kind", c.kw.Pos)
			}
		case "persistence_timeout":
			b.noBlock(c)
			if len(c.args) == 0 {
				vs.PersistenceTimeout = 360 * time.Second
				break
			}
			var v int
			if v, ok = b.intOr(c, 1, math.MaxInt32, 0); ok {
				vs.PersistenceTimeout = time.Duration(v) * time.Second
			}
		case "persistence_granularity":
			ok = b.granularity(c, vs)
		case "persistence_engine":
			var t token
			if t, ok = b.value(c, "sip"); ok {
				vs.PersistenceEngine = t.Text
			}
		case "protocol":
			var t token
			if t, ok = b.value(c, "TCP, UDP or SCTP"); ok {
				switch p := Protocol(strings.ToUpper(t.Text)); p {
				case TCP, UDP, SCTP:
					vs.Protocol = p
				default:
					b.d.errorf(t.Pos, "unknown protocol %q (want TCP, UDP or SCTP)", t.Text)
					ok = false
				}
			}
		case "ip_family":
			var t token
			if t, ok = b.value(c, "inet or inet6"); ok {
				switch f := Family(t.Text); f {
				case IPv4, IPv6:
					if vs.Family != "" && vs.Family != f {
						b.d.errorf(t.Pos, "ip_family %s conflicts with the virtual server's address %s", f, vs.Addr)
						ok = false
					} else {
						vs.Family = f
					}
				default:
					b.d.errorf(t.Pos, "unknown ip_family %q (want inet or inet6)", t.Text)
					ok = false
				}
			}
		case "sorry_server":
			ok = b.sorryServer(c, vs)
		case "sorry_server_inhibit":
			b.bare(c)
		case "sorry_server_lvs_method":
			_, ok = b.lbKind(c)
		case "quorum":
			vs.Quorum, ok = b.intOr(c, 1, math.MaxInt32, vs.Quorum)
		case "hysteresis":
			vs.Hysteresis, ok = b.intOr(c, 0, math.MaxInt32, vs.Hysteresis)
		case "quorum_up":
			vs.QuorumUp, ok = b.command(c, true)
		case "quorum_down":
			vs.QuorumDown, ok = b.command(c, true)
		case "alpha":
			vs.Alpha, ok = b.flagOr(c, vs.Alpha)
		case "omega":
			vs.Omega, ok = b.flagOr(c, vs.Omega)
		case "inhibit_on_failure":
			vs.InhibitOnFailure, ok = b.flagOr(c, vs.InhibitOnFailure)
		case "virtualhost":
			var t token
			if t, ok = b.value(c, "a host name"); ok {
				vs.VirtualHost = t.Text
			}
		case "ha_suspend":
			b.bare(c)
			vs.HASuspend = true
		case "weight":
			var v int
			if v, ok = b.intOr(c, 0, 65535, 1); ok {
				st.timing.weight = &v
			}
		case "real_server":
			st.rsLines++
			if rs := b.realServer(c, vs, st); rs != nil {
				vs.RealServers = append(vs.RealServers, rs)
			}
			continue
		default:
			if slices.Contains(schedFlags, name) {
				b.bare(c)
				if !slices.Contains(vs.SchedFlags, name) {
					vs.SchedFlags = append(vs.SchedFlags, name)
				}
				break
			}
			b.other(c, "in virtual_server", virtualServerUnsupported)
			continue
		}
		if ok {
			vs.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	// sorry_server_inhibit and sorry_server_lvs_method apply wherever they
	// are written in the block.
	for _, c := range n.block {
		switch c.name() {
		case "sorry_server_inhibit", "sorry_server_lvs_method":
			if vs.SorryServer == nil {
				b.d.warnf(c.kw.Pos, "%s without sorry_server (ignored)", c.name())
				continue
			}
			if c.name() == "sorry_server_inhibit" {
				vs.SorryServer.Inhibit = true
			} else if k, ok := b.lbKindQuiet(c); ok {
				vs.SorryServer.LBKind = k
			}
		}
	}
	b.vsStates = append(b.vsStates, vsEntry{vs, st})
	b.cfg.VirtualServers = append(b.cfg.VirtualServers, vs)
}

// lbKind reads "lb_kind NAT|DR|TUN [type ...]".
func (b *builder) lbKind(c *node) (LBKind, bool) {
	b.noBlock(c)
	if len(c.args) == 0 {
		b.d.errorf(c.kw.Pos, "%s needs a value (want NAT, DR or TUN)", c.name())
		return "", false
	}
	k, ok := b.lbKindQuiet(c)
	if !ok {
		b.d.errorf(c.args[0].Pos, "unknown %s %q (want NAT, DR or TUN)", c.name(), c.args[0].Text)
		return "", false
	}
	if len(c.args) > 1 {
		if k == LBKindTUN && c.args[1].Text == "type" {
			b.d.unsupportedf(c.args[1].Pos, "%s TUN %s: recognised but not supported by xkeep (tunnels are plain IPIP)", c.name(), strings.Join(tokTexts(c.args[1:]), " "))
		} else {
			b.extra(c, 1)
		}
	}
	return k, true
}

func (b *builder) lbKindQuiet(c *node) (LBKind, bool) {
	if len(c.args) == 0 {
		return "", false
	}
	switch k := LBKind(c.args[0].Text); k {
	case LBKindNAT, LBKindDR, LBKindTUN:
		return k, true
	}
	return "", false
}

func tokTexts(ts []token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Text
	}
	return out
}

// granularity reads persistence_granularity: an IPv4 netmask or an IPv6
// prefix length.
func (b *builder) granularity(c *node, vs *VirtualServer) bool {
	t, ok := b.value(c, "a netmask such as 255.255.255.0, or an IPv6 prefix length")
	if !ok {
		return false
	}
	fam := vs.Family
	if fam == "" {
		fam = IPv6
		if strings.Contains(t.Text, ".") {
			fam = IPv4
		}
	}
	if fam == IPv6 {
		v, err := strconv.Atoi(t.Text)
		if err != nil || v < 1 || v > 128 {
			b.invalid(c, t, "an IPv6 prefix length, 1-128")
			return false
		}
		vs.PersistenceGranularity = v
	} else {
		a, ok := parseAddr(t.Text)
		if !ok || !a.Is4() {
			b.invalid(c, t, "an IPv4 netmask such as 255.255.255.0")
			return false
		}
		m := uint32(a.As4()[0])<<24 | uint32(a.As4()[1])<<16 | uint32(a.As4()[2])<<8 | uint32(a.As4()[3])
		bits := 0
		for bits < 32 && m&(1<<(31-bits)) != 0 {
			bits++
		}
		if bits < 32 && m<<bits != 0 || bits == 0 {
			b.d.errorf(t.Pos, "persistence_granularity %s is not a contiguous netmask (want e.g. 255.255.255.0)", t.Text)
			return false
		}
		vs.PersistenceGranularity = bits
	}
	if vs.Family == "" {
		vs.Family = fam
	}
	return true
}

func (b *builder) sorryServer(c *node, vs *VirtualServer) bool {
	b.noBlock(c)
	if len(c.args) == 0 {
		b.d.errorf(c.kw.Pos, "sorry_server needs an address (want ADDR [PORT])")
		return false
	}
	a, ok := parseAddr(c.args[0].Text)
	if !ok {
		b.d.errorf(c.args[0].Pos, "invalid sorry_server address %q (want ADDR [PORT])", c.args[0].Text)
		return false
	}
	s := &SorryServer{Addr: a, Pos: c.kw.Pos}
	if len(c.args) > 1 {
		p, ok := parsePort(c.args[1].Text)
		if !ok || p == 0 {
			b.d.errorf(c.args[1].Pos, "invalid sorry_server port %q (want 1-65535)", c.args[1].Text)
			return false
		}
		s.Port = p
		b.extra(c, 2)
	}
	vs.SorryServer = s
	return true
}

func (b *builder) realServer(n *node, vs *VirtualServer, st *vsState) *RealServer {
	if len(n.args) == 0 {
		b.d.errorf(n.kw.Pos, "real_server needs an address (want ADDR [PORT])")
		return nil
	}
	a, ok := parseAddr(n.args[0].Text)
	if !ok {
		b.d.errorf(n.args[0].Pos, "invalid real_server address %q (want ADDR [PORT])", n.args[0].Text)
		return nil
	}
	rs := &RealServer{Addr: a, Weight: 1, Pos: n.kw.Pos, Explicit: Explicit{}}
	if len(n.args) > 1 {
		p, ok := parsePort(n.args[1].Text)
		if !ok || p == 0 {
			b.d.errorf(n.args[1].Pos, "invalid real_server port %q (want 1-65535)", n.args[1].Text)
			return nil
		}
		rs.Port = p
		rs.Explicit.set("port", n.args[1].Pos)
		b.extra(n, 2)
	}
	t := &timing{}
	st.rs[rs] = t
	for _, c := range n.block {
		ok := true
		if handled, good := b.readTiming(c, t); handled {
			if good {
				rs.Explicit.set(c.name(), c.kw.Pos)
			}
			continue
		}
		switch c.name() {
		case "weight":
			rs.Weight, ok = b.intOr(c, 0, 65535, rs.Weight)
		case "lvs_method", "lb_kind":
			var k LBKind
			if k, ok = b.lbKind(c); ok {
				rs.LBKind = k
				rs.Explicit.set("lb_kind", c.kw.Pos)
			}
		case "notify_up":
			rs.NotifyUp, ok = b.command(c, true)
		case "notify_down":
			rs.NotifyDown, ok = b.command(c, true)
		case "uthreshold":
			rs.UThreshold, ok = b.intOr(c, 0, math.MaxInt32, rs.UThreshold)
		case "lthreshold":
			rs.LThreshold, ok = b.intOr(c, 0, math.MaxInt32, rs.LThreshold)
		case "inhibit_on_failure":
			rs.InhibitOnFailure, ok = b.flagOr(c, rs.InhibitOnFailure)
		case "alpha":
			rs.Alpha, ok = b.flagOr(c, rs.Alpha)
		case "delay_loop":
			rs.DelayLoop, ok = b.secondsPositive(c, rs.DelayLoop)
		case "virtualhost":
			var tk token
			if tk, ok = b.value(c, "a host name"); ok {
				rs.VirtualHost = tk.Text
			}
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK",
			"UDP_CHECK", "PING_CHECK", "BFD_CHECK", "FILE_CHECK":
			if chk := b.checker(c, CheckerType(c.name())); chk != nil {
				rs.Checkers = append(rs.Checkers, chk)
			}
			continue
		default:
			b.other(c, "in real_server", realServerUnsupported)
			continue
		}
		if ok {
			rs.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	return rs
}

// checkerState is what the builder keeps about a checker until its real
// server is complete.
type checkerState struct {
	timing   timing
	connIP   netip.Addr
	connPort uint16
	vhost    string
}

func (b *builder) checker(n *node, typ CheckerType) *Checker {
	b.extra(n, 0)
	chk := &Checker{Type: typ, Pos: n.kw.Pos, Explicit: Explicit{}}
	cs := &checkerState{}
	b.checkerStates[chk] = cs
	if !n.hasBlock {
		// "PING_CHECK" alone is a checker with every default.
		return chk
	}
	switch typ {
	case HTTPGet, SSLGet:
		chk.HTTP = &HTTPCheckConfig{Protocol: "1.0"}
	case MiscCheck:
		chk.Misc = &MiscCheckConfig{}
	case SMTPCheck:
		chk.SMTP = &SMTPCheckConfig{}
	case DNSCheck:
		chk.DNS = &DNSCheckConfig{Type: "SOA", Name: "."}
	case UDPCheck:
		chk.UDP = &UDPCheckConfig{MaxReplyLength: 255}
	case BFDCheck:
		chk.BFD = &BFDCheckConfig{}
		b.d.unsupportedf(n.kw.Pos, "BFD_CHECK: recognised but not supported by xkeep (%s)", altBFD)
	case FileCheck:
		chk.File = &FileCheckConfig{Weight: 1}
		b.d.unsupportedf(n.kw.Pos, "FILE_CHECK: recognised but not supported by xkeep (use MISC_CHECK with a script that reads the file)")
	}
	where := "in " + string(typ)
	for _, c := range n.block {
		ok := true
		if typ != BFDCheck && typ != FileCheck {
			if handled, good := b.readTiming(c, &cs.timing); handled {
				if good {
					chk.Explicit.set(c.name(), c.kw.Pos)
				}
				continue
			}
			if handled, good := b.connOption(c, chk, cs); handled {
				if good {
					chk.Explicit.set(c.name(), c.kw.Pos)
				}
				continue
			}
		}
		switch name := c.name(); {
		case name == "delay_loop" && typ != BFDCheck && typ != FileCheck:
			chk.DelayLoop, ok = b.secondsPositive(c, chk.DelayLoop)
		case name == "alpha" && typ != BFDCheck && typ != FileCheck:
			chk.Alpha, ok = b.flagOr(c, chk.Alpha)
		case name == "log_all_failures" && typ != BFDCheck && typ != FileCheck:
			chk.LogAllFailures, ok = b.flagOr(c, chk.LogAllFailures)
		case chk.HTTP != nil:
			ok = b.httpOption(c, chk, cs, where)
		case chk.Misc != nil:
			ok = b.miscOption(c, chk.Misc, where)
		case chk.SMTP != nil:
			ok = b.smtpOption(c, chk.SMTP, where)
		case chk.DNS != nil:
			ok = b.dnsOption(c, chk.DNS, where)
		case chk.UDP != nil:
			ok = b.udpOption(c, chk.UDP, where)
		case chk.BFD != nil && name == "name":
			var t token
			if t, ok = b.value(c, "a bfd_instance name"); ok {
				chk.BFD.Name = t.Text
			}
		case chk.File != nil:
			ok = b.fileOption(c, chk.File, where)
		default:
			b.other(c, where, nil)
			continue
		}
		if ok {
			chk.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	if chk.HTTP != nil && len(chk.HTTP.URLs) == 0 {
		b.d.errorf(n.kw.Pos, "%s has no url block (want url { path /... })", typ)
	}
	if chk.Misc != nil && (chk.Misc.Path == nil || chk.Misc.Path.Cmd == "") {
		b.d.errorf(n.kw.Pos, "MISC_CHECK has no misc_path (want misc_path /path/to/script)")
	}
	return chk
}

// connOption handles the connection keywords every checker but MISC_CHECK
// takes.
func (b *builder) connOption(c *node, chk *Checker, cs *checkerState) (handled, ok bool) {
	switch c.name() {
	case "connect_ip":
		cs.connIP, ok = b.addrValue(c)
	case "connect_port":
		cs.connPort, ok = b.portValue(c)
	case "bindto", "bind_to":
		chk.BindTo, ok = b.addrValue(c)
	case "bind_if":
		var t token
		if t, ok = b.value(c, "an interface name"); ok {
			chk.BindIf = t.Text
		}
	case "bind_port":
		chk.BindPort, ok = b.portValue(c)
	case "fwmark":
		var v int
		if v, ok = b.intOr(c, 0, math.MaxInt32, 0); ok {
			chk.FWMark = uint32(v)
		}
	default:
		return false, false
	}
	if ok && chk.Type == MiscCheck {
		b.d.warnf(c.kw.Pos, "%s has no effect in MISC_CHECK (the script does the checking)", c.name())
	}
	return true, ok
}

func (b *builder) httpOption(c *node, chk *Checker, cs *checkerState, where string) bool {
	h := chk.HTTP
	ok := true
	switch c.name() {
	case "url":
		if u, good := b.url(c, chk.Type); good {
			h.URLs = append(h.URLs, u)
		} else {
			ok = false
		}
	case "http_protocol":
		var t token
		if t, ok = b.value(c, "1.0, 1.0C or 1.1"); ok {
			switch t.Text {
			case "1.0", "1.0C", "1.1":
				h.Protocol = t.Text
			default:
				b.invalid(c, t, "1.0, 1.0C or 1.1")
				ok = false
			}
		}
	case "fast_recovery":
		h.FastRecovery, ok = b.flagOr(c, h.FastRecovery)
	case "virtualhost":
		var t token
		if t, ok = b.value(c, "a host name"); ok {
			cs.vhost = t.Text
		}
	case "enable_sni":
		b.bare(c)
		h.EnableSNI = true
		ok = b.sslOnly(c, chk.Type)
	case "sni_name":
		var t token
		if t, ok = b.value(c, "a server name"); ok {
			h.SNIName = t.Text
			ok = b.sslOnly(c, chk.Type)
		}
	case "tls_compliant":
		b.bare(c)
		h.TLSCompliant = true
		ok = b.sslOnly(c, chk.Type)
	default:
		b.other(c, where, nil)
		return false
	}
	return ok
}

func (b *builder) sslOnly(c *node, typ CheckerType) bool {
	if typ != SSLGet {
		b.d.warnf(c.kw.Pos, "%s applies to SSL_GET only (ignored in %s)", c.name(), typ)
	}
	return true
}

var regexUnsupported = "regular expressions are matched without pcre2 options"

func (b *builder) url(n *node, typ CheckerType) (URLCheck, bool) {
	b.extra(n, 0)
	u := URLCheck{Pos: n.kw.Pos}
	if !b.needBlock(n) {
		return u, false
	}
	for _, c := range n.block {
		switch c.name() {
		case "path":
			if t, ok := b.value(c, "a URL path such as /index.html"); ok {
				u.Path = t.Text
			}
		case "digest":
			if t, ok := b.value(c, "an MD5 digest, 32 hex digits"); ok {
				if d, err := hex.DecodeString(t.Text); err != nil || len(d) != 16 {
					b.invalid(c, t, "an MD5 digest, 32 hex digits (genhash prints it)")
				} else {
					u.Digest = strings.ToLower(t.Text)
				}
			}
		case "status_code":
			b.noBlock(c)
			if len(c.args) == 0 {
				b.d.errorf(c.kw.Pos, "status_code needs a value (want codes or ranges such as 200 or 200-299)")
			}
			for _, a := range c.args {
				lo, hi, found := strings.Cut(a.Text, "-")
				if !found {
					hi = lo
				}
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if err1 != nil || err2 != nil || l < 100 || h > 599 || h < l {
					b.d.errorf(a.Pos, "invalid status_code %q (want a code or range within 100-599, such as 200 or 200-299)", a.Text)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{Min: l, Max: h})
			}
		case "virtualhost":
			if t, ok := b.value(c, "a host name"); ok {
				u.VirtualHost = t.Text
			}
		case "regex":
			if t, ok := b.value(c, "a regular expression"); ok {
				u.Regex = t.Text
			}
		case "regex_no_match":
			b.bare(c)
			u.RegexNoMatch = true
		case "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset":
			b.unsupported(c, regexUnsupported)
		case "tls_compliant":
			b.bare(c)
			b.sslOnly(c, typ)
		default:
			b.other(c, "in url", nil)
		}
	}
	if u.Path == "" {
		b.d.errorf(n.kw.Pos, "url has no path (want path /...)")
		return u, false
	}
	if len(u.StatusCodes) == 0 {
		u.StatusCodes = []StatusRange{{Min: 200, Max: 299}}
	}
	return u, true
}

func (b *builder) miscOption(c *node, m *MiscCheckConfig, where string) bool {
	ok := true
	switch c.name() {
	case "misc_path":
		var cmd *Command
		if cmd, ok = b.command(c, false); ok {
			if m.Path != nil {
				cmd.User, cmd.Group = m.Path.User, m.Path.Group
			}
			m.Path = cmd
		}
	case "misc_timeout":
		var v int
		if v, ok = b.intOr(c, 1, math.MaxInt32, 0); ok {
			m.Timeout = time.Duration(v) * time.Second
		}
	case "misc_dynamic":
		b.bare(c)
		m.Dynamic = true
	case "user":
		b.noBlock(c)
		if len(c.args) == 0 {
			b.d.errorf(c.kw.Pos, "user needs a value (want username [[:]groupname])")
			return false
		}
		user, group := splitUserGroup(c.args)
		if m.Path == nil {
			// misc_path may come later; it keeps the user.
			m.Path = &Command{Pos: c.kw.Pos}
		}
		m.Path.User, m.Path.Group = user, group
		b.extra(c, 2)
	default:
		b.other(c, where, nil)
		return false
	}
	return ok
}

func (b *builder) smtpOption(c *node, s *SMTPCheckConfig, where string) bool {
	switch c.name() {
	case "helo_name":
		t, ok := b.value(c, "a host name")
		if ok {
			s.HeloName = t.Text
		}
		return ok
	case "host":
		b.extra(c, 0)
		if !b.needBlock(c) {
			return false
		}
		h := SMTPHost{Pos: c.kw.Pos}
		var ip netip.Addr
		var port uint16
		for _, o := range c.block {
			switch o.name() {
			case "connect_ip":
				ip, _ = b.addrValue(o)
			case "connect_port":
				port, _ = b.portValue(o)
			case "bindto", "bind_to":
				h.BindTo, _ = b.addrValue(o)
			case "bind_if", "bind_port", "fwmark", "connect_timeout":
				b.unsupported(o, "set it on SMTP_CHECK itself")
			default:
				b.other(o, "in host", nil)
			}
		}
		// The real server fills in what is missing once it is known.
		h.Target = netip.AddrPortFrom(ip, port)
		s.Hosts = append(s.Hosts, h)
		return true
	}
	b.other(c, where, nil)
	return false
}

var dnsTypes = []string{"A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"}

func (b *builder) dnsOption(c *node, d *DNSCheckConfig, where string) bool {
	switch c.name() {
	case "type":
		t, ok := b.value(c, strings.Join(dnsTypes, ", "))
		if !ok {
			return false
		}
		if !slices.Contains(dnsTypes, strings.ToUpper(t.Text)) {
			b.d.errorf(t.Pos, "unknown DNS_CHECK type %q (want %s)", t.Text, strings.Join(dnsTypes, ", "))
			return false
		}
		d.Type = strings.ToUpper(t.Text)
		return true
	case "name":
		t, ok := b.value(c, "a domain name")
		if ok {
			d.Name = t.Text
		}
		return ok
	}
	b.other(c, where, nil)
	return false
}

// parseHexFree reads keepalived's free-format hex strings: blank-separated
// groups of hex digits, each group of odd length getting a leading 0
// ("Ab12f 3" is AB 12 0F 03). wild allows x/X nibbles, kept as they are.
func parseHexFree(words []token, wild bool) (string, bool) {
	var sb strings.Builder
	for _, w := range words {
		s := w.Text
		if len(s)%2 == 1 {
			s = "0" + s
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			isHex := (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
			if !isHex && !(wild && (c == 'x' || c == 'X')) {
				return "", false
			}
		}
		sb.WriteString(strings.ToLower(s))
	}
	return sb.String(), true
}

func (b *builder) udpOption(c *node, u *UDPCheckConfig, where string) bool {
	switch c.name() {
	case "payload":
		b.noBlock(c)
		s, ok := parseHexFree(c.args, false)
		if !ok || len(c.args) == 0 {
			b.d.errorf(c.kw.Pos, "invalid payload %q (want hex digits, e.g. 0a 1b2c)", c.argText())
			return false
		}
		u.Payload, _ = hex.DecodeString(s)
		return true
	case "require_reply":
		b.noBlock(c)
		u.RequireReply = true
		if len(c.args) > 0 {
			s, ok := parseHexFree(c.args, true)
			if !ok {
				b.d.errorf(c.kw.Pos, "invalid require_reply %q (want hex digits, x for any nibble)", c.argText())
				return false
			}
			u.ReplyPattern = s
		}
		return true
	case "min_reply_length":
		v, ok := b.intOr(c, 0, 65535, u.MinReplyLength)
		u.MinReplyLength = v
		return ok
	case "max_reply_length":
		v, ok := b.intOr(c, 0, 65535, u.MaxReplyLength)
		u.MaxReplyLength = v
		return ok
	}
	b.other(c, where, nil)
	return false
}

func (b *builder) fileOption(c *node, f *FileCheckConfig, where string) bool {
	switch c.name() {
	case "track_file":
		t, ok := b.value(c, "a track_file name")
		if ok {
			f.TrackFile = t.Text
		}
		return ok
	case "dynamic":
		b.bare(c)
		f.Dynamic = true
		return true
	case "weight":
		b.noBlock(c)
		w, rev, ok := b.weightArgs(c, c.args, -math.MaxInt32, math.MaxInt32)
		f.Weight, f.Reverse = w, rev
		return ok
	}
	b.other(c, where, nil)
	return false
}

// vsEntry pairs a virtual server with what the builder kept about it.
type vsEntry struct {
	vs *VirtualServer
	st *vsState
}

// resolveVirtualServers passes settings down from virtual servers to real
// servers to checkers, and checks what needs the whole configuration.
func (b *builder) resolveVirtualServers() {
	seen := map[string]*VirtualServer{}
	for _, e := range b.vsStates {
		vs, st := e.vs, e.st
		pos := func(kw string) Pos {
			if p, ok := vs.Explicit[kw]; ok {
				return p
			}
			return vs.Pos
		}
		if vs.Group != "" && b.vsGroups[vs.Group] == nil {
			b.d.errorf(pos("group"), "virtual_server group %q: no virtual_server_group has that name", vs.Group)
		}
		if vs.FWMark != 0 && vs.Explicit.Has("protocol") {
			b.d.warnf(pos("protocol"), "virtual_server fwmark %d: protocol is ignored for fwmark services", vs.FWMark)
		}
		if vs.PersistenceGranularity != 0 && vs.PersistenceTimeout == 0 {
			vs.PersistenceTimeout = 360 * time.Second
		}
		if vs.Addr.IsValid() && vs.Port == 0 && vs.PersistenceTimeout == 0 {
			b.d.errorf(vs.Pos, "virtual_server %s has no port (a port can only be left out of a persistent service; add the port or persistence_timeout)", vs.Addr)
		}
		for _, f := range vs.SchedFlags {
			switch {
			case strings.HasPrefix(f, "sh-") && vs.LBAlgo != "sh":
				b.d.warnf(pos(f), "%s applies to lb_algo sh only (ignored with %s)", f, vs.LBAlgo)
			case strings.HasPrefix(f, "mh-") && vs.LBAlgo != "mh":
				b.d.warnf(pos(f), "%s applies to lb_algo mh only (ignored with %s)", f, vs.LBAlgo)
			case f == "ops" && vs.Protocol != UDP:
				b.d.warnf(pos(f), "ops applies to UDP services only (ignored with %s)", vs.Protocol)
			}
		}
		if vs.SorryServer != nil {
			if vs.SorryServer.LBKind == "" {
				vs.SorryServer.LBKind = vs.LBKind
			}
			if vs.Family != "" && familyOf(vs.SorryServer.Addr) != vs.Family && vs.SorryServer.LBKind != LBKindTUN {
				b.d.errorf(vs.SorryServer.Pos, "sorry_server %s is not %s like its virtual server", vs.SorryServer.Addr, vs.Family)
			}
			if vs.SorryServer.Port == 0 {
				vs.SorryServer.Port = vs.Port
			}
		}
		if st.rsLines == 0 {
			b.d.warnf(vs.Pos, "virtual_server %s has no real_server", vs.Key())
		}
		if k := vs.Key(); vs.Addr.IsValid() || vs.FWMark != 0 {
			if prev := seen[k]; prev != nil {
				b.d.errorf(vs.Pos, "virtual_server %s is already defined at %s", k, prev.Pos)
			}
			seen[k] = vs
		}
		rsSeen := map[netip.AddrPort]*RealServer{}
		for _, rs := range vs.RealServers {
			b.resolveRealServer(vs, st, rs)
			key := netip.AddrPortFrom(rs.Addr, rs.Port)
			if prev := rsSeen[key]; prev != nil {
				b.d.errorf(rs.Pos, "real_server %s is already defined at %s in this virtual_server", key, prev.Pos)
			}
			rsSeen[key] = rs
		}
		b.checkDataplane(vs)
	}
}

func (b *builder) resolveRealServer(vs *VirtualServer, st *vsState, rs *RealServer) {
	ex := rs.Explicit
	if !ex.Has("port") {
		rs.Port = vs.Port
	}
	if !ex.Has("weight") && st.timing.weight != nil {
		rs.Weight = *st.timing.weight
	}
	if !ex.Has("lb_kind") {
		rs.LBKind = vs.LBKind
	}
	if !ex.Has("delay_loop") {
		rs.DelayLoop = vs.DelayLoop
	}
	if !ex.Has("alpha") {
		rs.Alpha = vs.Alpha
	}
	if !ex.Has("inhibit_on_failure") {
		rs.InhibitOnFailure = vs.InhibitOnFailure
	}
	if !ex.Has("virtualhost") {
		rs.VirtualHost = vs.VirtualHost
	}
	if rs.LBKind != LBKindTUN {
		switch {
		case vs.Family == "":
			vs.Family = familyOf(rs.Addr)
		case familyOf(rs.Addr) != vs.Family:
			b.d.errorf(rs.Pos, "real_server %s is not %s like its virtual server (only lb_kind TUN may mix families)", rs.Addr, vs.Family)
		}
	}
	rt := st.rs[rs]
	for _, chk := range rs.Checkers {
		b.resolveChecker(vs, st, rs, rt, chk)
	}
}

// pick returns the first value that was set, else def.
func pick[T any](def T, vals ...*T) T {
	for _, v := range vals {
		if v != nil {
			return *v
		}
	}
	return def
}

func (b *builder) resolveChecker(vs *VirtualServer, st *vsState, rs *RealServer, rt *timing, chk *Checker) {
	cs := b.checkerStates[chk]
	ct := &cs.timing
	if !chk.Explicit.Has("delay_loop") {
		chk.DelayLoop = rs.DelayLoop
	}
	if !chk.Explicit.Has("alpha") {
		chk.Alpha = rs.Alpha
	}
	chk.ConnectTimeout = pick(5*time.Second, ct.connectTimeout, rt.connectTimeout, st.timing.connectTimeout)
	retry, delay := 1, time.Second
	switch chk.Type {
	case DNSCheck:
		retry, delay = 3, chk.DelayLoop
	case MiscCheck:
		retry = 0
	case HTTPGet, SSLGet:
		delay = 3 * time.Second
	}
	chk.Retry = pick(retry, ct.retry, rt.retry, st.timing.retry)
	chk.DelayBeforeRetry = pick(delay, ct.delayBeforeRetry, rt.delayBeforeRetry, st.timing.delayBeforeRetry)
	chk.Warmup = pick(chk.DelayLoop, ct.warmup, rt.warmup, st.timing.warmup)

	ip := rs.Addr
	if cs.connIP.IsValid() {
		ip = cs.connIP
	}
	port := rs.Port
	if cs.connPort != 0 {
		port = cs.connPort
	}
	switch chk.Type {
	case SMTPCheck:
		if port == 0 {
			port = 25
		}
	case DNSCheck:
		if port == 0 {
			port = 53
		}
	case TCPCheck, HTTPGet, SSLGet, UDPCheck:
		if port == 0 {
			b.d.errorf(chk.Pos, "%s for real_server %s has no port to check (add connect_port)", chk.Type, rs.Addr)
		}
	}
	chk.Target = netip.AddrPortFrom(ip, port)
	if chk.HTTP != nil {
		chk.HTTP.VirtualHost = cmpOr(cs.vhost, rs.VirtualHost)
	}
	if chk.SMTP != nil {
		for i := range chk.SMTP.Hosts {
			h := &chk.SMTP.Hosts[i]
			hip, hport := h.Target.Addr(), h.Target.Port()
			if !hip.IsValid() {
				hip = ip
			}
			if hport == 0 {
				hport = port
			}
			h.Target = netip.AddrPortFrom(hip, hport)
		}
	}
	if chk.Misc != nil && chk.Misc.Timeout == 0 {
		chk.Misc.Timeout = chk.DelayLoop
	}
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkDataplane reports features the chosen dataplane lacks, naming the
// one that has them.
func (b *builder) checkDataplane(vs *VirtualServer) {
	if b.opts.dataplane() != DataplaneXDP {
		return
	}
	pos := func(kw string) Pos {
		if p, ok := vs.Explicit[kw]; ok {
			return p
		}
		return vs.Pos
	}
	warn := func(p Pos, format string, args ...any) {
		b.d.unsupportedf(p, "%s", fmt.Sprintf(format, args...))
	}
	if vs.FWMark != 0 {
		warn(vs.Pos, "virtual_server fwmark %d: not supported by the xdp dataplane (it matches VIP and port, not firewall marks); use --dataplane=ipvs", vs.FWMark)
	}
	if g := b.vsGroups[vs.Group]; g != nil {
		for _, e := range g.Entries {
			if e.FWMark != 0 {
				warn(e.Pos, "virtual_server_group %s fwmark %d: not supported by the xdp dataplane (it matches VIP and port, not firewall marks); use --dataplane=ipvs", g.Name, e.FWMark)
			}
		}
	}
	if vs.LBKind != LBKindDR {
		how := fmt.Sprintf("lb_kind %s", vs.LBKind)
		if !vs.Explicit.Has("lb_kind") {
			how = fmt.Sprintf("lb_kind (default %s)", vs.LBKind)
		}
		warn(pos("lb_kind"), "%s with --dataplane=xdp: not supported (the xdp dataplane forwards by MAC rewrite, DR only); use lb_kind DR, or --dataplane=ipvs", how)
	}
	for _, rs := range vs.RealServers {
		if rs.LBKind != LBKindDR && rs.Explicit.Has("lb_kind") {
			warn(rs.Explicit["lb_kind"], "real_server %s lb_kind %s with --dataplane=xdp: not supported (DR only); use --dataplane=ipvs", rs.Addr, rs.LBKind)
		}
		if rs.UThreshold != 0 || rs.LThreshold != 0 {
			warn(rs.Pos, "real_server %s uthreshold/lthreshold with --dataplane=xdp: not supported (no connection limits); use --dataplane=ipvs", rs.Addr)
		}
	}
	if !slices.Contains(xdpAlgos, vs.LBAlgo) {
		warn(pos("lb_algo"), "lb_algo %s with --dataplane=xdp: not supported (want %s); use --dataplane=ipvs", vs.LBAlgo, strings.Join(xdpAlgos, ", "))
	}
	if vs.PersistenceEngine != "" {
		warn(pos("persistence_engine"), "persistence_engine %s with --dataplane=xdp: not supported; use --dataplane=ipvs", vs.PersistenceEngine)
	}
	if vs.SorryServer != nil && vs.SorryServer.LBKind != LBKindDR {
		warn(vs.SorryServer.Pos, "sorry_server lb_kind %s with --dataplane=xdp: not supported (DR only); use --dataplane=ipvs", vs.SorryServer.LBKind)
	}
}
