// Package daemontest runs real `xkeep run` processes in network
// namespaces: a client, the load balancer running xkeep with the XDP
// dataplane, and real servers in direct-routing mode, all on one bridge.
// Everything here is real: packets, processes, kernel state. It needs
// root; under CI a missing root fails instead of skipping.
//
// XKEEP_DAEMON_DATAPLANE=ipvs runs the same tests on the IPVS dataplane
// (in the test/vm VM: this machine's kernel has no IPVS); XKEEP_BIN names
// a prebuilt xkeep binary (the VM has no Go toolchain).
package daemontest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/moby/ipvs"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"

	dto "github.com/prometheus/client_model/go"

	"github.com/xkeep/xkeep/internal/api"
	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

// xkeepBin is the binary TestMain builds once (or $XKEEP_BIN).
var xkeepBin string

// dataplaneKind is the --dataplane the tests run (xdp unless
// $XKEEP_DAEMON_DATAPLANE says ipvs).
var dataplaneKind = "xdp"

func TestMain(m *testing.M) {
	if k := os.Getenv("XKEEP_DAEMON_DATAPLANE"); k != "" {
		dataplaneKind = k
	}
	if bin := os.Getenv("XKEEP_BIN"); bin != "" {
		xkeepBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "xkeep-daemon-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xkeepBin = filepath.Join(dir, "xkeep")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go") // sudo may drop PATH
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

var (
	vip     = netip.MustParseAddr("10.60.0.100")
	lbAddr  = netip.MustParseAddr("10.60.0.1")
	cliAddr = netip.MustParseAddr("10.60.0.2")
	rsAddrs = []netip.Addr{netip.MustParseAddr("10.60.0.11"), netip.MustParseAddr("10.60.0.12")}
)

const (
	tcpPort = 80   // line service: each line is answered with the server's name
	udpPort = 5353 // datagram counter
)

// rig is the seed's direct-routing setup in namespaces.
type rig struct {
	t       *testing.T
	dir     string
	pinDir  string
	cli, lb *testnet.Namespace
	lbPort  *testnet.Port
	servers []*realServer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	testnet.RequireRoot(t)
	seg := testnet.NewSegment(t)
	r := &rig{t: t, dir: t.TempDir(), cli: testnet.NewNamespace(t, "cli"), lb: testnet.NewNamespace(t, "lb")}
	r.pinDir = filepath.Join(testnet.PrivateBPFFS(t), "lb")
	seg.Attach(r.cli, "eth0", netip.PrefixFrom(cliAddr, 24)).DisableTxChecksum()
	// XDP_TX'd frames reach the bridge only through an XDP program on its
	// end of the LB's veth.
	r.lbPort = seg.Attach(r.lb, "eth0", netip.PrefixFrom(lbAddr, 24))
	r.lbPort.PeerXDPPass()
	for i, a := range rsAddrs {
		ns := testnet.NewNamespace(t, fmt.Sprintf("rs%d", i+1))
		seg.Attach(ns, "eth0", netip.PrefixFrom(a, 24))
		// DR: the VIP on lo, never answered for by ARP.
		if err := ns.AddAddr("lo", netip.PrefixFrom(vip, 32)); err != nil {
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
		rs := &realServer{t: t, name: fmt.Sprintf("rs%d", i+1), addr: a, ns: ns}
		rs.listen()
		rs.serveUDP()
		r.servers = append(r.servers, rs)
	}
	return r
}

// conf is the rig's keepalived.conf.
type conf struct {
	// DelayLoop, Retry, DelayBeforeRetry and ConnectTimeout are the TCP
	// service's checker timings, in seconds.
	DelayLoop, Retry, DelayBeforeRetry, ConnectTimeout int
	// NotifyStop is a notify_stop command.
	NotifyStop string
	// Extra is appended verbatim (more virtual servers).
	Extra string
	// Algo is the TCP service's lb_algo.
	Algo string
}

var confTemplate = template.Must(template.New("conf").Parse(`global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 60
    priority 150
    version 3
    advert_int 0.5
    virtual_ipaddress {
        {{.VIP}}/32
    }
{{- if .NotifyStop}}
    notify_stop "{{.NotifyStop}}"
{{- end}}
}
virtual_server {{.VIP}} {{.TCPPort}} {
    delay_loop {{.DelayLoop}}
    lb_algo {{.Algo}}
    lb_kind DR
    protocol TCP
{{- range .Servers}}
    real_server {{.}} {{$.TCPPort}} {
        weight 1
        TCP_CHECK {
            connect_timeout {{$.ConnectTimeout}}
            retry {{$.Retry}}
            delay_before_retry {{$.DelayBeforeRetry}}
        }
    }
{{- end}}
}
virtual_server {{.VIP}} {{.UDPPort}} {
    delay_loop {{.DelayLoop}}
    lb_algo rr
    lb_kind DR
    protocol UDP
{{- range .Servers}}
    real_server {{.}} {{$.UDPPort}} {
        TCP_CHECK {
            connect_port {{$.TCPPort}}
            connect_timeout {{$.ConnectTimeout}}
        }
    }
{{- end}}
}
{{.Extra}}`))

func (c conf) render() string {
	if c.DelayLoop == 0 {
		c.DelayLoop = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 1
	}
	if c.DelayBeforeRetry == 0 {
		c.DelayBeforeRetry = 1
	}
	if c.Algo == "" {
		c.Algo = "rr"
	}
	var b bytes.Buffer
	err := confTemplate.Execute(&b, struct {
		conf
		VIP              netip.Addr
		TCPPort, UDPPort int
		Servers          []netip.Addr
	}{c, vip, tcpPort, udpPort, rsAddrs})
	if err != nil {
		panic(err)
	}
	return b.String()
}

// writeConf writes the configuration file the daemon runs.
func (r *rig) writeConf(text string) string {
	r.t.Helper()
	path := filepath.Join(r.dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// xkeep is a running `xkeep run`.
type xkeep struct {
	r      *rig
	cmd    *exec.Cmd
	proc   *testnet.Process
	log    *testnet.SyncBuffer
	socket string
}

// start runs `xkeep run` in the LB namespace on the configuration file.
func (r *rig) start(c conf) *xkeep {
	r.t.Helper()
	return r.startConf(c.render(), nil)
}

// startConf runs `xkeep run` on the configuration text, with env added
// to the environment.
func (r *rig) startConf(text string, env []string) *xkeep {
	r.t.Helper()
	return r.startWith(text, env)
}

// startArgs runs `xkeep run` with extra flags, which override the rig's.
func (r *rig) startArgs(text string, args ...string) *xkeep {
	r.t.Helper()
	return r.startWith(text, nil, args...)
}

func (r *rig) startWith(text string, env []string, extra ...string) *xkeep {
	r.t.Helper()
	path := r.writeConf(text)
	x := &xkeep{r: r, log: &testnet.SyncBuffer{}, socket: filepath.Join(r.dir, "xkeep.sock")}
	x.cmd = exec.Command(xkeepBin, "run", "-f", path,
		"--dataplane", dataplaneKind, "--xdp-mode", "auto",
		"--metrics-listen", "127.0.0.1:9650",
		"--socket", x.socket,
		"--pin-dir", r.pinDir,
		"--log-format", "text", "--log-level", "debug")
	x.cmd.Args = append(x.cmd.Args, extra...)
	x.cmd.Stdout, x.cmd.Stderr = x.log, x.log
	if env != nil {
		x.cmd.Env = append(os.Environ(), env...)
	}
	p, err := r.lb.StartProcess(r.t, x.cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	x.proc = p
	r.t.Cleanup(func() {
		if p.Running() {
			_ = x.cmd.Process.Kill()
			<-p.Done()
		}
		if r.t.Failed() || os.Getenv("XKEEP_TEST_LOGS") != "" {
			r.t.Logf("--- xkeep log ---\n%s", x.log.String())
		}
	})
	return x
}

// waitServing waits until VI_1 is MASTER and both services are served
// with every real server up.
func (x *xkeep) waitServing(timeout time.Duration) status.Snapshot {
	x.r.t.Helper()
	var snap status.Snapshot
	testnet.Eventually(x.r.t, timeout, "xkeep serves the VIP with every real server up", func() error {
		var err error
		if snap, err = x.status(); err != nil {
			return err
		}
		if len(snap.Instances) == 0 || snap.Instances[0].State != status.StateMaster {
			return fmt.Errorf("instances %+v", snap.Instances)
		}
		for _, s := range snap.Services {
			if !s.Active {
				return fmt.Errorf("service %s not served", s.Name())
			}
			for _, b := range s.Backends {
				if b.State != "up" {
					return fmt.Errorf("service %s backend %s:%d %s", s.Name(), b.Addr, b.Port, b.State)
				}
			}
		}
		if snap.Apply.LastError != "" {
			return fmt.Errorf("apply: %s", snap.Apply.LastError)
		}
		return nil
	})
	return snap
}

func (x *xkeep) status() (status.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.NewClient(x.socket).Status(ctx)
}

// signal sends sig and waits (up to limit) for the process to exit,
// returning how long that took.
func (x *xkeep) signal(sig syscall.Signal, limit time.Duration) time.Duration {
	x.r.t.Helper()
	start := time.Now()
	if err := x.cmd.Process.Signal(sig); err != nil {
		x.r.t.Fatal(err)
	}
	select {
	case <-x.proc.Done():
	case <-time.After(limit):
		x.r.t.Fatalf("xkeep did not exit within %v of %v", limit, sig)
	}
	return time.Since(start)
}

// scrape reads /metrics from inside the LB namespace.
func (x *xkeep) scrape() (map[string]*dto.MetricFamily, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := x.r.lb.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get("http://127.0.0.1:9650/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// metricValue is the value of the one sample of name whose labels
// include want.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, error) {
	f, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("no metric %s", name)
	}
	var found []float64
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			has := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					has = true
				}
			}
			match = match && has
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d samples of %s with %v", len(found), name, want)
	}
	return found[0], nil
}

// realServer answers TCP lines with its name and counts UDP datagrams.
type realServer struct {
	t    *testing.T
	name string
	addr netip.Addr
	ns   *testnet.Namespace

	mu       sync.Mutex
	ln       net.Listener
	conns    []net.Conn
	datagram atomic.Int64
}

// listen starts (or restarts) the TCP service on every address.
func (s *realServer) listen() {
	s.t.Helper()
	var ln net.Listener
	if err := s.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", tcpPort))
		return err
	}); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, s.name+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	s.t.Cleanup(func() { s.stop() })
}

