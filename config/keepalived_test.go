package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestAgainstKeepalived reads configurations with both xkeep and the real
// keepalived (2.2.7 here), and compares what each made of every VRRP
// instance: keepalived runs its VRRP process in a scratch network
// namespace holding the configuration's interfaces, and dumps its
// resolved configuration on SIGUSR1 (/tmp/keepalived.data, which a private
// mount namespace redirects to the test's directory). The comparison covers
// the values keepalived derives as well as the written ones: defaults,
// priority from state, version from family, advert_int rounding, strict
// mode adjustments, conditional lines and $NAME expansion.
func TestAgainstKeepalived(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tool := range []string{"keepalived", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testnet.InCI() {
				t.Fatalf("%s not installed (test/deps.sh installs it): %v", tool, err)
			}
			t.Skipf("skipping: %s not installed: %v", tool, err)
		}
	}
	type run struct{ file, id string }
	runs := []run{
		{"testdata/seed/master.conf", ""},
		{"testdata/seed/backup.conf", ""},
		{"testdata/include/main.conf", ""},
		{"testdata/conditional/node.conf", "main"},
		{"testdata/conditional/node.conf", "backup"},
		{"testdata/definitions/defs.conf", ""},
		{"testdata/adjusted/vrrp.conf", ""},
		{"testdata/trackfile/trackfile.conf", ""},
	}
	if shared, err := testnet.FindShared(); err == nil {
		for _, f := range []string{"master.conf", "backup.conf", "master-lvs.conf", "backup-lvs.conf"} {
			runs = append(runs, run{filepath.Join(shared, "seed", f), ""})
		}
		samples := filepath.Join(shared, "corpus", "keepalived-samples")
		for _, f := range []string{
			"keepalived.conf.SSL_GET", "keepalived.conf.default", "keepalived.conf.sample",
			"keepalived.conf.track_interface", "keepalived.conf.vrrp", "keepalived.conf.vrrp.localcheck",
			"keepalived.conf.vrrp.routes", "keepalived.conf.vrrp.rules",
			"keepalived.conf.vrrp.scripts", "keepalived.conf.vrrp.static_ipaddress", "keepalived.conf.vrrp.sync",
		} {
			runs = append(runs, run{filepath.Join(samples, f), ""})
		}
		// Not compared: keepalived.conf.conditional_conf makes keepalived
		// enter network namespaces named high or low, and
		// keepalived.conf.vrrp.lvs_syncd makes it start IPVS (not in every
		// kernel).
	} else if testnet.InCI() {
		t.Fatalf("in CI: %v", err)
	} else {
		t.Logf("comparing testdata only: %v", err)
	}
	for _, r := range runs {
		t.Run(filepath.Base(r.file)+"/"+r.id, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := Load(r.file, LoadOptions{ConfigID: r.id})
			if err != nil {
				t.Fatal(err)
			}
			dump := keepalivedDump(t, r.file, r.id, interfacesOf(cfg))
			theirs := parseDump(dump)
			var names []string
			for _, in := range cfg.Instances {
				names = append(names, in.Name)
			}
			if got := sortedKeys(theirs); !slices.Equal(got, sortedCopy(names)) {
				t.Fatalf("keepalived has instances %q, xkeep %q", got, names)
			}
			for _, in := range cfg.Instances {
				ours := describeForDump(in)
				for _, k := range sortedKeys(ours) {
					if theirs[in.Name][k] != ours[k] {
						t.Errorf("%s %s: keepalived %q, xkeep %q", in.Name, k, theirs[in.Name][k], ours[k])
					}
				}
			}
		})
	}
}

// interfacesOf lists the interfaces a configuration names, plus eth0-eth3
// that keepalived's samples use in static blocks.
func interfacesOf(cfg *Config) []string {
	names := []string{"eth0", "eth1", "eth2", "eth3"}
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, in := range cfg.Instances {
		add(in.Interface)
		for _, v := range append(slices.Clone(in.VIPs), in.ExcludedVIPs...) {
			add(v.Dev)
		}
		for _, ti := range in.TrackInterfaces {
			add(ti.Name)
		}
	}
	return names
}

