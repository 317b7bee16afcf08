package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runRun(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestRunListsItsFlags: the lab and the unit file rely on these flags.
func TestRunListsItsFlags(t *testing.T) {
	code, _, help := run(t, "-h")
	if code != 2 {
		t.Errorf("-h exits %d", code)
	}
	for _, f := range []string{"f", "dataplane", "metrics-listen", "socket", "pin-dir", "xdp-mode", "log-format", "log-level", "config-id"} {
		if !strings.Contains(help, "  -"+f+" ") {
			t.Errorf("xkeep run -h lacks -%s:\n%s", f, help)
		}
	}
	for _, def := range []string{`(default "127.0.0.1:9650")`, `(default "xdp")`, `(default "auto")`, `(default "text")`, `(default "info")`} {
		if !strings.Contains(help, def) {
			t.Errorf("xkeep run -h lacks %s", def)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dataplane", "dpdk"}, `--dataplane "dpdk": want xdp or ipvs`},
		{[]string{"--xdp-mode", "fast"}, `--xdp-mode: unknown xdp mode "fast" (want native, generic or auto)`},
		{[]string{"--log-format", "xml"}, `--log-format: "xml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"keepalived.conf"}, `unexpected argument "keepalived.conf" (the configuration file goes after -f)`},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("xkeep run %v: exit %d, %q (want 2 and %q)", tc.args, code, errOut, tc.want)
		}
	}
}

// TestRunRejectsABrokenConfiguration: every error, with its position,
// and exit status 1, before anything starts.
func TestRunRejectsABrokenConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	src := "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n}\nvirtual_server 192.0.2.1 80 {\n    lb_algo nope\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "-f", path, "--socket", filepath.Join(t.TempDir(), "s.sock"), "--metrics-listen", "")
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{path + ":3:23: ", path + ":6:13: unknown lb_algo \"nope\""} {
		if !strings.Contains(errOut, "xkeep run: "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = run(t, "-f", filepath.Join(t.TempDir(), "missing.conf"), "--socket", filepath.Join(t.TempDir(), "s.sock"), "--metrics-listen", "")
	if code != 1 || !strings.Contains(errOut, "missing.conf: no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestNewLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("json", 0, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "k", "v")
	if !strings.HasPrefix(buf.String(), `{"time":`) || !strings.Contains(buf.String(), `"msg":"hello","k":"v"`) {
		t.Errorf("json log line %q", buf.String())
	}
}
