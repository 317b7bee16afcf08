package health_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/health/healthtest"
	"github.com/xkeep/xkeep/internal/testnet"
)

// lab is the test network: the checker runs in lb (10.77.0.1), the real
// servers in rs, one veth between them. rs holds 10.77.0.2-9, and
// 10.77.1.0/24 is routed to rs, which drops it: connecting there hangs.
type lab struct {
	lb, rs *testnet.Namespace
}

const blackhole = "10.77.1.1"

func newLab(t *testing.T) *lab {
	t.Helper()
	lb := testnet.NewNamespace(t, "hlb")
	rs := testnet.NewNamespace(t, "hrs")
	testnet.VethPair(t, lb, "eth0", rs, "eth0", netip.MustParsePrefix("10.77.0.1/24"))
	for i := 2; i <= 9; i++ {
		if err := rs.AddAddr("eth0", netip.MustParsePrefix(fmt.Sprintf("10.77.0.%d/24", i))); err != nil {
			t.Fatal(err)
		}
	}
	h, err := lb.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.77.1.0/24")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.77.0.2")}); err != nil {
		t.Fatal(err)
	}
	// Unprivileged ICMP sockets for PING_CHECK.
	if err := lb.Sysctl("net/ipv4/ping_group_range", "0 2147483647"); err != nil {
		t.Fatal(err)
	}
	// Port unreachable for every UDP probe, however close together.
	if err := rs.Sysctl("net/ipv4/icmp_ratelimit", "0"); err != nil {
		t.Fatal(err)
	}
	return &lab{lb: lb, rs: rs}
}

// listen opens a listener in ns.
func listen(t *testing.T, ns *testnet.Namespace, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func listenPacket(t *testing.T, ns *testnet.Namespace, addr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	if err := ns.Do(func() (err error) { c, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpServer accepts and closes connections; Stop and Start make its port
// refuse and accept again.
type tcpServer struct {
	t    *testing.T
	ns   *testnet.Namespace
	addr string
	mu   sync.Mutex
	l    net.Listener
	// peers are the source addresses of accepted connections.
	peers []string
}

func newTCPServer(t *testing.T, ns *testnet.Namespace, addr string) *tcpServer {
	s := &tcpServer{t: t, ns: ns, addr: addr}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func (s *tcpServer) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil {
		return
	}
	var l net.Listener
	if err := s.ns.Do(func() (err error) { l, err = net.Listen("tcp4", s.addr); return err }); err != nil {
		s.t.Fatal(err)
	}
	s.l = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.peers = append(s.peers, c.RemoteAddr().String())
			s.mu.Unlock()
			c.Close()
		}
	}()
}

func (s *tcpServer) lastPeer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) == 0 {
		return ""
	}
	return s.peers[len(s.peers)-1]
}

func (s *tcpServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil {
		s.l.Close()
		s.l = nil
	}
}

// webMode is how the test web server answers.
type webMode string

const (
	webOK    webMode = "ok"    // 200 with the body
	webFail  webMode = "fail"  // 500
	webClose webMode = "close" // close the connection without answering
	webHang  webMode = "hang"  // read the request, never answer
)

// webServer is a real HTTP server (net/http) that a test can make fail,
// close connections, hang or change its body.
type webServer struct {
	srv      *http.Server
	mu       sync.Mutex
	mode     webMode
	body     string
	status   int
	requests []*http.Request
	sni      []string
	hung     chan struct{} // receives when a request hangs
	release  chan struct{}
}

func newWebServer(t *testing.T, ns *testnet.Namespace, addr string, tlsCert *tls.Certificate) *webServer {
	t.Helper()
	w := &webServer{mode: webOK, body: "hello from the real server\n", status: 200,
		hung: make(chan struct{}, 16), release: make(chan struct{})}
	w.srv = &http.Server{Handler: w, ErrorLog: log.New(io.Discard, "", 0)}
	l := listen(t, ns, "tcp4", addr)
	if tlsCert != nil {
		l = tls.NewListener(l, &tls.Config{
			Certificates: []tls.Certificate{*tlsCert},
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				w.mu.Lock()
				w.sni = append(w.sni, hello.ServerName)
				w.mu.Unlock()
				return nil, nil
			},
		})
	}
	go w.srv.Serve(l)
	t.Cleanup(func() {
		close(w.release)
		w.srv.Close()
	})
	return w
}

