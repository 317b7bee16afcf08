package xdp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// lab is the seed's direct-routing setup in namespaces: a client, the load
// balancer holding the VIP, and two real servers with the VIP on lo (ARP
// for it suppressed) running HTTP, all on one bridge.
type lab struct {
	t       *testing.T
	client  *testnet.Namespace
	lb      *testnet.Namespace
	servers map[string]*testnet.Namespace
	mu      sync.Mutex
	answers map[string]int // requests each server answered
	http    *http.Client
}

var (
	labVIP     = netip.MustParseAddr("10.50.0.100")
	labServers = map[string]netip.Addr{"rs1": netip.MustParseAddr("10.50.0.11"), "rs2": netip.MustParseAddr("10.50.0.12")}
)

func newLab(t *testing.T) *lab {
	t.Helper()
	seg := testnet.NewSegment(t)
	l := &lab{
		t:       t,
		client:  testnet.NewNamespace(t, "cli"),
		lb:      testnet.NewNamespace(t, "lb"),
		servers: make(map[string]*testnet.Namespace),
		answers: make(map[string]int),
	}
	seg.Attach(l.client, "eth0", netip.MustParsePrefix("10.50.0.2/24")).DisableTxChecksum()
	// The LB sends frames back out with XDP_TX: its bridge-side veth end
	// needs an XDP program of its own to receive them.
	seg.Attach(l.lb, "eth0", netip.MustParsePrefix("10.50.0.1/24"), netip.PrefixFrom(labVIP, 32)).PeerXDPPass()
	for name, addr := range labServers {
		ns := testnet.NewNamespace(t, name)
		seg.Attach(ns, "eth0", netip.PrefixFrom(addr, 24))
		if err := ns.AddAddr("lo", netip.PrefixFrom(labVIP, 32)); err != nil {
			t.Fatal(err)
		}
		for key, val := range map[string]string{
			"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
			"net/ipv4/conf/eth0/arp_ignore": "1", "net/ipv4/conf/eth0/arp_announce": "2",
		} {
			if err := ns.Sysctl(key, val); err != nil {
				t.Fatal(err)
			}
		}
		l.servers[name] = ns
		l.serveHTTP(name, ns)
	}
	l.http = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true, // a new connection, so a new source port, per request
			DialContext:       l.dial,
		},
	}
	return l
}

func (l *lab) serveHTTP(name string, ns *testnet.Namespace) {
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(labVIP, 80).String())
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.answers[name]++
		l.mu.Unlock()
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	l.t.Cleanup(func() { srv.Close() })
}

