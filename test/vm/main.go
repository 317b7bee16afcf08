// Command vm runs xkeep's kernel tests inside a VM booted on a second
// kernel: Debian's 6.1 cloud kernel, which has IPVS (this machine's kernel
// does not) and is an older BPF verifier for the XDP program.
//
// It fetches the kernel and busybox-static with apt-get download (cached),
// builds statically linked test binaries (CGO_ENABLED=0 go test -c) and,
// for test/e2e's IPVS scenarios, the xkeep binary, packs them with
// busybox, the needed kernel modules (depmod'ed) and an init script into
// an initramfs, boots qemu-system-x86_64 under TCG, streams the
// tests' output and exits non-zero when a test failed or the VM did not
// come up. With -bench it runs the benchmarks instead and prints the
// IPVS-vs-XDP packets/s ratio.
//
// Usage (as root, from the repository root; `make test-vm`, `make bench`):
//
//	go run ./test/vm [-pkgs ./dataplane/ipvs,...] [-run REGEXP] [-tags TAGS]
//	go run ./test/vm -bench [-benchre REGEXP] [-benchtime 1x]
//
// The cache (downloaded .debs, unpacked packages, staged modules) is
// -cache, default $XKEEP_VM_CACHE, else /var/cache/xkeep-vm when run as
// root, else $XDG_CACHE_HOME/xkeep-vm; it keeps the newest kernel only
// (about 150 MiB). Everything else lives in a temporary directory that is
// removed on exit, also on Ctrl-C, and qemu never outlives the harness.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// testPackages run inside the VM by default: everything that needs IPVS or
// a second kernel (dataplane/xdp: the program must pass the 6.1 verifier
// too). Add a package here to run its tests on 6.1 as well. test/e2e runs
// its scenarios there with --dataplane=ipvs (e2eEnv).
var testPackages = []string{
	"./dataplane/ipvs",
	"./dataplane/xdp",
	"./internal/testnet",
	"./test/daemon",
	"./test/e2e",
}

// e2eEnv points test/e2e and test/daemon at the xkeep binary packed into
// the VM and at the IPVS dataplane, which the host's kernel lacks.
var e2eEnv = map[string]string{
	"XKEEP_BIN":              guestXkeep,
	"XKEEP_E2E_DATAPLANE":    "ipvs",
	"XKEEP_DAEMON_DATAPLANE": "ipvs",
}

// benchPackages hold the benchmarks -bench runs in the VM. Sub-benchmarks
// NAME/ipvs and NAME/xdp that report "pkts/s" are printed side by side
// with their ratio.
var benchPackages = []string{
	"./test/vm/forwardbench",
}

// Exit statuses.
const (
	exitOK        = 0
	exitTestsFail = 1
	exitVMFail    = 2 // no boot, timeout, missing results, setup error
	exitInterrupt = 130
)

type options struct {
	bench       bool
	pkgs        string
	run         string
	tags        string
	benchRe     string
	benchTime   string
	benchCount  int
	timeout     time.Duration
	testTimeout time.Duration
	cache       string
	accel       string
	cpus        int
	memMB       int
	keep        bool
}

func main() {
	var o options
	flag.BoolVar(&o.bench, "bench", false, "run benchmarks instead of tests and print the IPVS-vs-XDP ratio")
	flag.StringVar(&o.pkgs, "pkgs", "", "comma-separated packages to run (default: the built-in list for the mode)")
	flag.StringVar(&o.run, "run", "", "run only tests matching this regexp (go test -run)")
	flag.StringVar(&o.tags, "tags", "", "build tags for the test binaries (go test -tags)")
	flag.StringVar(&o.benchRe, "benchre", ".", "with -bench: benchmarks to run (go test -bench)")
	flag.StringVar(&o.benchTime, "benchtime", "1x", "with -bench: go test -benchtime")
	flag.IntVar(&o.benchCount, "benchcount", 3, "with -bench: rounds of every benchmark binary, in turns; rows are reported as medians")
	flag.DurationVar(&o.timeout, "timeout", 0, "give up on the VM after this long (default 10m, 20m with -bench)")
	flag.DurationVar(&o.testTimeout, "test-timeout", 5*time.Minute, "per test binary (go test -timeout)")
	flag.StringVar(&o.cache, "cache", "", "cache directory (default $XKEEP_VM_CACHE, /var/cache/xkeep-vm as root, else the user cache)")
	flag.StringVar(&o.accel, "accel", "tcg", "qemu accelerator; KVM hung on the CI machine, so TCG is the default")
	flag.IntVar(&o.cpus, "smp", 2, "vCPUs")
	flag.IntVar(&o.memMB, "mem", 2048, "VM memory in MiB")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (initramfs, console log) for debugging")
	flag.Parse()
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code, err := runOnce(ctx, o)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "vm: interrupted; qemu stopped and temporary files removed")
		return exitInterrupt
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm: %v\n", err)
	}
	return code
}