// keepalivedDump runs keepalived's VRRP process on file and returns its
// configuration dump.
func keepalivedDump(t *testing.T, file, id string, ifaces []string) string {
	ns := testnet.NewNamespace(t, "kc")
	peer := testnet.NewNamespace(t, "kp")
	for i, name := range ifaces {
		testnet.VethPair(t, ns, name, peer, fmt.Sprintf("p%d", i))
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// keepalived dumps its configuration to /tmp/keepalived.data: give it
	// a /tmp of its own (dir) in a mount namespace. The real /tmp stays
	// visible at /tmp/realtmp, for a checkout (and so the file) under /tmp.
	if rest, ok := strings.CutPrefix(abs, "/tmp/"); ok {
		abs = "/tmp/realtmp/" + rest
	}
	script := `mkdir -p "$0/realtmp" && mount --bind /tmp "$0/realtmp" && mount --rbind "$0" /tmp && exec keepalived -f "$1" -P -n -l --dont-fork -p /tmp/k.pid -r /tmp/v.pid "$@"`
	args := []string{"--mount", "--propagation", "private", "sh", "-c", script, dir, abs}
	if id != "" {
		args = append(args, "-i", id)
	}
	cmd := exec.Command("unshare", args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	proc, err := ns.StartProcess(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let keepalived remove what it added before the namespace goes.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-proc.Done():
		case <-time.After(5 * time.Second):
		}
	})
	dataFile := filepath.Join(dir, "keepalived.data")
	var dump string
	testnet.Eventually(t, 20*time.Second, "keepalived dumps its configuration", func() error {
		if !proc.Running() {
			t.Fatalf("keepalived exited: %v\n%s", proc.Wait(), log.String())
		}
		data, err := os.ReadFile(dataFile)
		if err == nil && strings.Contains(string(data), "------< Interfaces >------") {
			if string(data) == dump {
				return nil // complete: the same on two reads
			}
			dump = string(data)
			return errors.New("dump still growing")
		}
		pidText, err := os.ReadFile(filepath.Join(dir, "v.pid"))
		if err != nil {
			return fmt.Errorf("no VRRP process yet: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
		if err != nil {
			return err
		}
		if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		return errors.New("asked for a dump")
	})
	return dump
}

// dumpKeys are the instance lines of keepalived's dump that xkeep's model
// must reproduce.
var dumpKeys = []string{
	"Interface", "VRRP Version", "Virtual Router ID", "Priority", "Advert interval",
	"Gratuitous ARP delay", "Gratuitous ARP repeat", "Gratuitous ARP refresh",
	"Gratuitous ARP refresh repeat", "Gratuitous ARP lower priority delay",
	"Gratuitous ARP lower priority repeat", "Down timer adverts",
	"Send advert after receive lower priority advert",
	"Send advert after receive higher priority advert",
	"Accept", "Preempt", "Authentication type", "Password", "Using src_ip", "Unicast TTL",
}

// parseDump reads the VRRP Topology section: for each instance the
// "Key = value" lines named in dumpKeys, its address lists as "Virtual IP",
// "Virtual IP Excluded" and "Unicast Peer" (one entry a line, keeping
// address/len, dev and label), and its "Tracked files" ("NAME, weight N
// [reverse]" a line).
func parseDump(dump string) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur map[string]string
	list := ""
	inTopology := false
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "------<") {
			inTopology = strings.Contains(line, "VRRP Topology")
			cur = nil
			continue
		}
		if !inTopology {
			continue
		}
		if name, ok := strings.CutPrefix(line, " VRRP Instance = "); ok {
			cur = map[string]string{}
			out[name] = cur
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "     "):
			switch list {
			case "":
			case "Tracked files":
				cur[list] += strings.TrimSpace(line) + "\n"
			default:
				cur[list] += addrEntry(strings.Fields(line)) + "\n"
			}
			continue
		case strings.HasPrefix(line, "   Virtual IP Excluded"):
			list = "Virtual IP Excluded"
			continue
		case strings.HasPrefix(line, "   Virtual IP ("):
			list = "Virtual IP"
			continue
		case strings.HasPrefix(line, "   Unicast Peer"):
			list = "Unicast Peer"
			continue
		case strings.HasPrefix(line, "   Tracked files"):
			list = "Tracked files"
			continue
		}
		list = ""
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if ok && slices.Contains(dumpKeys, k) {
			cur[k] = v
		}
	}
	return out
}