// dial connects from the client namespace, from CPU 0. A veth processes a
// frame on the sending CPU, all the way into the LB's XDP program, so every
// SYN meets the same per-CPU round-robin cursor and rr counts are exact.
func (l *lab) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.client.Do(func() (err error) {
		var cpu0 unix.CPUSet
		cpu0.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
			return fmt.Errorf("pin to cpu 0: %w", err)
		}
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// get sends one request over a new connection and returns who answered.
func (l *lab) get() (string, error) {
	resp, err := l.http.Get("http://" + labVIP.String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (l *lab) answered() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int)
	for k, v := range l.answers {
		out[k] = v
	}
	return out
}

func labState(sched dataplane.Scheduler, names ...string) dataplane.DesiredState {
	var bes []dataplane.Backend
	for _, n := range names {
		bes = append(bes, dataplane.Backend{BackendKey: dataplane.BackendKey{Addr: labServers[n], Port: 80}, Weight: 1})
	}
	return dataplane.DesiredState{
		Services: []dataplane.Service{{
			Key:       dataplane.ServiceKey{Addr: labVIP, Port: 80, Protocol: dataplane.TCP},
			Scheduler: sched,
			Forward:   dataplane.DirectRouting,
			Backends:  bes,
		}},
		Served: []dataplane.ServedVIP{{Addr: labVIP, Interface: "eth0"}},
	}
}

func (l *lab) backendStats(dp *Dataplane) (dataplane.ServiceStats, map[string]dataplane.BackendStats) {
	l.t.Helper()
	st, err := dp.Stats()
	if err != nil {
		l.t.Fatal(err)
	}
	byName := make(map[string]dataplane.BackendStats)
	for _, s := range st.Services {
		for _, b := range s.Backends {
			for name, a := range labServers {
				if a == b.Addr {
					byName[name] = b
				}
			}
		}
		return s, byName
	}
	l.t.Fatal("no service in stats")
	return dataplane.ServiceStats{}, nil
}

func TestNamespaceHTTPThroughTheBalancer(t *testing.T) {
	l := newLab(t)
	dp, err := New(Options{NetNS: l.lb.Path(), Logger: testLogger(t), SweepInterval: -1, FlowTableSize: 1 << 14, MaxBackends: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	// The backends' MACs are not in the LB's neighbour table: Apply finds
	// them with ARP.
	if err := dp.Apply(labState(dataplane.RoundRobin, "rs1", "rs2")); err != nil {
		t.Fatal(err)
	}

	const requests = 40
	for i := 0; i < requests; i++ {
		if _, err := l.get(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	got := l.answered()
	// Each CPU has its own rr cursor; the client is pinned to one CPU,
	// but a SYN sent again or held for ARP runs where it is sent, which
	// can leave the split one off (seen once in the VM: 21/19).
	if d := got["rs1"] - requests/2; d < -1 || d > 1 || got["rs1"]+got["rs2"] != requests {
		t.Errorf("rr over two servers: answers %v, want %d each (one off when a SYN ran on another CPU)", got, requests/2)
	}
	svcStats, be := l.backendStats(dp)
	if svcStats.NewFlows != requests {
		t.Errorf("service counted %d new flows, want %d", svcStats.NewFlows, requests)
	}
	var sum uint64
	for name, b := range be {
		sum += b.Packets
		if b.NewFlows != uint64(got[name]) {
			t.Errorf("%s: %d new flows counted, server answered %d requests", name, b.NewFlows, got[name])
		}
		// SYN, request, FIN at least, per connection.
		if b.Packets < 3*uint64(got[name]) || b.Bytes < b.Packets*54 {
			t.Errorf("%s: %d packets, %d bytes for %d requests", name, b.Packets, b.Bytes, got[name])
		}
	}
	if sum != svcStats.Packets {
		t.Errorf("backend packets add up to %d, service counted %d", sum, svcStats.Packets)
	}

	// Remove rs2: the next connections all go to rs1, right after one Apply.
	if err := dp.Apply(labState(dataplane.RoundRobin, "rs1")); err != nil {
		t.Fatal(err)
	}
	before := l.answered()
	for i := 0; i < 10; i++ {
		if who, err := l.get(); err != nil || who != "rs1" {
			t.Fatalf("request %d after removing rs2: answered by %q, %v", i, who, err)
		}
	}
	if after := l.answered(); after["rs2"] != before["rs2"] || after["rs1"] != before["rs1"]+10 {
		t.Errorf("after removing rs2: answers went from %v to %v", before, after)
	}
}

// keepAlive is one HTTP/1.1 connection that carries several requests.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func (l *lab) keepAlive() *keepAlive {
	l.t.Helper()
	c, err := l.dial(context.Background(), "tcp4", netip.AddrPortFrom(labVIP, 80).String())
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

func (k *keepAlive) get() (string, error) {
	_ = k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestRestartKeepsFlows: established connections keep their server across
// a daemon restart (Release, then a new Dataplane on the same pins), also
// while no daemon runs and when the new one schedules differently.
func TestRestartKeepsFlows(t *testing.T) {
	l := newLab(t)
	pinDir := filepath.Join(testnet.PrivateBPFFS(t), "xkeep")
	opts := Options{NetNS: l.lb.Path(), PinDir: pinDir, Logger: testLogger(t), SweepInterval: -1, FlowTableSize: 1 << 14, MaxBackends: 1 << 10}
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(labState(dataplane.RoundRobin, "rs1", "rs2")); err != nil {
		first.Close()
		t.Fatal(err)
	}
	conns := make([]*keepAlive, 6)
	owner := make([]string, len(conns))
	for i := range conns {
		conns[i] = l.keepAlive()
		if owner[i], err = conns[i].get(); err != nil {
			first.Close()
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// Each CPU has its own rr cursor, and a SYN sent again or held for
	// ARP is scheduled on whichever CPU sends it: the client's pinning
	// makes the split exact almost always, but a count may be off by one.
	if c := count(owner); c["rs1"] < 2 || c["rs2"] < 2 {
		t.Errorf("connections went to %v, want 3 each (2-4 when a SYN ran on another CPU)", owner)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, k := range conns {
			if who, err := k.get(); err != nil || who != owner[i] {
				t.Errorf("%s: connection %d answered by %q (%v), want %s", when, i, who, err, owner[i])
			}
		}
	}
	// No daemon: the pinned link keeps the program attached.
	if !l.xdpAttached() {
		t.Error("program detached by Release")
	}
	check("between daemons")

	second, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			second.Close()
		}
	})
	check("new daemon before its first Apply")
	// The new daemon weights rs2 3:1 under wrr: new connections follow the
	// new weights, old ones stay where they are.
	state := labState(dataplane.WeightedRoundRobin, "rs1", "rs2")
	state.Services[0].Backends[1].Weight = 3
	if err := second.Apply(state); err != nil {
		t.Fatal(err)
	}
	check("after the new daemon's Apply")
	fresh := make(map[string]int)
	for i := 0; i < 8; i++ {
		who, err := l.get()
		if err != nil {
			t.Fatal(err)
		}
		fresh[who]++
	}
	// 6 of 8 on one CPU; split across two cursors, 5 to 7 (rr would give
	// about 4).
	if fresh["rs2"] < 5 || fresh["rs2"] > 7 {
		t.Errorf("new connections after restart went %v, want rs2 6 of 8 (wrr 1:3; 5-7 when SYNs ran on two CPUs)", fresh)
	}

	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if l.xdpAttached() {
		t.Error("program still attached after Close")
	}
	if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(pinDir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("pin directory left after Close: %v (%s)", err, strings.Join(names, " "))
	}
}

func (l *lab) xdpAttached() bool {
	l.t.Helper()
	attached, err := l.lb.XDPAttached("eth0")
	if err != nil {
		l.t.Fatal(err)
	}
	return attached
}