func (w *webServer) set(mode webMode, status int, body string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mode, w.status, w.body = mode, status, body
}

func (w *webServer) setMode(mode webMode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mode = mode
}

func (w *webServer) lastRequest() *http.Request {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.requests) == 0 {
		return nil
	}
	return w.requests[len(w.requests)-1]
}

func (w *webServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	w.requests = append(w.requests, r)
	mode, status, body := w.mode, w.status, w.body
	w.mu.Unlock()
	switch mode {
	case webClose:
		c, _, err := rw.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	case webHang:
		w.hung <- struct{}{}
		<-w.release
	case webFail:
		http.Error(rw, "broken", http.StatusInternalServerError)
	default:
		rw.WriteHeader(status)
		io.WriteString(rw, body)
	}
}

// harness runs a Manager on a fake clock.
type harness struct {
	t   *testing.T
	clk *healthtest.Clock
	m   *health.Manager
	log *logBuffer
	// reads watches the checkers' connections, so a test can advance the
	// clock only once a probe is blocked reading (its last step's timer
	// armed), not while it is still between steps.
	reads *readWatch
	stop  func() // cancels Run and waits for it; idempotent
}

// readWatch is a health.Dialer whose connections count their Reads in
// progress.
type readWatch struct {
	health.Dialer
	mu      sync.Mutex
	blocked int
}

func (w *readWatch) DialContext(ctx context.Context, network string, ep health.Endpoint) (net.Conn, error) {
	c, err := w.Dialer.DialContext(ctx, network, ep)
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c, w: w}, nil
}

func (w *readWatch) inRead() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blocked
}

type watchedConn struct {
	net.Conn
	w *readWatch
}

func (c *watchedConn) Read(b []byte) (int, error) {
	c.w.mu.Lock()
	c.w.blocked++
	c.w.mu.Unlock()
	defer func() {
		c.w.mu.Lock()
		c.w.blocked--
		c.w.mu.Unlock()
	}()
	return c.Conn.Read(b)
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// start runs cfg with the dialer in lb, warmup drawn as 0 unless opts
// says otherwise.
func start(t *testing.T, lb *testnet.Namespace, cfg health.Config, opts health.Options) *harness {
	t.Helper()
	h := &harness{t: t, clk: healthtest.NewClock(epoch), log: &logBuffer{}}
	if opts.Clock == nil {
		opts.Clock = h.clk
	} else {
		h.clk = opts.Clock.(*healthtest.Clock)
	}
	if opts.Dialer == nil && lb != nil {
		opts.Dialer = healthtest.NamespaceDialer{NS: lb}
	}
	if opts.Dialer != nil {
		h.reads = &readWatch{Dialer: opts.Dialer}
		opts.Dialer = h.reads
	}
	if opts.Random == nil {
		opts.Random = func(n int64) int64 { return 0 }
	}
	opts.Logger = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := health.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return 10 s after cancel")
			}
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("manager log:\n%s", h.log)
		}
	})
	checks := 0
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			checks += len(rs.Checks)
		}
	}
	// Every checker has armed its first timer before the test moves time.
	testnet.Eventually(t, 10*time.Second, "checkers started", func() error {
		if n := len(h.clk.Pending()); n < checks {
			return fmt.Errorf("%d of %d timers", n, checks)
		}
		return nil
	})
	return h
}

// check returns the status of check k of real server rs of the first
// virtual server.
func (h *harness) check(rs netip.AddrPort, k int) health.CheckStatus {
	h.t.Helper()
	b := h.backend(rs)
	if k >= len(b.Checks) {
		h.t.Fatalf("%s has %d checks", rs, len(b.Checks))
	}
	return b.Checks[k]
}

func (h *harness) backend(rs netip.AddrPort) health.BackendStatus {
	h.t.Helper()
	for _, vs := range h.m.Snapshot().VirtualServers {
		if b, ok := vs.Backend(rs, false); ok {
			return b
		}
	}
	h.t.Fatalf("no backend %s", rs)
	return health.BackendStatus{}
}

