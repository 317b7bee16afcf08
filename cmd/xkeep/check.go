package main

import (
	"context"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/xkeep/xkeep/config"
)

const defaultConfigFile = "/etc/keepalived/keepalived.conf"

// runCheck is `xkeep check`: like `keepalived -t`, it reads and validates a
// configuration, then summarises it. Exit status 0 when valid, 1 with
// errors, 2 for usage errors.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", defaultConfigFile, "configuration `file` to check")
	strict := fs.Bool("strict", false, "treat warnings as errors")
	asJSON := fs.Bool("json", false, "print the resolved model and the diagnostics as JSON")
	var configID string
	fs.StringVar(&configID, "i", "", "config `id` matched by @id lines (default: the host name up to the first dot)")
	fs.StringVar(&configID, "config-id", "", "same as -i")
	dataplane := fs.String("dataplane", string(config.DataplaneXDP), "dataplane the configuration is for: xdp or ipvs")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xkeep check [-f FILE] [--strict] [--json] [-i ID] [--dataplane xdp|ipvs]")
		fmt.Fprintln(stderr, "\nReads a keepalived.conf like keepalived -t and summarises it.")
		fmt.Fprintln(stderr, "Exit status: 0 valid, 1 errors, 2 usage.")
		fs.PrintDefaults()
	}
	// Flags may follow the file name: parse again after each positional.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(positional) {
	case 0:
	case 1:
		// "xkeep check FILE" reads FILE too, unless -f was given.
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "f" })
		if set {
			fmt.Fprintf(stderr, "xkeep check: give the file with -f or as an argument, not both\n")
			return 2
		}
		*file = positional[0]
	default:
		fmt.Fprintf(stderr, "xkeep check: unexpected arguments %q\n", positional[1:])
		fs.Usage()
		return 2
	}
	dp := config.Dataplane(*dataplane)
	if dp != config.DataplaneXDP && dp != config.DataplaneIPVS {
		fmt.Fprintf(stderr, "xkeep check: unknown --dataplane %q (want xdp or ipvs)\n", *dataplane)
		return 2
	}
	idSet := false
	fs.Visit(func(f *flag.Flag) { idSet = idSet || f.Name == "i" || f.Name == "config-id" })
	if !idSet {
		configID = defaultConfigID()
	}

	cfg, diags, err := config.Load(*file, config.LoadOptions{ConfigID: configID, Strict: *strict, Dataplane: dp})
	if err != nil && !errors.Is(err, config.ErrInvalid) {
		fmt.Fprintf(stderr, "xkeep check: %v\n", err)
		return 1
	}
	valid := err == nil
	if *asJSON {
		if werr := writeCheckJSON(stdout, *file, valid, cfg, diags); werr != nil {
			fmt.Fprintf(stderr, "xkeep check: %v\n", werr)
			return 1
		}
	} else {
		for _, d := range diags {
			fmt.Fprintln(stderr, d)
		}
		errs, warns := len(diags.Errors()), len(diags.Warnings())
		if !valid {
			fmt.Fprintf(stderr, "%s: invalid: %s, %s\n", *file, plural(errs, "error"), plural(warns, "warning"))
			return 1
		}
		fmt.Fprintf(stdout, "%s: valid (%s, %s, %s)\n", *file,
			plural(len(cfg.Instances), "vrrp_instance"), plural(len(cfg.VirtualServers), "virtual_server"), plural(warns, "warning"))
		writeSummary(stdout, cfg)
	}
	if !valid {
		return 1
	}
	return 0
}