// stop closes the listener (new connections are refused) and keeps
// established connections.
func (s *realServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func (s *realServer) serveUDP() {
	s.t.Helper()
	var pc net.PacketConn
	if err := s.ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", udpPort))
		return err
	}); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.datagram.Add(1)
		}
	}()
	s.t.Cleanup(func() {
		pc.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
}

// client is a TCP connection from the client namespace through the VIP.
type client struct {
	c  net.Conn
	rd *bufio.Reader
}

// dial opens a connection to the VIP's TCP service.
func (r *rig) dial() (*client, error) {
	var c net.Conn
	err := r.cli.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(vip, tcpPort).String(), 3*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &client{c: c, rd: bufio.NewReader(c)}, nil
}

// ask sends a line and returns the name of the real server answering.
func (c *client) ask() (string, error) {
	_ = c.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c.c, "who\n"); err != nil {
		return "", err
	}
	line, err := c.rd.ReadString('\n')
	return strings.TrimSpace(line), err
}

func (c *client) Close() { c.c.Close() }

// heldConns are open connections through the VIP, each with the real
// server that answered it first.
type heldConns struct {
	t     testing.TB
	conns []*client
	owner []string
}

// holdConns opens n connections and asks each once; they close when the
// test ends.
func (r *rig) holdConns(n int) *heldConns {
	r.t.Helper()
	h := &heldConns{t: r.t}
	for range n {
		c, err := r.dial()
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(c.Close)
		who, err := c.ask()
		if err != nil {
			r.t.Fatal(err)
		}
		h.conns = append(h.conns, c)
		h.owner = append(h.owner, who)
	}
	return h
}

