package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// builder turns the block tree into a Config, reporting problems with
// their positions. Each block is read by one method with a switch over its
// keywords; keywords that are recognised but not implemented, and unknown
// ones, are warnings and never stop the load.
type builder struct {
	opts *LoadOptions
	d    *diagSink
	cfg  *Config
	// memberPos holds where each sync group member was named.
	memberPos map[*SyncGroup][]Pos
	// vsStates and checkerStates keep what virtual servers and checkers
	// pass down until the whole block is read.
	vsStates      []vsEntry
	checkerStates map[*Checker]*checkerState
	// tried records the keywords written in an instance, valid or not, so
	// an invalid value is not reported again as missing.
	tried map[*VRRPInstance]map[string]bool
	// trackFileLines holds each instance's (or sync group's, keyed by its
	// *SyncGroup) track_file lines until the track_file blocks they name
	// are all read.
	trackFileLines map[any][]trackFileEntry
	// Lookups by name (the Config's own lookups are linear).
	scripts    map[string]*VRRPScript
	trackFiles map[string]*TrackFile
	instances  map[string]*VRRPInstance
	vsGroups   map[string]*VirtualServerGroup
}

func newBuilder(opts *LoadOptions, d *diagSink) *builder {
	return &builder{
		opts:           opts,
		d:              d,
		memberPos:      map[*SyncGroup][]Pos{},
		checkerStates:  map[*Checker]*checkerState{},
		tried:          map[*VRRPInstance]map[string]bool{},
		trackFileLines: map[any][]trackFileEntry{},
		scripts:        map[string]*VRRPScript{},
		trackFiles:     map[string]*TrackFile{},
		instances:      map[string]*VRRPInstance{},
		vsGroups:       map[string]*VirtualServerGroup{},
	}
}

func (b *builder) build(tree []*node) *Config {
	b.cfg = &Config{Global: defaultGlobal()}
	// keepalived applies global_defs wherever it appears; read it first so
	// instances inherit it whatever the order.
	for _, n := range tree {
		if n.name() == "global_defs" {
			b.globalDefs(n)
		}
	}
	for _, n := range tree {
		switch n.name() {
		case "global_defs":
		case "vrrp_script":
			b.vrrpScript(n)
		case "track_file", "vrrp_track_file":
			b.trackFile(n)
		case "vrrp_instance":
			b.vrrpInstance(n)
		case "vrrp_sync_group":
			b.syncGroup(n)
		case "virtual_server_group":
			b.virtualServerGroup(n)
		case "virtual_server":
			b.virtualServer(n)
		case "SSL":
			b.sslContext(n)
		default:
			b.other(n, "at the top level", topLevelUnsupported)
		}
	}
	b.resolveInstances()
	b.resolveSyncGroups()
	b.resolveVirtualServers()
	return b.cfg
}

// other reports a keyword the block's reader did not handle: recognised but
// unsupported (with its alternative), or unknown. Its block, if any, is
// skipped.
func (b *builder) other(n *node, where string, unsupported map[string]string) {
	if alt, ok := unsupported[n.name()]; ok {
		b.unsupported(n, alt)
		return
	}
	if n.kw.Text == "" && n.kw.Quoted {
		b.d.warnf(n.kw.Pos, "empty keyword %s (ignored)", where)
		return
	}
	skipped := ""
	if n.hasBlock {
		skipped = " with its block"
	}
	b.d.warnf(n.kw.Pos, "unknown keyword %q %s (ignored%s)", n.name(), where, skipped)
}

func (b *builder) unsupported(n *node, alt string) {
	b.d.unsupportedf(n.kw.Pos, "%s: recognised but not supported by xkeep (%s)", n.name(), alt)
}

// --- argument helpers ---

// noBlock warns about a block after a keyword that takes none.
func (b *builder) noBlock(n *node) {
	if n.hasBlock {
		b.d.warnf(n.open, "%s takes no block (block ignored)", n.name())
	}
}

// needBlock reports a missing block.
func (b *builder) needBlock(n *node) bool {
	if !n.hasBlock {
		b.d.errorf(n.kw.Pos, "%s needs a block: %s ... { ... }", n.name(), n.name())
		return false
	}
	return true
}

