// Package vrrpsuite runs real xkeep processes (and keepalived as a peer)
// in network namespaces joined by a bridge: failover, preemption,
// priority 0 on stop, gratuitous ARP, interoperation with keepalived, and
// the failover benchmark. Everything runs as root; under CI a missing
// root or keepalived fails instead of skipping.
package vrrpsuite

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

// xkeepBin is the xkeep binary TestMain builds once.
var xkeepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xkeep-vrrp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xkeepBin = filepath.Join(dir, "xkeep")
	goBin, err := exec.LookPath("go")
	if err != nil {
		// sudo may drop PATH; the toolchain running this test has one.
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", xkeepBin, "github.com/xkeep/xkeep/cmd/xkeep")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build xkeep:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lab is a bridge segment with hosts on it.
type lab struct {
	t   testing.TB
	seg *testnet.Segment
}

type host struct {
	t    testing.TB
	name string
	ns   *testnet.Namespace
	port *testnet.Port
	addr netip.Addr
	dir  string
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testnet.RequireRoot(t)
	return &lab{t: t, seg: testnet.NewSegment(t)}
}

// host attaches a namespace with eth0 at addr/24 and an IPv6 link-local
// address.
func (l *lab) host(name, addr string) *host {
	l.t.Helper()
	ns := testnet.NewNamespace(l.t, name)
	a := netip.MustParseAddr(addr)
	port := l.seg.Attach(ns, "eth0", netip.PrefixFrom(a, 24))
	dir := filepath.Join(l.t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	return &host{t: l.t, name: name, ns: ns, port: port, addr: a, dir: dir}
}

// status runs `xkeep status --json` against the host's daemon and returns
// the snapshot and the raw output.
func (h *host) status() (status.Snapshot, []byte) {
	h.t.Helper()
	out, err := exec.Command(xkeepBin, "status", "--json", "--socket", filepath.Join(h.dir, "xkeep.sock")).Output()
	if err != nil {
		h.t.Fatalf("xkeep status on %s: %v", h.name, err)
	}
	var snap status.Snapshot
	if err := json.Unmarshal(out, &snap); err != nil {
		h.t.Fatalf("xkeep status --json on %s: %v\n%s", h.name, err, out)
	}
	return snap, out
}

func (h *host) hasAddr(a netip.Addr) bool {
	ok, err := h.ns.HasAddr(a)
	if err != nil {
		h.t.Fatalf("%s: %v", h.name, err)
	}
	return ok
}

// daemon is a running xkeep or keepalived process.
type daemon struct {
	t    testing.TB
	host *host
	kind string
	cmd  *exec.Cmd
	proc *testnet.Process
	log  *testnet.SyncBuffer
	// vrrpPidFile is keepalived's VRRP child pid file.
	vrrpPidFile string
}

func (h *host) writeConf(name, conf string) string {
	path := filepath.Join(h.dir, name)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// startXkeep runs `xkeep run -f` with conf in the host's namespace.
func (h *host) startXkeep(conf string) *daemon {
	h.t.Helper()
	path := h.writeConf("xkeep.conf", conf)
	// The control socket (and the crash guard's lock beside it) in the
	// test's directory: a SIGKILLed daemon leaves them behind.
	cmd := exec.Command(xkeepBin, "run", "-f", path, "--log-level", "debug",
		"--socket", filepath.Join(h.dir, "xkeep.sock"))
	return h.start("xkeep", cmd, "")
}

// startKeepalived runs keepalived's VRRP process in the foreground with
// its own pid files.
func (h *host) startKeepalived(conf string) *daemon {
	h.t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		if testnet.InCI() {
			h.t.Fatalf("keepalived not installed (test/deps.sh installs it): %v", err)
		}
		h.t.Skipf("skipped: keepalived is not installed (%v)", err)
	}
	path := h.writeConf("keepalived.conf", conf)
	pid := filepath.Join(h.dir, "keepalived.pid")
	vpid := filepath.Join(h.dir, "vrrp.pid")
	// A killed keepalived leaves its pid files; a new one would refuse to
	// start ("daemon is already running").
	_ = os.Remove(pid)
	_ = os.Remove(vpid)
	cmd := exec.Command("keepalived", "-n", "-l", "-D", "-P", "-f", path, "-p", pid, "-r", vpid)
	return h.start("keepalived", cmd, vpid)
}

func (h *host) start(kind string, cmd *exec.Cmd, vpid string) *daemon {
	d := &daemon{t: h.t, host: h, kind: kind, cmd: cmd, log: &testnet.SyncBuffer{}, vrrpPidFile: vpid}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	p, err := h.ns.StartProcess(h.t, cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	d.proc = p
	h.t.Cleanup(func() {
		d.kill()
		if h.t.Failed() || os.Getenv("XKEEP_TEST_LOGS") != "" {
			h.t.Logf("--- %s log on %s ---\n%s", kind, h.name, d.log.String())
		}
	})
	return d
}

func (d *daemon) running() bool { return d.proc.Running() }

// kill SIGKILLs the daemon: keepalived's VRRP child first, so it cannot
// resign when its parent dies.
func (d *daemon) kill() {
	if !d.running() {
		return
	}
	if d.vrrpPidFile != "" {
		// Stop the parent first so it neither respawns the child nor
		// signals it (which would make it resign gracefully).
		_ = d.cmd.Process.Signal(syscall.SIGSTOP)
		if pid := d.vrrpChild(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = d.cmd.Process.Kill()
	<-d.proc.Done()
}

// stop sends SIGTERM and waits for the process to exit.
func (d *daemon) stop(limit time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.proc.Done():
	case <-time.After(limit):
		d.t.Fatalf("%s on %s did not exit within %v of SIGTERM", d.kind, d.host.name, limit)
	}
	return time.Since(start)
}

func (d *daemon) vrrpChild() int {
	b, err := os.ReadFile(d.vrrpPidFile)
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid)
	return pid
}

// waitVRRPChild waits until keepalived has started its VRRP process.
func (d *daemon) waitVRRPChild() {
	d.t.Helper()
	testnet.Eventually(d.t, 10*time.Second, "keepalived VRRP child started", func() error {
		if d.vrrpChild() == 0 {
			return fmt.Errorf("no pid in %s", d.vrrpPidFile)
		}
		return nil
	})
}

// waitVIP waits until exactly the owner among hosts holds vip, and
// returns how long that took.
func waitVIP(t testing.TB, limit time.Duration, vip netip.Addr, owner *host, others ...*host) time.Duration {
	t.Helper()
	start := time.Now()
	testnet.Eventually(t, limit, fmt.Sprintf("%s only on %s", vip, owner.name), func() error {
		if !owner.hasAddr(vip) {
			return fmt.Errorf("%s does not hold it", owner.name)
		}
		for _, o := range others {
			if o.hasAddr(vip) {
				return fmt.Errorf("%s holds it too", o.name)
			}
		}
		return nil
	})
	return time.Since(start)
}

// family is a's netlink address family.
func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// neighbourMAC returns the MAC the host's neighbour table has for a.
func (h *host) neighbourMAC(a netip.Addr) (string, error) {
	nh, err := h.ns.Netlink()
	if err != nil {
		return "", err
	}
	defer nh.Close()
	neighs, err := nh.NeighList(h.port.Index, family(a))
	if err != nil {
		return "", err
	}
	for _, n := range neighs {
		if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == a && n.HardwareAddr != nil {
			return n.HardwareAddr.String(), nil
		}
	}
	return "", fmt.Errorf("no neighbour entry for %s", a)
}

// overlapWatch samples which hosts hold the VIP every few milliseconds
// and records the longest time two held it at once.
type overlapWatch struct {
	mu      sync.Mutex
	longest time.Duration
	stop    chan struct{}
	done    chan struct{}
}

// watchOverlap counts only hosts for which alive returns true: a killed
// daemon cannot remove its VIP, and that is no double master.
func watchOverlap(t testing.TB, vip netip.Addr, alive func(*host) bool, hosts ...*host) *overlapWatch {
	w := &overlapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var since time.Time
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			n := 0
			for _, h := range hosts {
				if !alive(h) {
					continue
				}
				if ok, err := h.ns.HasAddr(vip); err == nil && ok {
					n++
				}
			}
			now := time.Now()
			if n > 1 {
				if since.IsZero() {
					since = now
				}
				w.mu.Lock()
				w.longest = max(w.longest, now.Sub(since))
				w.mu.Unlock()
			} else {
				since = time.Time{}
			}
		}
	}()
	t.Cleanup(w.finish)
	return w
}

func (w *overlapWatch) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// longestOverlap stops the watch and returns the longest double holding.
func (w *overlapWatch) longestOverlap() time.Duration {
	w.finish()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.longest
}