// addrEntry keeps the address, dev, label and TTL words of an address line.
func addrEntry(f []string) string {
	if len(f) == 0 {
		return ""
	}
	out := []string{f[0]}
	for i := 1; i+1 < len(f); i++ {
		switch f[i] {
		case "dev", "label", "min_ttl", "max_ttl":
			out = append(out, f[i], f[i+1])
		}
	}
	return strings.Join(out, " ")
}

// describeForDump renders an instance the way keepalived's dump shows it.
func describeForDump(in *VRRPInstance) map[string]string {
	onOff := func(b bool) string {
		if b {
			return "enabled"
		}
		return "disabled"
	}
	m := map[string]string{
		"Interface":                                        in.Interface,
		"VRRP Version":                                     strconv.Itoa(in.Version),
		"Virtual Router ID":                                strconv.Itoa(in.VRID),
		"Priority":                                         strconv.Itoa(in.Priority),
		"Gratuitous ARP delay":                             strconv.Itoa(int(in.GarpMasterDelay / time.Second)),
		"Gratuitous ARP repeat":                            strconv.Itoa(in.GarpMasterRepeat),
		"Gratuitous ARP refresh":                           strconv.Itoa(int(in.GarpMasterRefresh / time.Second)),
		"Gratuitous ARP refresh repeat":                    strconv.Itoa(in.GarpMasterRefreshRepeat),
		"Gratuitous ARP lower priority delay":              strconv.Itoa(int(in.GarpLowerPrioDelay / time.Second)),
		"Gratuitous ARP lower priority repeat":             strconv.Itoa(in.GarpLowerPrioRepeat),
		"Down timer adverts":                               strconv.Itoa(in.DownTimerAdverts),
		"Send advert after receive lower priority advert":  strconv.FormatBool(!in.LowerPrioNoAdvert),
		"Send advert after receive higher priority advert": strconv.FormatBool(in.HigherPrioSendAdvert),
		"Accept":       onOff(in.Accept),
		"Preempt":      onOff(!in.Nopreempt),
		"Using src_ip": "(none)",
	}
	if in.Version == 2 {
		m["Advert interval"] = fmt.Sprintf("%d sec", in.AdvertInterval/time.Second)
	} else {
		m["Advert interval"] = fmt.Sprintf("%d milli-sec", in.AdvertInterval/time.Millisecond)
	}
	if in.Version == 2 {
		switch {
		case in.Auth == nil:
			m["Authentication type"] = "none"
		case in.Auth.Type == AuthPass:
			m["Authentication type"] = "SIMPLE_PASSWORD"
			m["Password"] = in.Auth.Pass
		case in.Auth.Type == AuthAH:
			m["Authentication type"] = "IPSEC_AH"
		}
	}
	if in.SrcIP.IsValid() {
		m["Using src_ip"] = in.SrcIP.String() + " (from configuration)"
	}
	if in.Unicast() {
		m["Unicast TTL"] = strconv.Itoa(in.UnicastTTL)
		for _, p := range in.UnicastPeers {
			m["Unicast Peer"] += fmt.Sprintf("%s min_ttl %d max_ttl %d\n", p.Addr, p.MinTTL, p.MaxTTL)
		}
	}
	// Always set, so a file tracked by one side only shows.
	m["Tracked files"] = ""
	for _, tf := range in.TrackFiles {
		reverse := ""
		if tf.Reverse {
			reverse = " reverse"
		}
		m["Tracked files"] += fmt.Sprintf("%s, weight %d%s\n", tf.Name, tf.Weight, reverse)
	}
	addrs := func(vs []VirtualAddress) string {
		var s string
		for _, v := range vs {
			a := v.Prefix.String()
			if v.Prefix.IsSingleIP() {
				a = v.Addr().String()
			}
			dev := v.Dev
			if dev == "" {
				dev = in.Interface
			}
			e := a + " dev " + dev
			if v.Label != "" {
				e += " label " + v.Label
			}
			s += e + "\n"
		}
		return s
	}
	if s := addrs(in.VIPs); s != "" {
		m["Virtual IP"] = s
	}
	if s := addrs(in.ExcludedVIPs); s != "" {
		m["Virtual IP Excluded"] = s
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