// defaultConfigID is keepalived's default config id: the host name up to
// the first dot.
func defaultConfigID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// writeSummary prints what the configuration will do, block by block.
func writeSummary(w io.Writer, cfg *config.Config) {
	for _, in := range cfg.Instances {
		fmt.Fprintf(w, "\nvrrp_instance %s\n", in.Name)
		iface := in.Interface
		if iface == "" {
			iface = "(none)"
		}
		line := fmt.Sprintf("  state %s, vrid %d, priority %d, interface %s, advert_int %s, VRRPv%d",
			in.State, in.VRID, in.Priority, iface, secs(in.AdvertInterval), in.Version)
		if in.Auth != nil {
			line += ", auth " + string(in.Auth.Type)
		}
		if in.Nopreempt {
			line += ", nopreempt"
		}
		if in.PreemptDelay > 0 {
			line += ", preempt_delay " + secs(in.PreemptDelay)
		}
		if in.SyncGroup != "" {
			line += ", sync group " + in.SyncGroup
		}
		fmt.Fprintln(w, line)
		if in.Unicast() {
			peers := make([]string, len(in.UnicastPeers))
			for i, p := range in.UnicastPeers {
				peers[i] = p.Addr.String()
			}
			src := "(interface address)"
			if in.SrcIP.IsValid() {
				src = in.SrcIP.String()
			}
			fmt.Fprintf(w, "  unicast from %s to %s\n", src, strings.Join(peers, ", "))
		}
		fmt.Fprintf(w, "  vips: %s\n", joinVIPs(in.VIPs))
		if len(in.ExcludedVIPs) > 0 {
			fmt.Fprintf(w, "  vips excluded from adverts: %s\n", joinVIPs(in.ExcludedVIPs))
		}
		for _, ts := range in.TrackScripts {
			s := cfg.Script(ts.Name)
			desc := fmt.Sprintf("  track_script %s: weight %d", ts.Name, ts.Weight)
			if ts.Reverse {
				desc += " reverse"
			}
			if s != nil && s.Script != nil {
				desc += fmt.Sprintf(", runs %q every %s (rise %d, fall %d)", s.Script.Cmd, secs(s.Interval), s.Rise, s.Fall)
			}
			fmt.Fprintln(w, desc)
		}
		for _, ti := range in.TrackInterfaces {
			fmt.Fprintf(w, "  track_interface %s: weight %d\n", ti.Name, ti.Weight)
		}
		writeNotify(w, "  ", in.Notify)
	}
	for _, g := range cfg.SyncGroups {
		fmt.Fprintf(w, "\nvrrp_sync_group %s: %s\n", g.Name, strings.Join(g.Instances, ", "))
		writeNotify(w, "  ", g.Notify)
	}
	for _, vs := range cfg.VirtualServers {
		fmt.Fprintf(w, "\nvirtual_server %s\n", vs.Key())
		line := fmt.Sprintf("  lb_algo %s, lb_kind %s", vs.LBAlgo, vs.LBKind)
		if vs.PersistenceTimeout > 0 {
			line += ", persistence " + secs(vs.PersistenceTimeout)
			if vs.PersistenceGranularity > 0 {
				line += fmt.Sprintf(" per /%d", vs.PersistenceGranularity)
			}
		} else {
			line += ", no persistence"
		}
		line += ", delay_loop " + secs(vs.DelayLoop)
		if vs.Quorum != 1 || vs.Hysteresis != 0 {
			line += fmt.Sprintf(", quorum %d hysteresis %d", vs.Quorum, vs.Hysteresis)
		}
		fmt.Fprintln(w, line)
		if g := cfg.VirtualServerGroup(vs.Group); g != nil {
			for _, e := range g.Entries {
				switch {
				case e.FWMark != 0:
					fmt.Fprintf(w, "  group member fwmark %d\n", e.FWMark)
				case e.First == e.Last:
					fmt.Fprintf(w, "  group member %s port %d\n", e.First, e.Port)
				default:
					fmt.Fprintf(w, "  group member %s-%s port %d\n", e.First, e.Last, e.Port)
				}
			}
		}
		if s := vs.SorryServer; s != nil {
			fmt.Fprintf(w, "  sorry_server %s port %d\n", s.Addr, s.Port)
		}
		for _, rs := range vs.RealServers {
			extra := ""
			if rs.LBKind != vs.LBKind {
				extra += ", lb_kind " + string(rs.LBKind)
			}
			if rs.InhibitOnFailure {
				extra += ", inhibit_on_failure"
			}
			fmt.Fprintf(w, "  real_server %s port %d: weight %d%s\n", rs.Addr, rs.Port, rs.Weight, extra)
			if len(rs.Checkers) == 0 {
				fmt.Fprintln(w, "    no checker: always up")
			}
			for _, c := range rs.Checkers {
				fmt.Fprintf(w, "    %s\n", describeChecker(c))
			}
		}
	}
}