// extra warns about arguments after the first max ones.
func (b *builder) extra(n *node, max int) {
	if len(n.args) > max {
		rest := n.args[max:]
		words := make([]string, len(rest))
		for i, t := range rest {
			words[i] = t.Text
		}
		b.d.warnf(rest[0].Pos, "%s: extra arguments ignored: %s", n.name(), strings.Join(words, " "))
	}
}

// value returns the single argument of a "keyword value" line.
func (b *builder) value(n *node, want string) (token, bool) {
	b.noBlock(n)
	if len(n.args) == 0 {
		b.d.errorf(n.kw.Pos, "%s needs a value (want %s)", n.name(), want)
		return token{}, false
	}
	b.extra(n, 1)
	return n.args[0], true
}

func (b *builder) invalid(n *node, t token, want string) {
	b.d.errorf(t.Pos, "invalid %s %q (want %s)", n.name(), t.Text, want)
}

// intValue reads "keyword N" with min <= N <= max.
func (b *builder) intValue(n *node, min, max int) (int, bool) {
	want := fmt.Sprintf("%d-%d", min, max)
	if max == math.MaxInt32 {
		want = fmt.Sprintf("an integer >= %d", min)
	}
	t, ok := b.value(n, want)
	if !ok {
		return 0, false
	}
	return b.intToken(n, t, min, max, want)
}

func (b *builder) intToken(n *node, t token, min, max int, want string) (int, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(t.Text), 10, 64)
	if err != nil || v < int64(min) || v > int64(max) {
		b.invalid(n, t, want)
		return 0, false
	}
	return int(v), true
}

