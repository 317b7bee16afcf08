package rig

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"

	"github.com/xkeep/xkeep/internal/testnet"
)

// WebPort is the port every node's web server listens on (the seed's
// httpd).
const WebPort = 80

// Node is a load balancer that is also a real server: a namespace on the
// segment with eth0 at Addr, the real-server VIPs on lo, and a web server
// on port 80 answering with the node's name.
type Node struct {
	rig  *Rig
	Name string
	NS   *testnet.Namespace
	Port *testnet.Port
	Addr netip.Addr
	Dir  string // this node's configurations, scripts and logs
	Web  *WebServer

	mu      sync.Mutex
	daemons int
}

// Node adds a node at addr. vips are the VIPs it serves as a DR real
// server (on lo, with ARP for them suppressed).
func (r *Rig) Node(name string, addr netip.Addr, vips ...netip.Addr) *Node {
	t := r.T
	t.Helper()
	ns := testnet.NewNamespace(t, name)
	port := r.Seg.Attach(ns, "eth0", netip.PrefixFrom(addr, Subnet.Bits()))
	r.remember(ns, port)
	// The XDP dataplane sends frames back out of eth0 (XDP_TX): the
	// switch-side veth end needs an XDP program to receive them.
	port.PeerXDPPass()
	for _, vip := range vips {
		if err := ns.AddAddr("lo", netip.PrefixFrom(vip, vip.BitLen())); err != nil {
			t.Fatalf("%s: VIP %s on lo: %v", name, vip, err)
		}
	}
	// A DR real server must not answer ARP for (or announce) the VIP on
	// lo; while MASTER the VIP is on eth0 too, and arp_ignore=1 answers
	// for addresses of the receiving interface.
	for key, val := range map[string]string{
		"net/ipv4/conf/all/arp_ignore":    "1",
		"net/ipv4/conf/all/arp_announce":  "2",
		"net/ipv4/conf/eth0/arp_ignore":   "1",
		"net/ipv4/conf/eth0/arp_announce": "2",
	} {
		if err := ns.Sysctl(key, val); err != nil {
			t.Fatalf("%s: sysctl %s: %v", name, key, err)
		}
	}
	dir := filepath.Join(r.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Node{rig: r, Name: name, NS: ns, Port: port, Addr: addr, Dir: dir}
	n.Web = newWebServer(t, name, ns, filepath.Join(dir, "web.running"))
	if err := n.Web.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// HoldsVIP reports whether the VIP is on eth0, where VRRP puts it on the
// master (the real server's copy on lo does not count).
func (n *Node) HoldsVIP(vip netip.Addr) (bool, error) {
	h, err := n.NS.Netlink()
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return false, fmt.Errorf("%s: %w", n.Name, err)
	}
	family := netlink.FAMILY_V4
	if vip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(l, family)
	if err != nil {
		return false, fmt.Errorf("%s: %w", n.Name, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == vip {
			return true, nil
		}
	}
	return false, nil
}

// LinkDown and LinkUp set the node's eth0 down or up.
func (n *Node) LinkDown() error { return n.NS.LinkDown("eth0") }

// LinkUp sets eth0 up again.
func (n *Node) LinkUp() error { return n.NS.LinkUp("eth0") }

// WebServer is a node's HTTP server on port 80: it answers every request
// with the node's name and counts them. Stop and Start it to play the
// seed's `systemctl stop httpd`.
type WebServer struct {
	t    testing.TB
	name string
	ns   *testnet.Namespace
	// runFile exists while the server listens (for the check script).
	runFile string

	mu     sync.Mutex
	srv    *http.Server
	served atomic.Int64
}

func newWebServer(t testing.TB, name string, ns *testnet.Namespace, runFile string) *WebServer {
	w := &WebServer{t: t, name: name, ns: ns, runFile: runFile}
	t.Cleanup(w.Stop)
	return w
}

// Start listens on 0.0.0.0:80 in the node's namespace (the VIP on lo and
// eth0, and the node's own address, for TCP_CHECK).
func (w *WebServer) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		return nil
	}
	var ln net.Listener
	err := w.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", WebPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("web server of %s: %w", w.name, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			w.served.Add(1)
			io.WriteString(rw, w.name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if err := os.WriteFile(w.runFile, nil, 0o644); err != nil {
		ln.Close()
		return fmt.Errorf("web server of %s: %w", w.name, err)
	}
	w.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.t.Logf("web server of %s: %v", w.name, err)
		}
	}()
	return nil
}

// Stop closes the listener and every open connection: new connections are
// refused (RST), as when httpd is stopped.
func (w *WebServer) Stop() {
	w.mu.Lock()
	srv := w.srv
	w.srv = nil
	w.mu.Unlock()
	if srv != nil {
		_ = os.Remove(w.runFile)
		_ = srv.Close()
	}
}

// Running reports whether the server is started.
func (w *WebServer) Running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.srv != nil
}

// Served is how many requests the server answered.
func (w *WebServer) Served() int64 { return w.served.Load() }

// XDPAttached reports whether an XDP program is attached to eth0.
func (n *Node) XDPAttached() (bool, error) {
	return n.NS.XDPAttached("eth0")
}

// Pins lists what is pinned in the node's pin directory (relative
// paths); none when the directory does not exist.
func (n *Node) Pins() ([]string, error) {
	var pins []string
	root := n.PinDir()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			pins = append(pins, rel)
		}
		return nil
	})
	return pins, err
}

// IPVSServices counts the IPVS virtual services in the node's namespace.
func (n *Node) IPVSServices() (int, error) {
	h, err := ipvs.New(n.NS.Path())
	if err != nil {
		return 0, fmt.Errorf("%s: ipvs: %w", n.Name, err)
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		return 0, fmt.Errorf("%s: ipvs: %w", n.Name, err)
	}
	return len(svcs), nil
}

// DataplaneGone reports what of a dataplane is still on the node: an XDP
// program on eth0, pins, IPVS services (where the kernel has IPVS).
func (n *Node) DataplaneGone(dataplane string) error {
	var errs []error
	if attached, err := n.XDPAttached(); err != nil || attached {
		errs = append(errs, fmt.Errorf("XDP program attached to eth0 (%v)", err))
	}
	if pins, err := n.Pins(); err != nil || len(pins) > 0 {
		errs = append(errs, fmt.Errorf("pinned in %s: %q (%v)", n.PinDir(), pins, err))
	}
	if dataplane == "ipvs" {
		if c, err := n.IPVSServices(); err != nil || c > 0 {
			errs = append(errs, fmt.Errorf("%d IPVS services (%v)", c, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}