// askAll fails the test unless every connection is still answered by
// the real server that answered it first.
func (h *heldConns) askAll(when string) {
	h.t.Helper()
	for i, c := range h.conns {
		who, err := c.ask()
		if err != nil {
			h.t.Fatalf("%s: connection %d: %v", when, i, err)
		}
		if who != h.owner[i] {
			h.t.Fatalf("%s: connection %d answered by %s, was %s", when, i, who, h.owner[i])
		}
	}
}

// who opens a new connection and returns the real server answering it.
func (r *rig) who() (string, error) {
	c, err := r.dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ask()
}

// sendUDP sends n datagrams to the VIP's UDP service, each from a new
// socket (a new source port, so a new flow).
func (r *rig) sendUDP(n int) error {
	return r.cli.Do(func() error {
		for i := range n {
			c, err := net.Dial("udp4", netip.AddrPortFrom(vip, udpPort).String())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c, "datagram %d", i)
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// hasVIP reports whether the LB holds the VIP.
func (r *rig) hasVIP() bool {
	r.t.Helper()
	ok, err := r.lb.HasAddr(vip)
	if err != nil {
		r.t.Fatal(err)
	}
	return ok
}

// requireXDP skips a test about the XDP dataplane's own behaviour when
// the tests run on IPVS.
func requireXDP(t *testing.T, why string) {
	t.Helper()
	if dataplaneKind != "xdp" {
		t.Skipf("skipped on --dataplane=%s: %s", dataplaneKind, why)
	}
}

// forwarding reports whether the LB's dataplane intercepts VIP traffic:
// an XDP program on eth0, or IPVS services.
func (r *rig) forwarding() bool {
	r.t.Helper()
	if dataplaneKind == "ipvs" {
		return len(r.ipvsServices()) > 0
	}
	return r.xdpAttached()
}

// ipvsServices lists the IPVS services in the LB's namespace.
func (r *rig) ipvsServices() []*ipvs.Service {
	r.t.Helper()
	h, err := ipvs.New(r.lb.Path())
	if err != nil {
		r.t.Fatal(err)
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		r.t.Fatal(err)
	}
	return svcs
}

// ipvsHasDest reports whether the LB's IPVS service on port has addr as
// a destination.
func (r *rig) ipvsHasDest(port uint16, addr netip.Addr) bool {
	r.t.Helper()
	h, err := ipvs.New(r.lb.Path())
	if err != nil {
		r.t.Fatal(err)
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Port != port {
			continue
		}
		dests, err := h.GetDestinations(s)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, d := range dests {
			if a, ok := netip.AddrFromSlice(d.Address); ok && a.Unmap() == addr {
				return true
			}
		}
	}
	return false
}

// xdpAttached reports whether an XDP program is attached to the LB's
// eth0.
func (r *rig) xdpAttached() bool {
	r.t.Helper()
	attached, err := r.lb.XDPAttached("eth0")
	if err != nil {
		r.t.Fatal(err)
	}
	return attached
}

// pinned lists what is pinned in the daemon's pin directory.
func (r *rig) pinned() []string {
	entries, err := os.ReadDir(r.pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// addrEvents records address additions and removals in the LB namespace.
type addrEvents struct {
	mu     sync.Mutex
	events []string // "+10.60.0.100" / "-10.60.0.100"
}

func (r *rig) watchAddrs() *addrEvents {
	r.t.Helper()
	ev := &addrEvents{}
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeAt(r.lb.Handle(), ch, done); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { close(done) })
	go func() {
		for u := range ch {
			sign := "-"
			if u.NewAddr {
				sign = "+"
			}
			ev.mu.Lock()
			ev.events = append(ev.events, sign+u.LinkAddress.IP.String())
			ev.mu.Unlock()
		}
	}()
	return ev
}

func (e *addrEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// runXkeep runs an xkeep subcommand and returns its stdout, stderr and
// exit code.
func runXkeep(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, xkeepBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("xkeep %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}
