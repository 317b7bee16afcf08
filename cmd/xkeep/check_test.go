package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xkeep/xkeep/internal/testnet"
)

const testdata = "../../config/testdata"

func check(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runCheck(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func wantContains(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

// seedSummary is what the summary of the seed's master.conf must say.
var seedSummary = []string{
	"valid (1 vrrp_instance, 1 virtual_server, 0 warnings)",
	"vrrp_instance VI_1\n",
	"state MASTER, vrid 51, priority 100, interface ens160, advert_int 1s, VRRPv2, auth PASS",
	"vips: 192.168.8.100/32",
	`track_script httpd_check: weight -20, runs "/scripts/check_h.sh" every 1s`,
	"notify_master: /scripts/notify.sh master 192.168.8.100",
	"virtual_server 192.168.8.100:80 TCP\n",
	"lb_algo rr, lb_kind DR, persistence 50s, delay_loop 6s",
	"real_server 192.168.8.130 port 80: weight 1\n    TCP_CHECK 192.168.8.130:80, every 6s, connect_timeout 3s, retry 3, delay_before_retry 3s",
	"real_server 192.168.8.131 port 80: weight 1\n    TCP_CHECK 192.168.8.131:80, every 6s, connect_timeout 3s, retry 3, delay_before_retry 3s",
}

func TestCheckSeed(t *testing.T) {
	files := map[string]string{"testdata": filepath.Join(testdata, "seed", "master.conf")}
	t.Run("testdata", func(t *testing.T) { checkSeedSummary(t, files["testdata"]) })
	t.Run("shared", func(t *testing.T) {
		shared := testnet.SharedDir(t)
		checkSeedSummary(t, filepath.Join(shared, "seed", "master.conf"))
		for _, f := range []string{"backup.conf", "master-lvs.conf", "backup-lvs.conf"} {
			code, stdout, stderr := check(t, "-f", filepath.Join(shared, "seed", f), "--strict")
			if code != 0 || stderr != "" {
				t.Errorf("%s: exit %d, stderr:\n%s", f, code, stderr)
			}
			wantContains(t, f, stdout, "vrid 51", "lb_algo rr, lb_kind DR, persistence 50s")
		}
	})
}

func checkSeedSummary(t *testing.T, file string) {
	code, stdout, stderr := check(t, "-f", file)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	wantContains(t, "summary", stdout, seedSummary...)

	// The file may also come as an argument, with flags after it.
	code, stdout2, _ := check(t, file, "--dataplane=ipvs")
	if code != 0 || stdout2 != stdout {
		t.Errorf("positional file: exit %d, output differs:\n%s", code, stdout2)
	}
}

func TestCheckJSON(t *testing.T) {
	code, stdout, stderr := check(t, "-f", filepath.Join(testdata, "seed", "master.conf"), "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var rep struct {
		Valid    bool  `json:"valid"`
		Errors   []any `json:"errors"`
		Warnings []any `json:"warnings"`
		Config   struct {
			Global struct {
				RouterID string `json:"router_id"`
			} `json:"global"`
			Instances []struct {
				Name      string  `json:"name"`
				State     string  `json:"state"`
				VRID      int     `json:"virtual_router_id"`
				Priority  int     `json:"priority"`
				AdvertInt float64 `json:"advert_int"`
				VIPs      []struct {
					Prefix string `json:"prefix"`
					Pos    struct {
						Line, Col int
					} `json:"pos"`
				} `json:"virtual_ipaddress"`
				TrackScripts []struct {
					Name   string `json:"name"`
					Weight int    `json:"weight"`
				} `json:"track_script"`
			} `json:"vrrp_instances"`
			VirtualServers []struct {
				Addr        string  `json:"addr"`
				Port        int     `json:"port"`
				LBAlgo      string  `json:"lb_algo"`
				LBKind      string  `json:"lb_kind"`
				Persistence float64 `json:"persistence_timeout"`
				RealServers []struct {
					Addr     string `json:"addr"`
					Checkers []struct {
						Type           string  `json:"type"`
						Target         string  `json:"target"`
						Retry          int     `json:"retry"`
						ConnectTimeout float64 `json:"connect_timeout"`
					} `json:"checkers"`
				} `json:"real_servers"`
			} `json:"virtual_servers"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if !rep.Valid || len(rep.Errors) != 0 || len(rep.Warnings) != 0 {
		t.Errorf("valid %v, errors %v, warnings %v", rep.Valid, rep.Errors, rep.Warnings)
	}
	c := rep.Config
	if c.Global.RouterID != "lb01" || len(c.Instances) != 1 || len(c.VirtualServers) != 1 {
		t.Fatalf("config = %+v", c)
	}
	in := c.Instances[0]
	if in.Name != "VI_1" || in.State != "MASTER" || in.VRID != 51 || in.Priority != 100 || in.AdvertInt != 1 ||
		len(in.VIPs) != 1 || in.VIPs[0].Prefix != "192.168.8.100/32" || in.VIPs[0].Pos.Line != 24 ||
		len(in.TrackScripts) != 1 || in.TrackScripts[0].Weight != -20 {
		t.Errorf("instance = %+v", in)
	}
	vs := c.VirtualServers[0]
	if vs.Addr != "192.168.8.100" || vs.Port != 80 || vs.LBAlgo != "rr" || vs.LBKind != "DR" || vs.Persistence != 50 || len(vs.RealServers) != 2 {
		t.Errorf("virtual server = %+v", vs)
	}
	for _, rs := range vs.RealServers {
		if len(rs.Checkers) != 1 || rs.Checkers[0].Type != "TCP_CHECK" || rs.Checkers[0].Retry != 3 ||
			rs.Checkers[0].ConnectTimeout != 3 || rs.Checkers[0].Target != rs.Addr+":80" {
			t.Errorf("real server = %+v", rs)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	file := filepath.Join(testdata, "invalid", "broken.conf")
	code, stdout, stderr := check(t, "-f", file)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout:\n%s", stdout)
	}
	want := file + `:5:23: invalid virtual_router_id "300" (want 1-255)
` + file + `:8:9: invalid virtual_ipaddress address "192.168.1.300" (want ADDR or ADDR/LEN, e.g. 192.168.1.10/24)
` + file + `:13:13: unknown lb_algo "wrrr" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo, ovf, twos)
` + file + `: invalid: 3 errors, 0 warnings
`
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}

	code, stdout, _ = check(t, "-f", file, "--json")
	var rep struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			Pos struct {
				File      string
				Line, Col int
			} `json:"pos"`
			Severity string `json:"severity"`
			Msg      string `json:"msg"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if code != 1 || rep.Valid || len(rep.Errors) != 3 {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	if e := rep.Errors[2]; e.Pos.File != file || e.Pos.Line != 13 || e.Pos.Col != 13 || e.Severity != "error" ||
		!strings.HasPrefix(e.Msg, `unknown lb_algo "wrrr"`) {
		t.Errorf("error = %+v", e)
	}
}

func TestCheckWarningsAndStrict(t *testing.T) {
	file := filepath.Join(t.TempDir(), "warn.conf")
	src := "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 7\n    use_vmac\n    virtual_ipaddress { 10.0.0.1 }\n}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	warning := file + ":4:5: warning: use_vmac: recognised but not supported by xkeep (the VIP is added to the interface itself)\n"
	code, stdout, stderr := check(t, "-f", file)
	if code != 0 || stderr != warning {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", code, stderr, warning)
	}
	wantContains(t, "summary", stdout, "valid (1 vrrp_instance, 0 virtual_servers, 1 warning)")

	code, _, stderr = check(t, "-f", file, "--strict")
	if want := strings.Replace(warning, "warning: ", "", 1) + file + ": invalid: 1 error, 0 warnings\n"; code != 1 || stderr != want {
		t.Errorf("--strict: exit %d, stderr:\n%s\nwant:\n%s", code, stderr, want)
	}
}

func TestCheckConfigID(t *testing.T) {
	file := filepath.Join(testdata, "conditional", "node.conf")
	for id, want := range map[string]string{
		"main":   "priority 200",
		"backup": "priority 100",
	} {
		code, stdout, stderr := check(t, "-f", file, "-i", id)
		if code != 0 || stderr != "" {
			t.Errorf("-i %s: exit %d, stderr:\n%s", id, code, stderr)
		}
		wantContains(t, "-i "+id, stdout, want)
	}
}

func TestCheckUsage(t *testing.T) {
	seed := filepath.Join(testdata, "seed", "master.conf")
	for _, args := range [][]string{
		{"--no-such-flag"},
		{seed, seed},
		{"-f", seed, seed},
		{"-f", seed, "--dataplane", "dpdk"},
	} {
		if code, _, stderr := check(t, args...); code != 2 || stderr == "" {
			t.Errorf("check %q: exit %d, want 2 with a message", args, code)
		}
	}
	code, _, stderr := check(t, "-f", filepath.Join(testdata, "no-such.conf"))
	if code != 1 || !strings.Contains(stderr, "no-such.conf") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestCheckSharedCorpus runs xkeep check on every keepalived sample: each
// is valid, warnings allowed.
func TestCheckSharedCorpus(t *testing.T) {
	shared := testnet.SharedDir(t)
	files, err := filepath.Glob(filepath.Join(shared, "corpus", "keepalived-samples", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		code, stdout, stderr := check(t, "-f", f, "-i", "high")
		if code != 0 {
			t.Errorf("%s: exit %d\n%s", filepath.Base(f), code, stderr)
		}
		wantContains(t, filepath.Base(f), stdout, ": valid (")
		if stderr != "" {
			t.Logf("%s warnings:\n%s", filepath.Base(f), stderr)
		}
	}
}
