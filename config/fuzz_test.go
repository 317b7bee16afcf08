package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
)

// fuzzFS holds files fuzzed configurations can include, among them one that
// includes itself and one with a multiline definition.
var fuzzFS = fstest.MapFS{
	"inc.conf":   {Data: []byte("vrrp_script s {\n script /bin/true\n}\n$M= \\\n a 1 \\\n b { c }\n")},
	"self.conf":  {Data: []byte("include self.conf\n")},
	"d/x.conf":   {Data: []byte("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK\n }\n}\n")},
	"d/y.conf":   {Data: []byte("include ../inc.conf\n@main $P=200\n")},
	"empty.conf": {Data: nil},
}

var fuzzSnippets = []string{
	"vrrp_script httpd_check{\t#x\n script \"/bin/check\"\n}\n",
	"real_server 1.1.1.1 80 { weight 1 }\n",
	"include *.conf\ninclude d/{x,y}.conf\nincluder nothing\n",
	"$A=$A $A\nv $A\n",
	"$M= \\\n x \\\n $M\n$M\n",
	"~SEQ(I, 1, 5) ~SEQ(J, 1, 5) v $I.$J\n~LST({A,B},{1,2},{3}) w $A $B\n",
	"@main a\n@^main b\n@ c\n@^\n",
	"\"unterminated\nx \"{\" }\n{\n}}\n",
	"virtual_server_group G {\n 10.0.0.1-9 80\n fe80::1-ff 80\n fwmark 5 inet6\n 10.1.0.0/30 80\n}\nvirtual_server group G {\n}\n",
	"vrrp_instance I {\n interface e\n virtual_router_id 1\n virtual_ipaddress { ::1/129 10.0.0.1/24 brd + dev e scope 300 }\n advert_int 1e308\n unicast_peer { 1.2.3.4 min_ttl }\n}\n",
	"vrrp_sync_group G {\n group { A B A }\n global_tracking\n}\n",
	"virtual_server fwmark 1 {\n persistence_granularity 255.255.0.255\n real_server ::1 {\n  HTTP_GET { url { path / status_code 1-2 digest 00 } }\n  UDP_CHECK { payload 1 2 3 require_reply xX }\n  MISC_CHECK { misc_path \"a 'b\" user u:g }\n }\n}\n",
	"${_RANDOM 1 99999999999} ${_ENV HOME} ${_PWD} ${_INSTANCE}\n",
	"track_file f {\n file \"/run/f\"\n weight -5 reverse\n init_file -1 overwrite\n}\nvrrp_track_file f {\n file x\n}\nvrrp_instance I {\n interface e\n virtual_router_id 1\n priority 255\n track_file {\n  f weight 2 noreverse\n  f\n  g weight\n }\n}\n",
}

// FuzzParse feeds arbitrary text to the reader: it must not panic or hang
// (includes and definitions are bounded), every diagnostic must have a
// position, the error must agree with the diagnostics, and reading must be
// deterministic.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSnippets {
		f.Add([]byte(s))
	}
	var files []string
	for _, pattern := range []string{"testdata/*/*.conf", "testdata/include/*/*"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	// The seed and keepalived's samples, when they are there.
	for _, pattern := range []string{"../../shared/seed/*.conf", "../../shared/corpus/keepalived-samples/*"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		opts := LoadOptions{ConfigID: "main", FS: fuzzFS, Getenv: func(string) string { return "env" }, lineBudget: 20000}
		cfg, diags, err := Parse("fuzz.conf", src, opts)
		if cfg == nil {
			t.Fatal("nil config")
		}
		if (err != nil) != diags.HasErrors() {
			t.Fatalf("err %v disagrees with diagnostics %v", err, diags)
		}
		for _, d := range diags {
			if d.Pos.File == "" || d.Pos.Line < 1 || d.Pos.Col < 1 || d.Msg == "" {
				t.Fatalf("diagnostic without a position or message: %#v", d)
			}
		}
		_, again, _ := Parse("fuzz.conf", src, opts)
		if !slices.Equal(diags, again) {
			t.Fatalf("reading twice differs:\n%v\n%v", diags, again)
		}
	})
}