// parseSeconds reads keepalived's <TIMER>: seconds with up to microsecond
// resolution.
func parseSeconds(s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0, false
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

// secondsValue reads "keyword SECONDS" with min <= value <= max.
func (b *builder) secondsValue(n *node, min, max time.Duration) (time.Duration, bool) {
	want := "seconds"
	switch {
	case min > 0 && max > 0:
		want = fmt.Sprintf("seconds, %s to %s", fmtSeconds(min), fmtSeconds(max))
	case min > 0:
		want = fmt.Sprintf("seconds > %s", fmtSeconds(min-time.Microsecond))
	case max > 0:
		want = fmt.Sprintf("seconds, 0 to %s", fmtSeconds(max))
	}
	t, ok := b.value(n, want)
	if !ok {
		return 0, false
	}
	v, ok := parseSeconds(t.Text)
	if !ok || v < min || (max > 0 && v > max) {
		b.invalid(n, t, want)
		return 0, false
	}
	return v, true
}

// fmtSeconds prints a duration as keepalived writes it: plain seconds.
func fmtSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// parseBool reads keepalived's <BOOL>.
func parseBool(s string) (bool, bool) {
	switch s {
	case "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	return false, false
}

// flag reads "keyword [<BOOL>]": the keyword alone means true.
func (b *builder) flag(n *node) (bool, bool) {
	b.noBlock(n)
	if len(n.args) == 0 {
		return true, true
	}
	b.extra(n, 1)
	v, ok := parseBool(n.args[0].Text)
	if !ok {
		b.invalid(n, n.args[0], "on, off, true, false, yes or no")
	}
	return v, ok
}

// bare reads a keyword that takes no arguments.
func (b *builder) bare(n *node) {
	b.noBlock(n)
	b.extra(n, 0)
}

// parseAddr reads an IPv4 or IPv6 address (no zone).
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parsePrefix reads ADDR or ADDR/LEN; a bare address gets /32 or /128. The
// address keeps its host bits.
func parsePrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, ok := parseAddr(s)
		if !ok {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p, true
}

func (b *builder) addrValue(n *node) (netip.Addr, bool) {
	t, ok := b.value(n, "an IPv4 or IPv6 address")
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := parseAddr(t.Text)
	if !ok {
		b.invalid(n, t, "an IPv4 or IPv6 address")
	}
	return a, ok
}

// parsePort reads a port number 0-65535.
func parsePort(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err == nil
}

func (b *builder) portValue(n *node) (uint16, bool) {
	t, ok := b.value(n, "a port, 1-65535")
	if !ok {
		return 0, false
	}
	p, ok := parsePort(t.Text)
	if !ok || p == 0 {
		b.invalid(n, t, "a port, 1-65535")
		return 0, false
	}
	return p, true
}

// command reads a script line. For notify-style keywords (withUser) the
// first word is the command and the next ones are [username [:][groupname]];
// otherwise (script, misc_path) every word belongs to the command.
func (b *builder) command(n *node, withUser bool) (*Command, bool) {
	b.noBlock(n)
	if len(n.args) == 0 {
		b.d.errorf(n.kw.Pos, "%s needs a command (want a path, or a quoted command line)", n.name())
		return nil, false
	}
	c := &Command{Pos: n.args[0].Pos}
	words := n.args
	if withUser {
		words = n.args[:1]
		if len(n.args) > 1 {
			c.User, c.Group = splitUserGroup(n.args[1:])
			b.extra(n, 3)
		}
	}
	if len(words) == 1 {
		c.Cmd = words[0].Text
	} else {
		parts := make([]string, len(words))
		for i, w := range words {
			parts[i] = w.Text
		}
		c.Cmd = strings.Join(parts, " ")
	}
	args, err := splitArgs(c.Cmd)
	if err != nil {
		b.d.errorf(c.Pos, "%s: %v", n.name(), err)
		return nil, false
	}
	if len(args) == 0 {
		b.d.errorf(c.Pos, "%s: empty command", n.name())
		return nil, false
	}
	c.Args = args
	return c, true
}

// splitUserGroup reads "username [:][groupname]" or "username:groupname".
func splitUserGroup(words []token) (user, group string) {
	user = words[0].Text
	if u, g, ok := strings.Cut(user, ":"); ok {
		return u, g
	}
	if len(words) > 1 {
		group = strings.TrimPrefix(words[1].Text, ":")
	}
	return user, group
}

// splitArgs splits a command line as keepalived does for scripts: blanks
// separate words unless quoted with '...' or "...", and backslash escapes
// (\n, \t, \xHH, \NNN, \cC, \C) are decoded.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("command ends with a lone backslash")
			}
			i++
			inWord = true
			i = decodeEscape(s, i, &cur)
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in command", quote)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// decodeEscape writes the character escaped at s[i] (after the backslash)
// and returns the index of its last byte.
func decodeEscape(s string, i int, out *strings.Builder) int {
	c := s[i]
	isHex := func(c byte) bool {
		return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
	}
	switch {
	case c == 'x' && i+1 < len(s) && isHex(s[i+1]):
		j := i + 1
		for j < len(s) && j < i+3 && isHex(s[j]) {
			j++
		}
		v, _ := strconv.ParseUint(s[i+1:j], 16, 8)
		out.WriteByte(byte(v))
		return j - 1
	case c == 'c' && i+1 < len(s):
		out.WriteByte(s[i+1] & 0x1f)
		return i + 1
	case c >= '0' && c <= '7':
		j := i
		for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
			j++
		}
		v, _ := strconv.ParseUint(s[i:j], 8, 16)
		out.WriteByte(byte(v))
		return j - 1
	}
	switch c {
	case 'a':
		out.WriteByte('\a')
	case 'b':
		out.WriteByte('\b')
	case 'E':
		out.WriteByte(0x1b)
	case 'f':
		out.WriteByte('\f')
	case 'n':
		out.WriteByte('\n')
	case 'r':
		out.WriteByte('\r')
	case 't':
		out.WriteByte('\t')
	case 'v':
		out.WriteByte('\v')
	default:
		out.WriteByte(c)
	}
	return i
}

// weight reads "weight N [reverse|noreverse]" arguments starting at
// args[i] (the word after "weight").
func (b *builder) weightArgs(n *node, args []token, min, max int) (w int, reverse, ok bool) {
	want := fmt.Sprintf("weight %d..%d [reverse]", min, max)
	if len(args) == 0 {
		b.d.errorf(n.kw.Pos, "%s: weight needs a value (want %s)", n.name(), want)
		return 0, false, false
	}
	v, err := strconv.Atoi(args[0].Text)
	if err != nil || v < min || v > max {
		b.d.errorf(args[0].Pos, "invalid weight %q for %s (want %s)", args[0].Text, n.name(), want)
		return 0, false, false
	}
	for _, a := range args[1:] {
		switch a.Text {
		case "reverse":
			reverse = true
		case "noreverse":
			reverse = false
		default:
			b.d.warnf(a.Pos, "%s: extra arguments ignored: %s", n.name(), a.Text)
			return v, reverse, true
		}
	}
	return v, reverse, true
}