// waitProbes waits until check k of rs has probed n times.
func (h *harness) waitProbes(rs netip.AddrPort, k int, n uint64) health.CheckStatus {
	h.t.Helper()
	var st health.CheckStatus
	testnet.Eventually(h.t, 10*time.Second, fmt.Sprintf("%s check %d probed %d times", rs, k, n), func() error {
		st = h.check(rs, k)
		if st.Probes < n {
			return fmt.Errorf("%d probes", st.Probes)
		}
		return nil
	})
	return st
}

// probe advances the clock by d, which must start the next probe of check
// k of rs, and waits for that probe to finish.
func (h *harness) probe(rs netip.AddrPort, k int, d time.Duration) health.CheckStatus {
	h.t.Helper()
	before := h.check(rs, k).Probes
	h.clk.Advance(d)
	return h.waitProbes(rs, k, before+1)
}

// next asserts the clock's pending timers (the checkers' schedule).
func (h *harness) next(want ...time.Duration) {
	h.t.Helper()
	if got := h.clk.Pending(); !slices.Equal(got, want) {
		h.t.Fatalf("pending timers %v, want %v", got, want)
	}
}

// waitPending waits until the clock has exactly these timers pending
// (a probe in flight has its timeout pending).
func (h *harness) waitPending(want ...time.Duration) {
	h.t.Helper()
	testnet.Eventually(h.t, 10*time.Second, fmt.Sprintf("timers %v pending", want), func() error {
		if got := h.clk.Pending(); !slices.Equal(got, want) {
			return fmt.Errorf("pending %v", got)
		}
		return nil
	})
}

// waitReading waits until n probes are blocked reading a reply. Reads
// that return at once (data already there) may be missed, so only wait
// for reads that have nothing to return until a timeout.
func (h *harness) waitReading(n int) {
	h.t.Helper()
	testnet.Eventually(h.t, 10*time.Second, fmt.Sprintf("%d probes reading", n), func() error {
		if got := h.reads.inRead(); got != n {
			return fmt.Errorf("%d reading", got)
		}
		return nil
	})
}

// waitState waits for a backend's state and weight.
func (h *harness) waitState(rs netip.AddrPort, state health.State, weight int) {
	h.t.Helper()
	testnet.Eventually(h.t, 10*time.Second, fmt.Sprintf("%s %s/%d", rs, state, weight), func() error {
		b := h.backend(rs)
		if b.State != state || b.Weight != weight {
			return fmt.Errorf("%s/%d", b.State, b.Weight)
		}
		return nil
	})
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scriptDir holds test scripts and the log they append to.
type scriptDir struct {
	t   *testing.T
	dir string
}

func newScriptDir(t *testing.T) *scriptDir { return &scriptDir{t: t, dir: t.TempDir()} }

// write creates an executable shell script.
func (s *scriptDir) write(name, body string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// notifier returns a script that appends its arguments to the log.
func (s *scriptDir) notifier() string {
	return s.write("notify.sh", `echo "$*" >> "`+s.logPath()+`"`)
}

func (s *scriptDir) logPath() string { return filepath.Join(s.dir, "notify.log") }

// lines returns the notify log.
func (s *scriptDir) lines() []string {
	b, err := os.ReadFile(s.logPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// waitLines waits until the notify log holds exactly want.
func (s *scriptDir) waitLines(want ...string) {
	s.t.Helper()
	testnet.Eventually(s.t, 10*time.Second, fmt.Sprintf("notify log %v", want), func() error {
		if got := s.lines(); !slices.Equal(got, want) {
			return fmt.Errorf("log %v", got)
		}
		return nil
	})
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// oneServer is a config with one virtual server of the given real
// servers.
func oneServer(rss ...health.RealServer) health.Config {
	return health.Config{VirtualServers: []health.VirtualServer{{Name: "TCP 10.77.9.9:80", Quorum: 1, RealServers: rss}}}
}

func timing(delayLoop, dbr time.Duration, retry int) health.Timing {
	return health.Timing{DelayLoop: delayLoop, DelayBeforeRetry: dbr, Retry: retry, ConnectTimeout: 3 * time.Second}
}
