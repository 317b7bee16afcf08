package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// conf joins lines into a configuration: line N of the result is lines[N-1].
func conf(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// vi wraps body lines in a valid vrrp_instance (lines 1-4 and the last):
// the first body line is line 5.
func vi(body ...string) string {
	return conf(append([]string{
		"vrrp_instance VI_1 {",
		"    interface eth0",
		"    virtual_router_id 51",
		"    virtual_ipaddress { 192.168.1.10 }",
	}, append(body, "}")...)...)
}

// vs wraps body lines in a virtual_server that every dataplane accepts: the
// first body line is line 4.
func vs(body ...string) string {
	return conf(append([]string{
		"virtual_server 192.168.1.10 80 {",
		"    lb_kind DR",
		"    lb_algo rr",
	}, append(body, "}")...)...)
}

func diagStrings(ds Diagnostics) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// TestDiagnostics checks each class of error and warning: the exact
// file:line:col and message, and nothing else reported.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts LoadOptions
		want []string
	}{
		// VRRP values.
		{"vrid too big", vi("    virtual_router_id 256"),
			LoadOptions{}, []string{`t.conf:5:23: invalid virtual_router_id "256" (want 1-255)`}},
		{"vrid zero", vi("    virtual_router_id 0"),
			LoadOptions{}, []string{`t.conf:5:23: invalid virtual_router_id "0" (want 1-255)`}},
		{"vrid not a number", vi("    virtual_router_id fifty"),
			LoadOptions{}, []string{`t.conf:5:23: invalid virtual_router_id "fifty" (want 1-255)`}},
		{"vrid missing", conf("vrrp_instance VI_1 {", "    interface eth0", "    virtual_ipaddress { 192.168.1.10 }", "}"),
			LoadOptions{}, []string{`t.conf:1:1: vrrp_instance VI_1 has no virtual_router_id (want 1-255)`}},
		{"priority zero", vi("    priority 0"),
			LoadOptions{}, []string{`t.conf:5:14: invalid priority "0" (want 1-255)`}},
		{"priority too big", vi("    priority 256"),
			LoadOptions{}, []string{`t.conf:5:14: invalid priority "256" (want 1-255)`}},
		{"priority missing value", vi("    priority"),
			LoadOptions{}, []string{`t.conf:5:5: priority needs a value (want 1-255)`}},
		{"state", vi("    state master"),
			LoadOptions{}, []string{`t.conf:5:11: unknown state "master" (want MASTER or BACKUP)`}},
		{"advert_int zero", vi("    advert_int 0"),
			LoadOptions{}, []string{`t.conf:5:16: invalid advert_int "0" (want seconds > 0)`}},
		{"advert_int v2 rounding", vi("    advert_int 0.4"),
			LoadOptions{}, []string{`t.conf:5:5: warning: vrrp_instance VI_1: VRRPv2 advert_int is in whole seconds; 0.4 rounded to 1`}},
		{"advert_int v3 fine", vi("    version 3", "    advert_int 0.01"), LoadOptions{}, nil},
		{"advert_int v3 rounding", vi("    version 3", "    advert_int 0.015"),
			LoadOptions{}, []string{`t.conf:6:5: warning: vrrp_instance VI_1: VRRPv3 advert_int is in hundredths of a second; 0.015 rounded to 0.02`}},
		{"version", vi("    version 4"),
			LoadOptions{}, []string{`t.conf:5:13: invalid version "4" (want 2 or 3)`}},
		{"no interface", conf("vrrp_instance VI_1 {", "    virtual_router_id 51", "    virtual_ipaddress { 192.168.1.10 }", "}"),
			LoadOptions{}, []string{`t.conf:1:1: vrrp_instance VI_1 has no interface (add interface IFNAME, or unicast_peer)`}},
		{"instance without name", conf("vrrp_instance {", "}"),
			LoadOptions{}, []string{`t.conf:1:1: vrrp_instance needs a name: vrrp_instance NAME { ... }`}},

		// Authentication.
		{"auth_pass longer than 8", vi("    authentication {", "        auth_type PASS", "        auth_pass 123456789", "    }"),
			LoadOptions{}, []string{`t.conf:7:19: warning: auth_pass is longer than 8 characters; only the first 8 ("12345678") are used, as keepalived does`}},
		{"auth_type", vi("    authentication {", "        auth_type PASSWORD", "        auth_pass 1234", "    }"),
			LoadOptions{}, []string{
				`t.conf:5:5: authentication needs auth_type (want PASS or AH)`,
				`t.conf:6:19: unknown auth_type "PASSWORD" (want PASS or AH)`,
			}},
		{"auth AH", vi("    authentication {", "        auth_type AH", "        auth_pass 1234", "    }"),
			LoadOptions{}, []string{`t.conf:6:19: warning: auth_type AH: recognised but not supported by xkeep (use PASS, or no authentication)`}},

		// Addresses and prefixes.
		{"vip address", vi("    virtual_ipaddress {", "        192.168.1.300", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: invalid virtual_ipaddress address "192.168.1.300" (want ADDR or ADDR/LEN, e.g. 192.168.1.10/24)`}},
		{"vip prefix", vi("    virtual_ipaddress {", "        192.168.1.11/33", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: invalid virtual_ipaddress address "192.168.1.11/33" (want ADDR or ADDR/LEN, e.g. 192.168.1.10/24)`}},
		{"vip option", vi("    virtual_ipaddress {", "        192.168.1.11/24 device eth1", "    }"),
			LoadOptions{}, []string{`t.conf:6:25: unknown virtual_ipaddress option "device" (want brd, dev, scope, label, peer, home, -nodad, mngtmpaddr, noprefixroute, autojoin, no_track, preferred_lft)`}},
		{"vip option value", vi("    virtual_ipaddress {", "        192.168.1.11/24 dev", "    }"),
			LoadOptions{}, []string{`t.conf:6:25: virtual_ipaddress option dev needs a value (want an interface name)`}},
		{"vip families", vi("    virtual_ipaddress {", "        2001:db8::1", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: vrrp_instance VI_1: virtual_ipaddress mixes IPv4 and IPv6 (2001:db8::1 is not inet; put it in virtual_ipaddress_excluded or another instance)`}},
		{"unicast peer", vi("    unicast_peer {", "        10.0.0.256", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: invalid unicast_peer address "10.0.0.256" (want an IPv4 or IPv6 address)`}},
		{"src ip", vi("    unicast_src_ip 10.0.0"),
			LoadOptions{}, []string{`t.conf:5:20: invalid unicast_src_ip "10.0.0" (want an IPv4 or IPv6 address)`}},
		{"real server address", vs("    real_server 192.168.2.x 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:17: invalid real_server address "192.168.2.x" (want ADDR [PORT])`}},

		// LVS values.
		{"lb_algo", vs("    lb_algo wrrr", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:13: unknown lb_algo "wrrr" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf, twos)`}},
		{"lb_kind", vs("    lb_kind DSR", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:13: unknown lb_kind "DSR" (want NAT, DR or TUN)`}},
		{"protocol", vs("    protocol ICMP", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:14: unknown protocol "ICMP" (want TCP, UDP or SCTP)`}},
		{"vs port", conf("virtual_server 192.168.1.10 http {", "}"),
			LoadOptions{}, []string{`t.conf:1:29: invalid virtual_server port "http" (want 1-65535; block skipped)`}},
		{"vs without port", conf("virtual_server 192.168.1.10 {", "    lb_kind DR", "    lb_algo rr", "    real_server 192.168.2.1 80 {", "    }", "}"),
			LoadOptions{}, []string{`t.conf:1:1: virtual_server 192.168.1.10 has no port (a port can only be left out of a persistent service; add the port or persistence_timeout)`}},
		{"persistence_granularity", vs("    persistence_granularity 255.0.255.0", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:29: persistence_granularity 255.0.255.0 is not a contiguous netmask (want e.g. 255.255.255.0)`}},
		{"checker port", conf("virtual_server fwmark 1 {", "    lb_algo rr", "    real_server 192.168.2.1 {", "        TCP_CHECK {", "        }", "    }", "}"),
			LoadOptions{Dataplane: DataplaneIPVS}, []string{
				`t.conf:4:9: TCP_CHECK for real_server 192.168.2.1 has no port to check (add connect_port)`,
			}},
		{"real server family", vs("    real_server 2001:db8::2 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:5: real_server 2001:db8::2 is not inet like its virtual server (only lb_kind TUN may mix families)`}},
		{"http_get without url", vs("    real_server 192.168.2.1 80 {", "        HTTP_GET {", "            connect_timeout 3", "        }", "    }"),
			LoadOptions{}, []string{`t.conf:5:9: HTTP_GET has no url block (want url { path /... })`}},
		{"misc_check without path", vs("    real_server 192.168.2.1 80 {", "        MISC_CHECK {", "            user nobody", "        }", "    }"),
			LoadOptions{}, []string{`t.conf:5:9: MISC_CHECK has no misc_path (want misc_path /path/to/script)`}},
		{"digest", vs("    real_server 192.168.2.1 80 {", "        HTTP_GET {", "            url {", "                path /", "                digest xyz", "            }", "        }", "    }"),
			LoadOptions{}, []string{`t.conf:8:24: invalid digest "xyz" (want an MD5 digest, 32 hex digits (genhash prints it))`}},
		{"status_code", vs("    real_server 192.168.2.1 80 {", "        HTTP_GET {", "            url {", "                path /", "                status_code 200-99", "            }", "        }", "    }"),
			LoadOptions{}, []string{`t.conf:8:29: invalid status_code "200-99" (want a code or range within 100-599, such as 200 or 200-299)`}},

		// Duplicates and references.
		{"duplicate instance", vi() + conf("vrrp_instance VI_1 {", "}"),
			LoadOptions{}, []string{`t.conf:6:15: vrrp_instance "VI_1" is already defined at t.conf:1:1`}},
		{"duplicate vrid", vi() + conf("vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 51", "    virtual_ipaddress { 192.168.1.11 }", "}"),
			LoadOptions{}, []string{`t.conf:8:5: virtual_router_id 51 on eth0 (inet) is already used by vrrp_instance VI_1 at t.conf:1:1 (want a VRID unique per interface and family)`}},
		{"same vrid on another interface", vi() + conf("vrrp_instance VI_2 {", "    interface eth1", "    virtual_router_id 51", "    virtual_ipaddress { 192.168.1.11 }", "}"),
			LoadOptions{}, nil},
		{"same vrid in another family", vi() + conf("vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 51", "    virtual_ipaddress { fe80::1 }", "}"),
			LoadOptions{}, nil},
		{"undefined vrrp_script", vi("    track_script {", "        chk_http", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: vrrp_instance VI_1: track_script "chk_http" is not a defined vrrp_script (none is defined)`}},
		{"vrrp_script without script", conf("vrrp_script chk {", "    interval 2", "}"),
			LoadOptions{}, []string{`t.conf:1:1: vrrp_script "chk" has no script (keepalived drops it; add script "/path/to/check")`}},
		// track_file: the top-level block, and an instance's references.
		{"track_file without file", conf("track_file tf {", "    weight 2", "}") + vi(),
			LoadOptions{}, []string{`t.conf:1:1: track_file "tf" has no file (keepalived drops it; add file "/path/to/file")`}},
		{"track_file file twice", conf("track_file tf {", "    file /run/a", "    file /run/b", "}") + vi(),
			LoadOptions{}, []string{`t.conf:3:5: warning: file already set at t.conf:2:5 (this one is ignored, as keepalived ignores it)`}},
		{"track_file weight out of range", conf("track_file tf {", "    file /run/tf", "    weight 2147483648", "}") + vi(),
			LoadOptions{}, []string{`t.conf:3:12: invalid weight "2147483648" for weight (want weight -2147483647..2147483647 [reverse])`}},
		{"track_file init_file value", conf("track_file tf {", "    file /run/tf", "    init_file 12x overwrite", "}") + vi(),
			LoadOptions{}, []string{`t.conf:3:15: invalid init_file value "12x" (want an integer from -2147483648 to 2147483647)`}},
		{"track_file init_file option", conf("track_file tf {", "    file /run/tf", "    init_file 5 always", "}") + vi(),
			LoadOptions{}, []string{`t.conf:3:17: unknown init_file option "always" (want init_file [VALUE] [overwrite])`}},
		{"track_file unknown keyword", conf("track_file tf {", "    file /run/tf", "    path /run/tf", "}") + vi(),
			LoadOptions{}, []string{`t.conf:3:5: warning: unknown keyword "path" in track_file (ignored)`}},
		{"duplicate track_file", conf("track_file tf {", "    file /run/a", "}", "vrrp_track_file tf {", "    file /run/b", "}") + vi(),
			LoadOptions{}, []string{
				`t.conf:4:1: warning: vrrp_track_file is deprecated (use track_file)`,
				`t.conf:4:17: vrrp_track_file "tf" is already defined at t.conf:1:1`,
			}},
		{"undefined track_file", vi("    track_file {", "        tf", "    }"),
			LoadOptions{}, []string{`t.conf:6:9: vrrp_instance VI_1: track_file "tf" is not a defined track_file (none is defined)`}},
		{"undefined track_file among others", conf("track_file a {", "    file /run/a", "}", "track_file b {", "    file /run/b", "}") + vi("    track_file {", "        tf", "    }"),
			LoadOptions{}, []string{`t.conf:12:9: vrrp_instance VI_1: track_file "tf" is not a defined track_file (defined: a, b)`}},
		{"track_file defined after the instance", vi("    track_file {", "        tf", "    }") + conf("track_file tf {", "    file /run/tf", "}"),
			LoadOptions{}, []string{`t.conf:6:9: warning: vrrp_instance VI_1: track_file "tf" is defined after it, at t.conf:9:1 (keepalived ignores it there, xkeep does not; move the track_file block above)`}},
		{"track_file entry weight out of range", conf("track_file tf {", "    file /run/tf", "}") + vi("    track_file {", "        tf weight 255", "    }"),
			LoadOptions{}, []string{`t.conf:9:19: invalid weight "255" for tf (want weight -254..254 [reverse])`}},
		{"track_file entry option", conf("track_file tf {", "    file /run/tf", "}") + vi("    track_file {", "        tf wieght 2", "    }"),
			LoadOptions{}, []string{`t.conf:9:12: unexpected "wieght" after track_file tf (want NAME [weight N [reverse|noreverse]])`}},
		{"track_file tracked twice", conf("track_file tf {", "    file /run/tf", "}") + vi("    track_file {", "        tf", "        tf weight 2", "    }"),
			LoadOptions{}, []string{`t.conf:10:9: warning: vrrp_instance VI_1: track_file tf is already tracked at t.conf:9:9 (this one is ignored, as keepalived ignores it)`}},
		{"track_file on the address owner", conf("track_file tf {", "    file /run/tf", "}") + vi("    priority 255", "    track_file {", "        tf", "    }"),
			LoadOptions{}, []string{`t.conf:10:9: warning: vrrp_instance VI_1: priority 255 cannot be changed by track_file tf weight 1 (use weight 0, or a lower priority)`}},
		{"track_file weight 0 on the address owner", conf("track_file tf {", "    file /run/tf", "}") + vi("    priority 255", "    track_file {", "        tf weight 0", "    }"),
			LoadOptions{}, nil},
		{"track_file in a sync group", conf("track_file tf {", "    file /run/tf", "    weight -10", "}") + vi("    track_file {", "        tf", "    }") +
			conf("vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 52", "    virtual_ipaddress { 192.168.1.11 }", "}",
				"vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_2", "    }", "}"),
			LoadOptions{}, []string{`t.conf:10:9: warning: track_file tf weight -10 is ignored: VI_1 is in vrrp_sync_group G1 (add sync_group_tracking_weight to keep it)`}},
		{"track_file in a sync group with tracking weight", conf("track_file tf {", "    file /run/tf", "    weight -10", "}") + vi("    track_file {", "        tf", "    }") +
			conf("vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 52", "    virtual_ipaddress { 192.168.1.11 }", "}",
				"vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_2", "    }", "    sync_group_tracking_weight", "}"),
			LoadOptions{}, nil},
		{"undefined track_file on a sync group", vi() + conf("vrrp_instance VI_2 {", "    interface eth0", "    virtual_router_id 52", "    virtual_ipaddress { 192.168.1.11 }", "}",
			"vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_2", "    }", "    track_file {", "        tf", "    }", "}"),
			LoadOptions{}, []string{`t.conf:17:9: vrrp_sync_group G1: track_file "tf" is not a defined track_file (none is defined)`}},

		{"sync group member", vi() + conf("vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_9", "    }", "}"),
			LoadOptions{}, []string{
				`t.conf:6:1: warning: vrrp_sync_group G1 has only one instance (VI_1); a sync group is for two or more`,
				`t.conf:9:9: vrrp_sync_group G1: vrrp_instance "VI_9" is not defined`,
			}},
		{"undefined virtual_server_group", conf("virtual_server group VSG {", "    lb_kind DR", "    lb_algo rr", "    real_server 192.168.2.1 80 {", "    }", "}"),
			LoadOptions{}, []string{`t.conf:1:22: virtual_server group "VSG": no virtual_server_group has that name`}},

		// Unknown and unsupported keywords.
		{"unknown keyword", vi("    priorty 100"),
			LoadOptions{}, []string{`t.conf:5:5: warning: unknown keyword "priorty" in vrrp_instance (ignored)`}},
		{"unknown block skipped", conf("frobnicate {", "    virtual_router_id 999", "}") + vi(),
			LoadOptions{}, []string{`t.conf:1:1: warning: unknown keyword "frobnicate" at the top level (ignored with its block)`}},
		{"strict", vi("    priorty 100"),
			LoadOptions{Strict: true}, []string{`t.conf:5:5: unknown keyword "priorty" in vrrp_instance (ignored)`}},
		{"use_vmac", vi("    use_vmac"),
			LoadOptions{}, []string{`t.conf:5:5: warning: use_vmac: recognised but not supported by xkeep (the VIP is added to the interface itself)`}},
		{"lb_kind TUN on xdp", vs("    lb_kind TUN", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:5: warning: lb_kind TUN with --dataplane=xdp: not supported (the xdp dataplane forwards by MAC rewrite, DR only); use lb_kind DR, or --dataplane=ipvs`}},
		{"lb_kind TUN on ipvs", vs("    lb_kind TUN", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{Dataplane: DataplaneIPVS}, nil},
		{"lb_algo on xdp", vs("    lb_algo lblc", "    real_server 192.168.2.1 80 {", "    }"),
			LoadOptions{}, []string{`t.conf:4:5: warning: lb_algo lblc with --dataplane=xdp: not supported (want rr, wrr, lc, wlc, sh, mh); use --dataplane=ipvs`}},
		{"default lb_kind on xdp", conf("virtual_server 192.168.1.10 80 {", "    lb_algo rr", "    real_server 192.168.2.1 80 {", "    }", "}"),
			LoadOptions{}, []string{`t.conf:1:1: warning: lb_kind (default NAT) with --dataplane=xdp: not supported (the xdp dataplane forwards by MAC rewrite, DR only); use lb_kind DR, or --dataplane=ipvs`}},
		{"extra arguments", vi("    priority 100 200"),
			LoadOptions{}, []string{`t.conf:5:18: warning: priority: extra arguments ignored: 200`}},

		{"checker_rt_priority", conf("global_defs {", "    checker_rt_priority 50", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:5: warning: checker_rt_priority: recognised but not supported by xkeep (xkeep is one process whose health checks need no realtime thread; the vrrp_ settings place its VRRP thread)`}},

		// Process settings.
		{"vrrp_rt_priority too high", conf("global_defs {", "    vrrp_rt_priority 100", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:22: invalid vrrp_rt_priority "100" (want 1-99)`}},
		{"vrrp_priority out of range", conf("global_defs {", "    vrrp_priority -21", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:19: invalid vrrp_priority "-21" (want -20-19)`}},
		{"vrrp_cpu_affinity empty", conf("global_defs {", "    vrrp_cpu_affinity", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:5: vrrp_cpu_affinity needs at least one CPU number (want integers 0-1023)`}},
		{"vrrp_cpu_affinity not a number", conf("global_defs {", "    vrrp_cpu_affinity 0 one", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:25: invalid vrrp_cpu_affinity "one" (want a CPU number 0-1023)`}},
		{"vrrp_rlimit_rttime too small", conf("global_defs {", "    vrrp_rlimit_rttime 1", "}") + vi(),
			LoadOptions{}, []string{`t.conf:2:24: invalid vrrp_rlimit_rttime "1" (want an integer >= 2)`}},

		// Syntax.
		{"missing brace", "vrrp_instance VI_1 {\n    interface eth0\n",
			LoadOptions{}, []string{
				`t.conf:1:1: vrrp_instance VI_1 has no virtual_router_id (want 1-255)`,
				`t.conf:1:1: warning: vrrp_instance VI_1 has no virtual_ipaddress (add one, or no_virtual_ipaddress if that is intended)`,
				`t.conf:1:20: block "vrrp_instance" is not closed (missing '}')`,
			}},
		{"extra brace", vi() + "}\n",
			LoadOptions{}, []string{`t.conf:6:1: unexpected '}' (no block is open)`}},
		{"stray brace", "{\n    interface eth0\n}\n" + vi(),
			LoadOptions{}, []string{`t.conf:1:1: unexpected '{' (a block must follow its keyword, as in "vrrp_instance VI_1 {")`}},
		{"block needed", conf("vrrp_instance VI_1"),
			LoadOptions{}, []string{`t.conf:1:1: vrrp_instance needs a block: vrrp_instance ... { ... }`}},
		{"unterminated quote", vi(`    notify_master "/bin/notify master`),
			LoadOptions{}, []string{`t.conf:5:19: unterminated quoted string (add the closing ")`}},
		{"self-referencing definition", "$A=x $A\n" + vi("    priority $A"),
			LoadOptions{}, []string{`t.conf:6:14: $A keeps expanding (does a definition refer to itself?)`}},
		{"bad ~SEQ", "~SEQ(I, 1, 0, 5) x\n",
			LoadOptions{}, []string{`t.conf:1:1: invalid ~SEQ: step does not lead from start to end (want ~SEQ(VAR, START, STEP, END) TEXT)`}},

		// Includes.
		{"include without match", "include missing/*.conf\n" + vi(),
			LoadOptions{FS: fstest.MapFS{}}, []string{`t.conf:1:9: warning: include missing/*.conf: no file matches missing/*.conf`}},
		{"includer without match", "includer missing.conf\n" + vi(),
			LoadOptions{FS: fstest.MapFS{}}, []string{`t.conf:1:10: include missing.conf: no file matches missing.conf`}},
		{"include cycle", "include a.conf\n" + vi(),
			LoadOptions{FS: fstest.MapFS{"a.conf": {Data: []byte("include b.conf\n")}, "b.conf": {Data: []byte("include a.conf\n")}}},
			[]string{`b.conf:1:9: include cycle: a.conf includes itself`}},
		{"error in included file", "include a.conf\n" + vi(),
			LoadOptions{FS: fstest.MapFS{"a.conf": {Data: []byte("vrrp_script s {\n  script /bin/true\n  rise 0\n}\n")}}},
			[]string{`a.conf:3:8: invalid rise "0" (want an integer >= 1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, err := Parse("t.conf", []byte(tt.src), tt.opts)
			got := diagStrings(diags)
			if !slices.Equal(got, tt.want) {
				t.Errorf("diagnostics:\n%s\nwant:\n%s\nconfig:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"), tt.src)
			}
			if wantErr := diags.HasErrors(); (err != nil) != wantErr {
				t.Errorf("err = %v, want an error: %v", err, wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, does not wrap ErrInvalid", err)
			}
		})
	}
}

// TestAllErrorsReported checks that loading goes on after errors: every
// problem of a file is reported in one go.
func TestAllErrorsReported(t *testing.T) {
	_, diags, err := Load("testdata/invalid/broken.conf", LoadOptions{})
	want := []string{
		`testdata/invalid/broken.conf:5:23: invalid virtual_router_id "300" (want 1-255)`,
		`testdata/invalid/broken.conf:8:9: invalid virtual_ipaddress address "192.168.1.300" (want ADDR or ADDR/LEN, e.g. 192.168.1.10/24)`,
		`testdata/invalid/broken.conf:13:13: unknown lb_algo "wrrr" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf, twos)`,
	}
	if got := diagStrings(diags); !slices.Equal(got, want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load("testdata/no-such.conf", LoadOptions{})
	if err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "read testdata/no-such.conf") {
		t.Errorf("err = %v, want a read error", err)
	}
}

func TestVirtualServerGroupRanges(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		n           int
	}{
		{"192.168.200.3-10", "192.168.200.3", "192.168.200.10", 8},
		{"192.168.200.250-192.168.201.10", "192.168.200.250", "192.168.201.10", 17},
		{"192.168.202.8/29", "192.168.202.8", "192.168.202.15", 8},
		{"ae00::2-9", "ae00::2", "ae00::9", 8},
		{"ae00::2-1f", "ae00::2", "ae00::1f", 30},
		{"10.0.0.1", "10.0.0.1", "10.0.0.1", 1},
	}
	for _, tt := range tests {
		first, last, ok := parseRange(tt.in)
		if !ok || first.String() != tt.first || last.String() != tt.last {
			t.Errorf("parseRange(%q) = %v, %v, %v; want %s-%s", tt.in, first, last, ok, tt.first, tt.last)
			continue
		}
		n := 0
		for range (VSGEntry{First: first, Last: last}).Addrs() {
			n++
		}
		if n != tt.n {
			t.Errorf("%s has %d addresses, want %d", tt.in, n, tt.n)
		}
	}
	for _, bad := range []string{"10.0.0.9-3", "10.0.0.1-300", "10.0.0.1-::1", "fe80::1-x", "10.0.0.0/33"} {
		if _, _, ok := parseRange(bad); ok {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}
