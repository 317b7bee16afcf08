package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// These tests cover the harness's own parts on the host; the VM itself
// runs in `make test-vm`.

func TestCPIOArchiveReadsBackWithCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		if testnet.InCI() {
			t.Fatalf("cpio not installed (test/deps.sh installs it): %v", err)
		}
		t.Skipf("skipped: the cpio tool, the independent reader this test checks against, is not installed: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("etc/odd", 0o644, []byte("abc")) // length not a multiple of 4
	c.CopyFile("/xkeep/tests/x.test", src)
	c.Symlink("bin/sh", "busybox")
	c.Dir("proc", 0o555)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	listing := string(out)
	for _, want := range []string{
		"crw-------", "dev/console",
		"-rw-r--r--", "etc/odd",
		"-rwxr-xr-x", "xkeep/tests/x.test",
		"bin/sh -> busybox",
		"dr-xr-xr-x", "proc",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
	// Parents come before their entries, each once.
	if n := strings.Count(listing, " xkeep\n"); n != 1 {
		t.Errorf("directory xkeep listed %d times:\n%s", n, listing)
	}

	extract := filepath.Join(dir, "out")
	if err := os.Mkdir(extract, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(cpio, "-id", "--quiet", "--no-absolute-filenames", "etc/odd", "xkeep/tests/x.test")
	cmd.Dir = extract
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"etc/odd": "abc", "xkeep/tests/x.test": "#!/bin/sh\necho hi\n"} {
		got, err := os.ReadFile(filepath.Join(extract, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestReadResults(t *testing.T) {
	console := strings.Join([]string{
		"@@xkeep-vm booted 2.51 6.1.0-56-cloud-amd64\r",
		"@@xkeep-vm modules ok",
		"@@xkeep-vm run ipvs.test github.com/xkeep/xkeep/dataplane/ipvs",
		"=== RUN   TestA",
		"--- PASS: TestA (0.01s)",
		"BenchmarkForwardDR-2   \t       1\t       100.0 %delivered\t     75988 pkts/s",
		"PASS",
		"@@xkeep-vm result ipvs.test 0 4.2",
		"@@xkeep-vm run testnet.test github.com/xkeep/xkeep/internal/testnet",
		"panic: boom (no newline before the marker)@@xkeep-vm result testnet.test 2 5.0",
		"@@xkeep-vm done",
	}, "\n") + "\n"
	var out bytes.Buffer
	rep := readResults(strings.NewReader(console), &out, time.Now())
	if !rep.Booted || rep.BootGuest != "2.51" || rep.Release != "6.1.0-56-cloud-amd64" || !rep.Done || rep.ModulesFailed {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("results %+v, want 2", rep.Results)
	}
	if r := rep.Results[0]; r.Name != "ipvs.test" || r.Status != 0 || len(r.Output) != 4 {
		t.Errorf("first result %+v", r)
	}
	if r := rep.Results[1]; r.Status != 2 || len(r.Output) != 1 || r.Output[0] != "panic: boom (no newline before the marker)" {
		t.Errorf("second result %+v", r)
	}
	if !strings.Contains(out.String(), "  vm| --- PASS: TestA (0.01s)\n") {
		t.Errorf("test output not copied:\n%s", out.String())
	}

	// The VM died in the middle of a package.
	rep = readResults(strings.NewReader("@@xkeep-vm booted 1 x\n@@xkeep-vm run a.test a\n=== RUN TestA\n"), &out, time.Now())
	if rep.Done || len(rep.Results) != 1 || rep.Results[0].Status != -1 {
		t.Errorf("truncated run: %+v %+v", rep, rep.Results)
	}
}

func TestParseBenchRates(t *testing.T) {
	got := parseBenchRates("github.com/xkeep/xkeep/dataplane/ipvs", []string{
		"BenchmarkForwardDR-2   \t       1\t       100.0 %delivered\t     75988 pkts/s",
		"BenchmarkOther-2 \t 1000 \t 12.5 ns/op",
		"BenchmarkForwardDR/flows=64-2 1 3.5e+05 pkts/s",
		"    bench_test.go:25: pkts/s mentioned in a log line",
	})
	want := []benchResult{
		{Pkg: "github.com/xkeep/xkeep/dataplane/ipvs", Name: "BenchmarkForwardDR", Rate: 75988},
		{Pkg: "github.com/xkeep/xkeep/dataplane/ipvs", Name: "BenchmarkForwardDR/flows=64", Rate: 350000},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	rep := &vmReport{Release: "6.1", Results: []*pkgResult{
		{Pkg: "github.com/xkeep/xkeep/test/vm/forwardbench", Output: []string{
			"BenchmarkForwardDR/ipvs-2 1 100.0 %delivered 100000 pkts/s",
			"BenchmarkForwardDR/xdp-2 1 100.0 %delivered 350000 pkts/s",
			"BenchmarkForwardDR/ipvs-2 1 100.0 %delivered 10000 pkts/s", // a hiccup
			"BenchmarkForwardDR/xdp-2 1 100.0 %delivered 360000 pkts/s",
			"BenchmarkForwardDR/ipvs-2 1 100.0 %delivered 110000 pkts/s",
			"BenchmarkForwardDR/xdp-2 1 100.0 %delivered 340000 pkts/s",
		}},
	}}
	var out bytes.Buffer
	printBenchComparison(&out, rep)
	if !strings.Contains(out.String(), "BenchmarkForwardDR: xdp/ipvs = 3.50x") {
		t.Errorf("no ratio in:\n%s", out.String())
	}
}

func TestInitramfsRunsEachRoundAndHoldsEachBinaryOnce(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		if testnet.InCI() {
			t.Fatalf("cpio not installed (test/deps.sh installs it): %v", err)
		}
		t.Skipf("skipped: the cpio tool, used to read the archive back, is not installed: %v", err)
	}
	dir := t.TempDir()
	for _, f := range []string{"busybox", "x.test", "mods/lib/modules/6.1/kernel/a.ko", "mods/.staged", "repo/pkg/testdata/in.txt"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := testBinary{Name: "x.test", Pkg: "example.com/pkg", Dir: "pkg", Path: filepath.Join(dir, "x.test"), Args: []string{"-test.v", "-test.run=^$"}}
	var runs []testBinary
	for _, id := range []string{"x.test#1", "x.test#2"} {
		r := bin
		r.ID = id
		runs = append(runs, r)
	}
	img := filepath.Join(dir, "initramfs.cpio")
	err = writeInitramfs(img, initramfsSpec{
		Busybox: filepath.Join(dir, "busybox"), Modules: filepath.Join(dir, "mods"), Load: []string{"ip_vs", "veth"},
		Tests: runs, RepoRoot: filepath.Join(dir, "repo"), Env: map[string]string{"XKEEP_VM": "1", "Q": "it's"},
		Files: map[string]string{guestXkeep: filepath.Join(dir, "busybox")},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-id", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, f
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, b)
	}
	for _, want := range []string{"init", "bin/busybox", "xkeep/tests/x.test", "lib/modules/6.1/kernel/a.ko", "xkeep/src/pkg/testdata/in.txt", "etc/xkeep-vm.env", "xkeep/bin/xkeep"} {
		if _, err := os.Stat(filepath.Join(out, want)); err != nil {
			t.Errorf("archive lacks %s: %v", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, ".staged")); err == nil {
		t.Error("the cache's stamp file went into the archive")
	}
	init, _ := os.ReadFile(filepath.Join(out, "init"))
	for _, want := range []string{
		"modprobe -a ip_vs veth",
		"mount -t bpf", "ln -s /run /var/run",
		`echo "@@xkeep-vm run x.test#1 example.com/pkg"`,
		`cd /xkeep/src/pkg && /xkeep/tests/x.test '-test.v' '-test.run=^$'`,
		`echo "@@xkeep-vm result x.test#2 $?`,
		`echo "@@xkeep-vm done"`,
	} {
		if !strings.Contains(string(init), want) {
			t.Errorf("init lacks %q:\n%s", want, init)
		}
	}
	env, _ := os.ReadFile(filepath.Join(out, "etc/xkeep-vm.env"))
	if string(env) != "Q='it'\\''s'\nXKEEP_VM='1'\n" {
		t.Errorf("env file %q", env)
	}
}