func runOnce(ctx context.Context, o options) (int, error) {
	wallStart := time.Now()
	logf := func(format string, args ...any) { fmt.Printf("vm: "+format+"\n", args...) }

	if o.timeout == 0 {
		o.timeout = 10 * time.Minute
		if o.bench {
			o.timeout = 20 * time.Minute
		}
	}
	root, err := repoRoot()
	if err != nil {
		return exitVMFail, err
	}
	cache, err := cacheDir(o.cache)
	if err != nil {
		return exitVMFail, err
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return exitVMFail, fmt.Errorf("qemu-system-x86_64 not found: install qemu-system-x86 (test/deps.sh does): %w", err)
	}

	tmp, err := os.MkdirTemp("", "xkeep-vm-")
	if err != nil {
		return exitVMFail, err
	}
	if o.keep {
		logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// The kernel, busybox and modules (cached), and the test binaries.
	prepStart := time.Now()
	kpkg, err := newestKernel(ctx)
	if err != nil {
		kpkg, err = cachedKernel(cache, err)
		if err != nil {
			return exitVMFail, err
		}
	}
	bbVer, err := candidateVersion(ctx, "busybox-static")
	if err == nil && bbVer == "" {
		err = errors.New("apt-cache has no busybox-static candidate (run apt-get update)")
	}
	if err != nil {
		// Offline: any busybox-static unpacked earlier does.
		m, _ := filepath.Glob(filepath.Join(cache, "pkg", "busybox-static_*", ".unpacked"))
		if len(m) == 0 {
			return exitVMFail, err
		}
		dir := filepath.Base(filepath.Dir(m[len(m)-1]))
		bbVer = strings.ReplaceAll(strings.TrimPrefix(dir, "busybox-static_"), "%3a", ":")
		logf("%v; using the cached busybox-static %s", err, bbVer)
	}
	kroot, err := fetchPackage(ctx, cache, kpkg, logf)
	if err != nil {
		return exitVMFail, err
	}
	bbroot, err := fetchPackage(ctx, cache, debPackage{Name: "busybox-static", Version: bbVer}, logf)
	if err != nil {
		return exitVMFail, err
	}
	vmlinuz, modDir, release, err := kernelFiles(kroot)
	if err != nil {
		return exitVMFail, err
	}
	mods, err := stageModules(ctx, cache, modDir, release, vmModules)
	if err != nil {
		return exitVMFail, err
	}
	pruneCache(cache, []string{kroot, bbroot, mods},
		[]debPackage{kpkg, {Name: "busybox-static", Version: bbVer}}, logf)

	pkgs := testPackages
	if o.bench {
		pkgs = benchPackages
	}
	if o.pkgs != "" {
		pkgs = strings.Split(o.pkgs, ",")
	}
	args := []string{"-test.v", "-test.timeout=" + o.testTimeout.String()}
	if o.bench {
		args = append(args, "-test.run=^$", "-test.bench="+o.benchRe, "-test.benchtime="+o.benchTime)
	} else if o.run != "" {
		args = append(args, "-test.run="+o.run)
	}
	for _, a := range args {
		if strings.Contains(a, "'") {
			return exitVMFail, fmt.Errorf("argument %q: single quotes are not supported", a)
		}
	}
	tests, err := buildTests(ctx, root, filepath.Join(tmp, "tests"), pkgs, o.tags, args)
	if err != nil {
		return exitVMFail, err
	}
	if len(tests) == 0 {
		return exitVMFail, fmt.Errorf("none of %s has tests", strings.Join(pkgs, ", "))
	}
	binaries := len(tests)
	if o.bench && o.benchCount > 1 {
		// Whole runs of the binaries in turns (go test -count would run
		// each sub-benchmark N times in a row): ipvs, xdp, ipvs, xdp, ...
		// so a busy host weighs on every row alike.
		var rounds []testBinary
		for i := 1; i <= o.benchCount; i++ {
			for _, t := range tests {
				t.ID = fmt.Sprintf("%s#%d", t.Name, i)
				rounds = append(rounds, t)
			}
		}
		tests = rounds
	}

	// The end-to-end suite runs the xkeep binary itself: build it too,
	// statically like the tests.
	files := map[string]string{}
	env := map[string]string{
		"XKEEP_VM": "1",
		"HOME":     "/root",
		"TMPDIR":   "/tmp",
	}
	if needsXkeep(tests) {
		bin := filepath.Join(tmp, "xkeep")
		if err := buildXkeep(ctx, root, bin); err != nil {
			return exitVMFail, err
		}
		files[guestXkeep] = bin
		for k, v := range e2eEnv {
			env[k] = v
		}
	}
	// With XKEEP_CI, a test that would skip fails: same rule in the VM.
	if v := os.Getenv("XKEEP_CI"); v != "" {
		env["XKEEP_CI"] = v
	}
	initrd := filepath.Join(tmp, "initramfs.cpio")
	err = writeInitramfs(initrd, initramfsSpec{
		Busybox:  filepath.Join(bbroot, "bin", "busybox"),
		Modules:  mods,
		Load:     vmModules,
		Tests:    tests,
		RepoRoot: root,
		Env:      env,
		Files:    files,
	})
	if err != nil {
		return exitVMFail, fmt.Errorf("build initramfs: %w", err)
	}
	size := int64(0)
	if st, err := os.Stat(initrd); err == nil {
		size = st.Size()
	}
	logf("prepared in %.1fs: kernel %s (%s), %d test binaries (%d runs), initramfs %d MiB, cache %s",
		time.Since(prepStart).Seconds(), release, kpkg.Version, binaries, len(tests), size>>20, cache)

	console := filepath.Join(tmp, "console.log")
	rep, err := runVM(ctx, vmConfig{
		Qemu: qemu, Accel: o.accel, CPUs: o.cpus, MemMB: o.memMB,
		Kernel: vmlinuz, Initrd: initrd, Console: console, Timeout: o.timeout,
	}, os.Stdout)
	if ctx.Err() != nil {
		return exitInterrupt, nil
	}
	if err != nil {
		fmt.Printf("vm: kernel console (last lines):\n%s\n", tailFile(console, 40))
		return exitVMFail, err
	}
	code := summarize(rep, tests, o, console)
	if o.bench && code == exitOK {
		printBenchComparison(os.Stdout, rep)
	}
	logf("wall time %.1fs (VM %.1fs, boot %.1fs)", time.Since(wallStart).Seconds(), rep.Wall.Seconds(), rep.BootHost.Seconds())
	return code, nil
}

// summarize prints one line per test binary and decides the exit status.
func summarize(rep *vmReport, tests []testBinary, o options, console string) int {
	failed := false
	switch {
	case !rep.Booted:
		fmt.Printf("vm: FAIL: the VM did not boot (no init output)\n")
		failed = true
	case rep.TimedOut:
		fmt.Printf("vm: FAIL: the VM did not finish within %v\n", o.timeout)
		failed = true
	case !rep.Done:
		fmt.Printf("vm: FAIL: the VM stopped before its init finished\n")
		failed = true
	}
	if failed {
		fmt.Printf("vm: kernel console (last lines):\n%s\n", tailFile(console, 40))
		return exitVMFail
	}
	code := exitOK
	if rep.ModulesFailed {
		fmt.Printf("vm: FAIL: some kernel modules did not load\n")
		code = exitTestsFail
	}
	seen := map[string]*pkgResult{}
	for _, r := range rep.Results {
		seen[r.Name] = r // the marker's ID
	}
	fmt.Printf("vm: results on %s:\n", rep.Release)
	for _, t := range tests {
		r := seen[t.ID]
		switch {
		case r == nil:
			fmt.Printf("vm:   MISSING %s (never started)\n", runLabel(t.ID, t.Pkg))
			code = exitVMFail
		case r.Status != 0:
			fmt.Printf("vm:   %s %s (exit %d, %.1fs)\n", statusWord(r.Status), runLabel(t.ID, t.Pkg), r.Status, r.Duration.Seconds())
			if code == exitOK {
				code = exitTestsFail
			}
		default:
			fmt.Printf("vm:   ok   %s (%.1fs)\n", runLabel(t.ID, t.Pkg), r.Duration.Seconds())
		}
	}
	return code
}

// buildTests compiles each package's tests into a static binary in dir.
// Packages without test files are reported and left out.
func buildTests(ctx context.Context, root, dir string, pkgs []string, tags string, args []string) ([]testBinary, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	listArgs := append([]string{"list", "-tags", tags, "-f", "{{.ImportPath}}|{{.Dir}}|{{len .TestGoFiles}}|{{len .XTestGoFiles}}"}, pkgs...)
	cmd := exec.CommandContext(ctx, goTool, listArgs...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w", strings.Join(pkgs, " "), err)
	}
	var tests []testBinary
	var build []string
	names := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		if f[2] == "0" && f[3] == "0" {
			fmt.Printf("vm: %s has no test files; nothing to run there\n", f[0])
			continue
		}
		rel, err := filepath.Rel(root, f[1])
		if err != nil {
			return nil, err
		}
		name := filepath.Base(f[0]) + ".test"
		if other, dup := names[name]; dup {
			return nil, fmt.Errorf("%s and %s both build %s: run them in separate invocations", other, f[0], name)
		}
		names[name] = f[0]
		tests = append(tests, testBinary{
			Name: name, ID: name, Pkg: f[0], Dir: filepath.ToSlash(rel),
			Path: filepath.Join(dir, name), Args: args,
		})
		build = append(build, f[0])
	}
	if len(build) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	cmd = exec.CommandContext(ctx, goTool, append([]string{"test", "-c", "-tags", tags, "-o", dir + "/"}, build...)...)
	cmd.Dir = root
	// Static binaries: the VM has no libc.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test -c %s: %w", strings.Join(build, " "), err)
	}
	for _, t := range tests {
		if _, err := os.Stat(t.Path); err != nil {
			return nil, fmt.Errorf("go test -c did not produce %s: %w", t.Path, err)
		}
	}
	fmt.Printf("vm: built %d test binaries in %.1fs\n", len(tests), time.Since(start).Seconds())
	return tests, nil
}