func joinVIPs(vips []config.VirtualAddress) string {
	if len(vips) == 0 {
		return "(none)"
	}
	parts := make([]string, len(vips))
	for i, v := range vips {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}

func writeNotify(w io.Writer, indent string, n config.Notify) {
	for _, e := range []struct {
		name string
		c    *config.Command
	}{
		{"notify_master", n.Master}, {"notify_backup", n.Backup}, {"notify_fault", n.Fault},
		{"notify_stop", n.Stop}, {"notify", n.Any}, {"notify_master_rx_lower_pri", n.MasterRxLowerPri},
	} {
		if e.c != nil {
			fmt.Fprintf(w, "%s%s: %s\n", indent, e.name, e.c.Cmd)
		}
	}
}

func describeChecker(c *config.Checker) string {
	var b strings.Builder
	b.WriteString(string(c.Type))
	switch c.Type {
	case config.MiscCheck:
		if c.Misc != nil && c.Misc.Path != nil {
			fmt.Fprintf(&b, " %q timeout %s", c.Misc.Path.Cmd, secs(c.Misc.Timeout))
		}
	case config.PingCheck:
		fmt.Fprintf(&b, " %s", c.Target.Addr())
	default:
		fmt.Fprintf(&b, " %s", c.Target)
	}
	if c.HTTP != nil {
		for _, u := range c.HTTP.URLs {
			fmt.Fprintf(&b, " url %s", u.Path)
		}
	}
	fmt.Fprintf(&b, ", every %s, connect_timeout %s, retry %d, delay_before_retry %s",
		secs(c.DelayLoop), secs(c.ConnectTimeout), c.Retry, secs(c.DelayBeforeRetry))
	return b.String()
}

// checkReport is the --json output.
type checkReport struct {
	File     string             `json:"file"`
	Valid    bool               `json:"valid"`
	Errors   config.Diagnostics `json:"errors"`
	Warnings config.Diagnostics `json:"warnings"`
	Config   *config.Config     `json:"config"`
}

func writeCheckJSON(w io.Writer, file string, valid bool, cfg *config.Config, diags config.Diagnostics) error {
	rep := checkReport{
		File:     file,
		Valid:    valid,
		Errors:   diags.Errors(),
		Warnings: diags.Warnings(),
		Config:   cfg,
	}
	if rep.Errors == nil {
		rep.Errors = config.Diagnostics{}
	}
	if rep.Warnings == nil {
		rep.Warnings = config.Diagnostics{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(readableJSON(reflect.ValueOf(rep)))
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	textMarshal  = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshal  = reflect.TypeFor[json.Marshaler]()
)

// readableJSON converts v into plain maps and slices for encoding/json,
// following the json tags, with two changes for people reading it:
// durations are seconds (as keepalived.conf writes them) and byte slices
// are hex.
func readableJSON(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	t := v.Type()
	switch {
	case t == durationType:
		return time.Duration(v.Int()).Seconds()
	case t.Implements(jsonMarshal) || t.Implements(textMarshal):
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return nil
		}
		return v.Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return readableJSON(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return hex.EncodeToString(v.Bytes())
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = readableJSON(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = readableJSON(v.MapIndex(k))
		}
		return out
	case reflect.Struct:
		var out object
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if (strings.Contains(opts, "omitempty") && isEmpty(fv)) || (strings.Contains(opts, "omitzero") && fv.IsZero()) {
				continue
			}
			out = append(out, field{name, readableJSON(fv)})
		}
		return out
	}
	return v.Interface()
}

// object is a JSON object that keeps its fields in struct order.
type object []field

type field struct {
	name  string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(f.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return append(buf, '}'), nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	}
	return false
}
