// Package rig builds the seed's two-node keepalived + LVS setup
// (/work/shared/seed) out of network namespaces and real xkeep (or
// keepalived) processes: a bridge segment, load-balancer nodes that are
// also the real servers (each runs a web server naming itself), clients
// that open a new connection per request, and the processes' metrics and
// status. The demo lab (test/lab) tells the seed's story with it and the
// end-to-end suite (test/e2e) asserts it.
//
// Everything is registered with the testing.TB's Cleanup, so it goes away
// when the test ends, also on failure; a program that is not a test uses
// testnet.Scope. Addresses exist only inside the rig's namespaces.
//
// A node that is both load balancer and real server holds the VIP twice,
// on different interfaces: on lo always (a DR real server accepts packets
// for the VIP that carry its MAC; arp_ignore=1 and arp_announce=2 keep it
// from answering ARP for it), and on eth0 while it is VRRP MASTER (xkeep
// adds the /32 there, and because eth0 then has the address, arp_ignore=1
// lets the node answer ARP for it). The dataplane balances only on the
// master; a backup's dataplane passes DR packets to its own stack.
package rig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/internal/testnet"
)

// BinEnv names a prebuilt xkeep binary to use instead of building one
// (the VM, which has no Go toolchain, sets it).
const BinEnv = "XKEEP_BIN"

// BuildXkeep returns the xkeep binary to run: $XKEEP_BIN when set, else
// one built from this checkout into dir.
func BuildXkeep(dir string) (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s is not an executable file", BinEnv, p)
		}
		return abs, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		// sudo may drop PATH; the toolchain running this has one.
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "xkeep")
	build := exec.Command(goBin, "build", "-o", out, "github.com/xkeep/xkeep/cmd/xkeep")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build xkeep: %w\n%s", err, b)
	}
	return out, nil
}

// Subnet is the rig's segment. Everything lives in the rig's own
// namespaces, so every rig uses the same addresses.
var Subnet = netip.MustParsePrefix("10.77.0.0/24")

// Addr returns host number n of Subnet (10.77.0.n).
func Addr(n int) netip.Addr {
	a := Subnet.Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a)
}

// Rig is one segment with its nodes and clients.
type Rig struct {
	T   testing.TB
	Bin string // xkeep binary
	Seg *testnet.Segment
	Dir string // configurations, scripts, logs, control sockets
	// BPFFS is a bpf filesystem mounted for this rig only: daemons pin
	// under it, and unmounting it at the end drops whatever they left.
	BPFFS string

	mu         sync.Mutex
	namespaces []string
	links      []string // veth ends on the switch side
	procs      []*Daemon
}

// New builds an empty segment. bin is the xkeep binary (BuildXkeep).
// Before anything else it registers the leak check that runs after every
// other cleanup: no namespace, link, bpffs mount or process of the rig
// may be left (see CheckLeaks).
func New(t testing.TB, bin string) *Rig {
	t.Helper()
	testnet.RequireRoot(t)
	// Daemons run in their node's directory.
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	r := &Rig{T: t, Bin: abs, Dir: t.TempDir()}
	t.Cleanup(func() {
		if err := r.CheckLeaks(); err != nil {
			t.Errorf("left behind: %v", err)
		}
	})
	r.BPFFS = filepath.Join(r.Dir, "bpffs")
	if err := os.Mkdir(r.BPFFS, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", r.BPFFS, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a bpf filesystem on %s: %v", r.BPFFS, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(r.BPFFS, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", r.BPFFS, err)
		}
	})
	r.Seg = testnet.NewSegment(t)
	r.remember(r.Seg.Switch)
	return r
}

func (r *Rig) remember(ns *testnet.Namespace, ports ...*testnet.Port) {
	r.mu.Lock()
	r.namespaces = append(r.namespaces, ns.Name)
	for _, p := range ports {
		r.links = append(r.links, p.PeerName)
	}
	r.mu.Unlock()
}

// CheckLeaks reports what of the rig still exists: named namespaces in
// /var/run/netns, switch-side veth ends that escaped to the caller's
// namespace, the bpf mount, processes not reaped, and any
// process whose command line mentions the rig's directory (scripts a
// killed daemon left running, a keepalived child).
func (r *Rig) CheckLeaks() error {
	var errs []error
	r.mu.Lock()
	names := append([]string(nil), r.namespaces...)
	peers := append([]string(nil), r.links...)
	procs := append([]*Daemon(nil), r.procs...)
	r.mu.Unlock()
	for _, n := range names {
		if _, err := os.Stat(filepath.Join("/var/run/netns", n)); err == nil {
			errs = append(errs, fmt.Errorf("namespace %s", n))
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if slices.Contains(peers, l.Attrs().Name) {
				errs = append(errs, fmt.Errorf("link %s in the root namespace", l.Attrs().Name))
			}
		}
	}
	if mounted(r.BPFFS) {
		errs = append(errs, fmt.Errorf("bpf filesystem on %s (and the pins in it)", r.BPFFS))
	}
	for _, d := range procs {
		if d.proc.Running() {
			errs = append(errs, fmt.Errorf("%s process %d on %s not reaped", d.Kind, d.cmd.Process.Pid, d.Node.Name))
		}
		for _, pid := range d.extraPIDs() {
			if alive(pid) {
				errs = append(errs, fmt.Errorf("%s helper process %d on %s", d.Kind, pid, d.Node.Name))
			}
		}
	}
	for _, p := range processesMentioning(r.Dir) {
		errs = append(errs, fmt.Errorf("process %s", p))
	}
	return errors.Join(errs...)
}

// mounted reports whether a file system is mounted on dir.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// processesMentioning lists live processes whose command line contains
// dir, as "pid: cmdline".
func processesMentioning(dir string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if strings.Contains(cmdline, dir) && alive(pid) {
			out = append(out, fmt.Sprintf("%d: %s", pid, cmdline))
		}
	}
	return out
}

// Await polls cond every 10 ms until it returns nil and returns how long
// that took; it gives up with the last error when timeout passes or ctx
// ends. Tests use it through Eventually; the lab, which reports a failed
// step instead of failing a test, calls it directly.
func Await(ctx context.Context, timeout time.Duration, what string, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("%s: not true after %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("%s: %w (last: %v)", what, context.Cause(ctx), err)
		case <-tick.C:
		}
	}
}

// Eventually is Await that fails the test.
func (r *Rig) Eventually(timeout time.Duration, what string, cond func() error) time.Duration {
	r.T.Helper()
	took, err := Await(r.T.Context(), timeout, what, cond)
	if err != nil {
		r.T.Fatal(err)
	}
	return took
}

// VIPOnlyOn is a condition: owner holds vip on eth0 and none of others
// does.
func VIPOnlyOn(vip netip.Addr, owner *Node, others ...*Node) func() error {
	return func() error {
		ok, err := owner.HoldsVIP(vip)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s does not hold %s", owner.Name, vip)
		}
		for _, o := range others {
			ok, err := o.HoldsVIP(vip)
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("%s holds %s too", o.Name, vip)
			}
		}
		return nil
	}
}