// needsXkeep reports whether a test binary runs the xkeep binary
// (test/e2e).
func needsXkeep(tests []testBinary) bool {
	for _, t := range tests {
		if t.Pkg == "github.com/xkeep/xkeep/test/e2e" || t.Pkg == "github.com/xkeep/xkeep/test/daemon" {
			return true
		}
	}
	return false
}

// buildXkeep builds cmd/xkeep statically (the VM has no libc) into out.
func buildXkeep(ctx context.Context, root, out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "./cmd/xkeep")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/xkeep: %w", err)
	}
	fmt.Printf("vm: built xkeep in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// repoRoot is the directory holding go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the xkeep repository")
		}
		dir = parent
	}
}

func cacheDir(flagValue string) (string, error) {
	dir := flagValue
	if dir == "" {
		dir = os.Getenv("XKEEP_VM_CACHE")
	}
	if dir == "" {
		if os.Geteuid() == 0 {
			dir = "/var/cache/xkeep-vm"
		} else {
			uc, err := os.UserCacheDir()
			if err != nil {
				return "", fmt.Errorf("no cache directory: pass -cache: %w", err)
			}
			dir = filepath.Join(uc, "xkeep-vm")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return dir, nil
}

// cachedKernel picks the newest kernel already unpacked in the cache, for
// when apt-cache cannot answer (offline, no lists).
func cachedKernel(cache string, aptErr error) (debPackage, error) {
	matches, _ := filepath.Glob(filepath.Join(cache, "pkg", "linux-image-6.1.0-*-cloud-amd64-unsigned_*", ".unpacked"))
	best, bestABI := debPackage{}, -1
	re := regexp.MustCompile(`^(linux-image-6\.1\.0-(\d+)-cloud-amd64-unsigned)_(.+)$`)
	for _, m := range matches {
		sub := re.FindStringSubmatch(filepath.Base(filepath.Dir(m)))
		if sub == nil {
			continue
		}
		abi, _ := strconv.Atoi(sub[2])
		if abi > bestABI {
			best, bestABI = debPackage{Name: sub[1], Version: strings.ReplaceAll(sub[3], "%3a", ":")}, abi
		}
	}
	if bestABI < 0 {
		return debPackage{}, aptErr
	}
	fmt.Printf("vm: %v; using the cached %s %s\n", aptErr, best.Name, best.Version)
	return best, nil
}

// pruneCache removes what earlier runs left for other kernel or busybox
// versions and module lists, so the cache holds one of each (about 150
// MiB) however many Debian kernel updates it sees.
func pruneCache(cache string, dirs []string, pkgs []debPackage, logf func(string, ...any)) {
	keep := map[string]bool{}
	for _, d := range dirs {
		keep[d] = true
	}
	for _, p := range pkgs {
		if deb, _ := findDeb(filepath.Join(cache, "debs"), p); deb != "" {
			keep[deb] = true
		}
	}
	for _, pattern := range []string{"pkg/*", "pkg/.*", "modules/*", "modules/.*", "debs/*.deb"} {
		matches, _ := filepath.Glob(filepath.Join(cache, pattern))
		for _, m := range matches {
			if keep[m] {
				continue
			}
			// Dot entries are other runs' work in progress, unless old.
			if strings.HasPrefix(filepath.Base(m), ".") {
				if st, err := os.Stat(m); err != nil || time.Since(st.ModTime()) < time.Hour {
					continue
				}
			}
			logf("cache: removing %s, which this run does not use", m)
			_ = os.RemoveAll(m)
		}
	}
}
