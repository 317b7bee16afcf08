package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// lex reads src as t.conf and renders each line as its tokens with their
// positions: word@line:col, quoted words in Go quotes, and the file name
// when it is not t.conf.
func lex(t *testing.T, src string, opts LoadOptions) ([]string, Diagnostics) {
	t.Helper()
	d := &diagSink{files: map[string]int{}}
	if opts.FS == nil {
		opts.FS = fstest.MapFS{}
	}
	lx := newLexer(opts.fileSystem(), &opts, d)
	lx.readMain("t.conf", []byte(src))
	var out []string
	for _, ln := range lx.out {
		parts := make([]string, len(ln))
		for i, tok := range ln {
			text := tok.Text
			if tok.Quoted {
				text = fmt.Sprintf("%q", text)
			}
			file := ""
			if tok.Pos.File != "t.conf" {
				file = tok.Pos.File + ":"
			}
			parts[i] = fmt.Sprintf("%s@%s%d:%d", text, file, tok.Pos.Line, tok.Pos.Col)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out, d.sorted()
}

func TestLexer(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts LoadOptions
		want []string
	}{
		{"words", "router_id  lb01\n", LoadOptions{}, []string{"router_id@1:1 lb01@1:12"}},
		{"comment after value", "router_id lb01 # the id\n", LoadOptions{}, []string{"router_id@1:1 lb01@1:11"}},
		{"bang comment", "! Configuration File\nweight 1 ! set weight\n", LoadOptions{}, []string{"weight@2:1 1@2:8"}},
		{"comment in quotes", "script \"/bin/check # x\" # comment\n", LoadOptions{}, []string{`script@1:1 "/bin/check # x"@1:8`}},
		{"escaped comment", "label a\\#b\n", LoadOptions{}, []string{"label@1:1 a#b@1:7"}},
		{"quote inside word", "a b\"c d\"e\n", LoadOptions{}, []string{`a@1:1 b@1:3 "c d"@1:4 e@1:9`}},
		{"empty quotes", "auth_pass \"\"\n", LoadOptions{}, []string{`auth_pass@1:1 ""@1:11`}},
		{"tabs and UTF-8", "\tpriority\t100\t\t#优先级\n\tlabel \"é\" dev x\n", LoadOptions{}, []string{
			"priority@1:2 100@1:11",
			// Columns count bytes: é takes two.
			`label@2:2 "é"@2:8 dev@2:13 x@2:17`,
		}},
		{"CRLF", "a 1\r\nb 2\r\n", LoadOptions{}, []string{"a@1:1 1@1:3", "b@2:1 2@2:3"}},
		{"brace glued to word", "vrrp_script httpd_check{\t\t#x\n}\n", LoadOptions{}, []string{
			"vrrp_script@1:1 httpd_check@1:13", "{@1:24", "}@2:1",
		}},
		{"block on one line", "real_server 1.1.1.1 80 { weight 1 }\n", LoadOptions{}, []string{
			"real_server@1:1 1.1.1.1@1:13 80@1:21", "{@1:24", "weight@1:26 1@1:33", "}@1:35",
		}},
		{"closing braces", "}}\n", LoadOptions{}, []string{"}@1:1", "}@1:2"}},
		{"brace in quotes", "notify \"{x}\"\n", LoadOptions{}, []string{`notify@1:1 "{x}"@1:8`}},

		// Conditional lines.
		{"conditional main", "@main a 1\n@backup b 2\n@^main c 3\n@^backup d 4\n@main\n", LoadOptions{ConfigID: "main"},
			[]string{"a@1:7 1@1:9", "d@4:10 4@4:12"}},
		{"conditional no id", "@main a 1\n@^main b 2\n", LoadOptions{}, []string{"b@2:8 2@2:10"}},
		{"conditional with tab", "@main\tpriority 200\n", LoadOptions{ConfigID: "main"}, []string{"priority@1:7 200@1:16"}},

		// Definitions.
		{"definition", "$IF=eth0\ninterface $IF\n", LoadOptions{}, []string{"interface@2:1 eth0@2:11"}},
		{"braced definition", "$N=1\nvirtual_router_id ${N}0\n", LoadOptions{}, []string{"virtual_router_id@2:1 10@2:19"}},
		// An undefined ${NAME} stays, and its braces split the line as
		// keepalived splits it.
		{"undefined stays", "$N=1\na $NX $UNDEF ${UNDEF} $N\n", LoadOptions{}, []string{
			"a@2:1 $NX@2:3 $UNDEF@2:7 $@2:14", "{@2:15", "UNDEF@2:16", "}@2:21", "1@2:23",
		}},
		{"no definitions, no change", "script \"echo $HOME\"\n", LoadOptions{}, []string{`script@1:1 "echo $HOME"@1:8`}},
		{"name needs an end", "$N=1\na $N.5 $N,5\n", LoadOptions{}, []string{"a@2:1 $N.5@2:3 1,5@2:8"}},
		{"expanded when used", "$A=${B}x\n$B=1\nv $A\n$B=2\nv $A\n", LoadOptions{}, []string{"v@3:1 1x@3:3", "v@5:1 2x@5:3"}},
		{"definition after conditional", "@main $P=240\n@backup $P=200\npriority $P\n", LoadOptions{ConfigID: "backup"},
			[]string{"priority@3:1 200@3:10"}},
		{"conditional from definition", "$IF_MAIN=@main\n$IF_MAIN priority 240\n", LoadOptions{ConfigID: "main"},
			[]string{"priority@2:10 240@2:19"}},
		{"space before = is no definition", "$A =1\n", LoadOptions{}, []string{"$A@1:1 =1@1:4"}},
		{"multiline", "$M= \\\n  a 1 \\\n  b 2\nx\n$M\n", LoadOptions{}, []string{"x@4:1", "a@5:1 1@5:1", "b@5:1 2@5:1"}},
		{"multiline first line", "$M=a 1 \\\n  b 2\n$M\n", LoadOptions{}, []string{"a@3:1 1@3:1", "b@3:1 2@3:1"}},
		{"multiline ends at empty line", "$M= \\\n  a 1 \\\n\nb 2\n$M\n", LoadOptions{}, []string{"b@4:1 2@4:3", "a@5:1 1@5:1"}},
		{"multiline skips comment lines", "$M= \\\n  a 1 \\\n  # note\n  b 2\n$M\n", LoadOptions{}, []string{"a@5:1 1@5:1", "b@5:1 2@5:1"}},
		{"multiline only at end of line", "$M= \\\n  a \\\n  b\nx $M y\n", LoadOptions{}, []string{"x@4:1 $M@4:3 y@4:6"}},
		{"nested multiline", "$IN= \\\n  i 1 \\\n  i 2\n$OUT= \\\n  o { \\\n  $IN \\\n  }\n$OUT\n", LoadOptions{},
			[]string{"o@8:1", "{@8:1", "i@8:1 1@8:1", "i@8:1 2@8:1", "}@8:1"}},
		{"hash and bang", "v ${_HASH}1 ${_BANG}2\n", LoadOptions{}, []string{"v@1:1 #1@1:3 !2@1:13"}},
		{"instance", "router_id ${_INSTANCE}\n", LoadOptions{ConfigID: "lb7"}, []string{"router_id@1:1 lb7@1:11"}},
		{"env", "script \"${_ENV CHECK}\"\n", LoadOptions{Getenv: func(k string) string { return "/bin/" + k }},
			[]string{`script@1:1 "/bin/CHECK"@1:8`}},
		{"random", "weight ${_RANDOM 7 7}\n", LoadOptions{}, []string{"weight@1:1 7@1:8"}},

		// Sequence and list blocks.
		{"seq", "~SEQ(I, 1, 3) v $I\n", LoadOptions{}, []string{"v@1:15 1@1:17", "v@1:15 2@1:17", "v@1:15 3@1:17"}},
		{"seq end only", "~SEQ(I, 2) v ${I}\n", LoadOptions{}, []string{"v@1:12 1@1:14", "v@1:12 2@1:14"}},
		{"seq down", "~SEQ(I, 3, 2) v $I\n", LoadOptions{}, []string{"v@1:15 3@1:17", "v@1:15 2@1:17"}},
		{"seqx", "~SEQx(I, 0x9, 1, 0xb) fe80::${I}\n", LoadOptions{}, []string{"fe80::9@1:23", "fe80::a@1:23", "fe80::b@1:23"}},
		{"nested seq", "~SEQ(A, 1, 2) ~SEQ(B, 1, 2) v $A.$B\n", LoadOptions{}, []string{
			"v@1:29 $A.1@1:31", "v@1:29 $A.2@1:31", "v@1:29 $A.1@1:31", "v@1:29 $A.2@1:31",
		}},
		{"lst", "~LST(I, a, b) v $I\n", LoadOptions{}, []string{"v@1:15 a@1:17", "v@1:15 b@1:17"}},
		{"lst sets", "~LST({A, B}, {1, 2}, {3}) v $A ${B}x\n", LoadOptions{}, []string{"v@1:27 1@1:29 2x@1:32", "v@1:27 3@1:29 x@1:36"}},
		{"seq of multiline", "$RS= \\\n  real_server 10.0.0.$I 80 \\\n  weight $I\n~SEQ(I, 1, 2) $RS\n", LoadOptions{}, []string{
			"real_server@4:15 10.0.0.1@4:15 80@4:15", "weight@4:15 1@4:15",
			"real_server@4:15 10.0.0.2@4:15 80@4:15", "weight@4:15 2@4:15",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, diags := lex(t, tt.src, tt.opts)
			if len(diags) != 0 {
				t.Errorf("diagnostics: %v", diags)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLexerIncludes(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/keepalived/conf.d/b.conf":    {Data: []byte("b 1\ninclude ../frag/{x,y}.inc\n")},
		"etc/keepalived/conf.d/a.conf":    {Data: []byte("$V=from-a\na 1\n")},
		"etc/keepalived/conf.d/notes.txt": {Data: []byte("not included\n")},
		"etc/keepalived/frag/x.inc":       {Data: []byte("x $V\n")},
		"etc/keepalived/frag/y.inc":       {Data: []byte("  y { z }\n")},
		"etc/keepalived/conf.d/sub":       {Mode: 0o755 | 1<<31}, // a directory matching the glob
		"etc/keepalived/conf.d/run.conf":  {Data: []byte("run\n"), Mode: 0o755},
	}
	src := "top {\ninclude conf.d/*.conf\n}\nlast $V\n"
	d := &diagSink{files: map[string]int{}}
	opts := LoadOptions{FS: fsys}
	lx := newLexer(opts.fileSystem(), &opts, d)
	lx.readMain("/etc/keepalived/keepalived.conf", []byte(src))
	var got []string
	for _, ln := range lx.out {
		var parts []string
		for _, tok := range ln {
			parts = append(parts, tok.Text+"@"+tok.Pos.String())
		}
		got = append(got, strings.Join(parts, " "))
	}
	want := []string{
		"top@/etc/keepalived/keepalived.conf:1:1",
		"{@/etc/keepalived/keepalived.conf:1:5",
		"a@/etc/keepalived/conf.d/a.conf:2:1 1@/etc/keepalived/conf.d/a.conf:2:3",
		"b@/etc/keepalived/conf.d/b.conf:1:1 1@/etc/keepalived/conf.d/b.conf:1:3",
		"x@/etc/keepalived/frag/x.inc:1:1 from-a@/etc/keepalived/frag/x.inc:1:3",
		"y@/etc/keepalived/frag/y.inc:1:3",
		"{@/etc/keepalived/frag/y.inc:1:5",
		"z@/etc/keepalived/frag/y.inc:1:7",
		"}@/etc/keepalived/frag/y.inc:1:9",
		"}@/etc/keepalived/keepalived.conf:3:1",
		"last@/etc/keepalived/keepalived.conf:4:1 from-a@/etc/keepalived/keepalived.conf:4:6",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantFiles := []string{
		"/etc/keepalived/keepalived.conf",
		"/etc/keepalived/conf.d/a.conf",
		"/etc/keepalived/conf.d/b.conf",
		"/etc/keepalived/frag/x.inc",
		"/etc/keepalived/frag/y.inc",
	}
	if !slices.Equal(lx.files, wantFiles) {
		t.Errorf("files = %q, want %q", lx.files, wantFiles)
	}
	wantDiags := []string{
		"/etc/keepalived/keepalived.conf:2:9: warning: include: skipping /etc/keepalived/conf.d/run.conf: not a regular non-executable file",
	}
	if got := diagStrings(d.sorted()); !slices.Equal(got, wantDiags) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDiags, "\n"))
	}
}

func TestExpandBraces(t *testing.T) {
	tests := map[string][]string{
		"a.conf":               {"a.conf"},
		"{a,b}.conf":           {"a.conf", "b.conf"},
		"x/{a,b{1,2}}/c":       {"x/a/c", "x/b1/c", "x/b2/c"},
		"{foo/{,cat,dog},bar}": {"foo/", "foo/cat", "foo/dog", "bar"},
		"a\\{b,c}":             {"a\\{b,c}"},
		"{unbalanced":          {"{unbalanced"},
	}
	for in, want := range tests {
		if got := expandBraces(in); !slices.Equal(got, want) {
			t.Errorf("expandBraces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/scripts/notify.sh master 192.168.8.100", []string{"/scripts/notify.sh", "master", "192.168.8.100"}},
		{"/usr/local/bin/vrrp.sh  BACKUP   VI_1", []string{"/usr/local/bin/vrrp.sh", "BACKUP", "VI_1"}},
		{`/bin/x ' spaces\x20f\x69le ' '"s p a c e "' SG1.low`, []string{"/bin/x", " spaces file ", `"s p a c e "`, "SG1.low"}},
		{`a\ b c\tq \101`, []string{"a b", "c\tq", "A"}},
		{`</dev/tcp/127.0.0.1/80`, []string{"</dev/tcp/127.0.0.1/80"}},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := splitArgs("a 'b"); err == nil {
		t.Error("unterminated quote accepted")
	}
}
