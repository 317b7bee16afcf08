// Package testnet builds throwaway networks of Linux network namespaces for
// tests: hosts, a bridge segment joining them, veth pairs, and processes
// started inside a namespace. Everything it creates is removed by t.Cleanup,
// also when the test fails. Nothing is created in the caller's namespace.
//
// It uses netlink and setns only (no ip(8)), so it also works inside the
// busybox VM of test/vm.
package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// CIEnv is the environment variable .ci/run sets; with it, tests that need
// root or the kernel fail instead of skipping.
const CIEnv = "XKEEP_CI"

// InCI reports whether the tests run under .ci/run.
func InCI() bool { return os.Getenv(CIEnv) != "" }

// RequireRoot skips the test, saying why, when it does not run as root, and
// fails it instead under CI, where every kernel test must run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("needs root (network namespaces, BPF), and %s is set: CI must run every test", CIEnv)
	}
	t.Skip("skipped: needs root for network namespaces and BPF (run `make test`, which uses sudo)")
}

// Namespace is a named network namespace (visible to `ip netns` as Name).
type Namespace struct {
	Name   string
	handle netns.NsHandle
}

// NewNamespace creates a namespace named "xk<label>-<random>" with its
// loopback up, and removes it when the test ends. Start long-running
// processes in it with StartProcess, which kills them first.
func NewNamespace(t testing.TB, label string) *Namespace {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("xk%s-%s", label, randomHex(3))
	var handle netns.NsHandle
	err := onFreshThread(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		handle = h
		// Addresses tests add are usable at once, without IPv6 DAD.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644)
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	ns := &Namespace{Name: name, handle: handle}
	t.Cleanup(ns.destroy)
	return ns
}

func (ns *Namespace) destroy() {
	ns.handle.Close()
	_ = netns.DeleteNamed(ns.Name)
}

// Path is the namespace's bind-mount, usable with setns(2) or `ip netns`.
func (ns *Namespace) Path() string { return "/var/run/netns/" + ns.Name }

// Handle returns the namespace's file descriptor handle (owned by ns).
func (ns *Namespace) Handle() netns.NsHandle { return ns.handle }

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// opens stay in the namespace after fn returns. The thread is discarded
// afterwards, so no other goroutine ever runs in the namespace by accident.
func (ns *Namespace) Do(fn func() error) error {
	return onFreshThread(func() error {
		if err := netns.Set(ns.handle); err != nil {
			return fmt.Errorf("enter namespace %s: %w", ns.Name, err)
		}
		return fn()
	})
}

// Netlink returns a netlink handle operating inside the namespace. The
// caller closes it.
func (ns *Namespace) Netlink() (*netlink.Handle, error) {
	return netlink.NewHandleAt(ns.handle)
}

// Run runs cmd inside the namespace and returns its combined output.
func (ns *Namespace) Run(cmd *exec.Cmd) ([]byte, error) {
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return out, err
}

// LinkUp sets a link in the namespace up.
func (ns *Namespace) LinkUp(name string) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
}

// LinkDown sets a link in the namespace down.
func (ns *Namespace) LinkDown(name string) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		return h.LinkSetDown(l)
	})
}

// AddAddr adds an address to a link of the namespace.
func (ns *Namespace) AddAddr(link string, p netip.Prefix) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		return h.AddrAdd(l, netlinkAddr(p))
	})
}

// XDPAttached reports whether an XDP program is attached to a link of
// the namespace.
func (ns *Namespace) XDPAttached(link string) (bool, error) {
	var attached bool
	err := ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		x := l.Attrs().Xdp
		attached = x != nil && (x.Attached || x.ProgId != 0)
		return nil
	})
	return attached, err
}

// DelAddr removes an address from a link of the namespace.
func (ns *Namespace) DelAddr(link string, p netip.Prefix) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		return h.AddrDel(l, netlinkAddr(p))
	})
}

// HasAddr reports whether the address is on any link of the namespace.
func (ns *Namespace) HasAddr(a netip.Addr) (bool, error) {
	var found bool
	err := ns.withNetlink(func(h *netlink.Handle) error {
		addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, ad := range addrs {
			if got, ok := netip.AddrFromSlice(ad.IP); ok && got.Unmap() == a {
				found = true
			}
		}
		return nil
	})
	return found, err
}

// Sysctl writes a sysctl inside the namespace, e.g.
// Sysctl("net/ipv4/conf/all/arp_ignore", "1").
func (ns *Namespace) Sysctl(key, value string) error {
	return ns.Do(func() error {
		// /proc/sys/net reflects the namespace of the opening thread.
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
}

func (ns *Namespace) withNetlink(fn func(*netlink.Handle) error) error {
	h, err := ns.Netlink()
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns.Name, err)
	}
	defer h.Close()
	if err := fn(h); err != nil {
		return fmt.Errorf("%s: %w", ns.Name, err)
	}
	return nil
}

// Eventually polls cond every 10 ms until it returns nil or the timeout
// passes, then fails the test with the last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// onFreshThread runs fn on a new locked OS thread that is thrown away
// afterwards, so namespace changes never leak to other goroutines.
func onFreshThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the runtime ends the thread with the goroutine.
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in namespace thread: %v", r)
			}
		}()
		errc <- fn()
	}()
	return <-errc
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func netlinkAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: prefixToIPNet(p)}
}
