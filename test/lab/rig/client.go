package rig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/internal/testnet"
)

// Client is a namespace on the segment with one or more source addresses.
// Every request opens a new TCP connection (so a new source port) from
// one of them.
type Client struct {
	rig   *Rig
	Name  string
	NS    *testnet.Namespace
	Addrs []netip.Addr
	// Timeout bounds one request, connect included (default 1 s).
	Timeout time.Duration
}

// Client adds a client with the given source addresses.
func (r *Rig) Client(name string, addrs ...netip.Addr) *Client {
	t := r.T
	t.Helper()
	if len(addrs) == 0 {
		t.Fatalf("client %s needs an address", name)
	}
	ns := testnet.NewNamespace(t, name)
	prefixes := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		prefixes[i] = netip.PrefixFrom(a, Subnet.Bits())
	}
	port := r.Seg.Attach(ns, "eth0", prefixes...)
	r.remember(ns, port)
	// Packets the XDP dataplane forwards keep the checksum the sender
	// left; veth's offload would leave it for hardware that is not there.
	port.DisableTxChecksum()
	return &Client{rig: r, Name: name, NS: ns, Addrs: addrs, Timeout: time.Second}
}

// Get sends GET / to dst over a new connection from source address src
// and returns the body: the name of the node that answered.
func (c *Client) Get(ctx context.Context, src netip.Addr, dst netip.AddrPort) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	conn, err := c.dial(ctx, src, dst.String())
	if err != nil {
		return "", err
	}
	body, err := get(ctx, conn, dst.String(), "/")
	return string(body), err
}

// get sends one HTTP/1.1 request over conn, which it closes, and returns
// the body of a 200 answer. It does the I/O itself, unlike http.Transport,
// whose dials outlive a cancelled request: nothing may touch a namespace
// after the test has stopped its load.
func get(ctx context.Context, conn net.Conn, host, path string) ([]byte, error) {
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return nil, err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s", host, path, resp.Status)
	}
	return b, nil
}

// dial connects from src inside the client's namespace, on CPU 0. A veth
// carries a frame on the sending CPU all the way into the balancer's XDP
// program, whose round-robin cursor is per CPU: from one CPU, new flows
// alternate exactly between the backends.
func (c *Client) dial(ctx context.Context, src netip.Addr, addr string) (net.Conn, error) {
	var conn net.Conn
	err := c.NS.Do(func() error {
		var cpu0 unix.CPUSet
		cpu0.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
			return fmt.Errorf("pin to cpu 0: %w", err)
		}
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		var err error
		conn, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return conn, err
}

// Result is one request of a Load.
type Result struct {
	Start, End time.Time
	Source     netip.Addr
	Backend    string // who answered; empty on error
	Err        error
}

// OK reports whether the request got an answer.
func (r Result) OK() bool { return r.Err == nil }

// Load sends requests to a VIP from each of a client's addresses, one at
// a time per address, Every apart, until Stop.
type Load struct {
	client *Client
	dst    netip.AddrPort
	every  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	results []Result
	notify  chan struct{}
}

// StartLoad starts sending from srcs (default: every address of the
// client). The load stops when the test ends, if not before.
func (c *Client) StartLoad(dst netip.AddrPort, every time.Duration, srcs ...netip.Addr) *Load {
	if len(srcs) == 0 {
		srcs = c.Addrs
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{client: c, dst: dst, every: every, cancel: cancel, notify: make(chan struct{})}
	for _, src := range srcs {
		l.wg.Add(1)
		go l.run(ctx, src)
	}
	c.rig.T.Cleanup(l.Stop)
	return l
}

func (l *Load) run(ctx context.Context, src netip.Addr) {
	defer l.wg.Done()
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	for {
		r := Result{Start: time.Now(), Source: src}
		r.Backend, r.Err = l.client.Get(ctx, src, l.dst)
		r.End = time.Now()
		if ctx.Err() != nil {
			return // the stop cut this request short: not a result
		}
		l.mu.Lock()
		l.results = append(l.results, r)
		close(l.notify)
		l.notify = make(chan struct{})
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Stop stops sending and waits for the requests in flight.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}

// Results returns every result so far, in the order they ended.
func (l *Load) Results() []Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// Since returns the results of requests that started at or after t.
func (l *Load) Since(t time.Time) []Result {
	var out []Result
	for _, r := range l.Results() {
		if !r.Start.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// Changed is closed when the next result arrives.
func (l *Load) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

// Tally counts answers per backend and failures.
type Tally struct {
	Answers  map[string]int
	Failures int
	// LastErr is the latest failure.
	LastErr error
}

// Count tallies results.
func Count(results []Result) Tally {
	t := Tally{Answers: map[string]int{}}
	for _, r := range results {
		if r.OK() {
			t.Answers[r.Backend]++
		} else {
			t.Failures++
			t.LastErr = r.Err
		}
	}
	return t
}

// BySource groups results per source address.
func BySource(results []Result) map[netip.Addr][]Result {
	out := map[netip.Addr][]Result{}
	for _, r := range results {
		out[r.Source] = append(out[r.Source], r)
	}
	return out
}

// LongestOutage is, per source, the longest time between the end of one
// answered request and the end of the next answered one (from's answers
// or from itself, to to when no answer came) within the window: how long
// that client could not get an answer.
func LongestOutage(results []Result, from, to time.Time) (time.Duration, netip.Addr) {
	var longest time.Duration
	var who netip.Addr
	for src, rs := range BySource(results) {
		last := from
		for _, r := range rs {
			if r.End.Before(from) || r.End.After(to) || !r.OK() {
				continue
			}
			if gap := r.End.Sub(last); gap > longest {
				longest, who = gap, src
			}
			last = r.End
		}
		if gap := to.Sub(last); gap > longest {
			longest, who = gap, src
		}
	}
	return longest, who
}

// Resolve makes the client learn dst's MAC (ARP) before it sends
// requests: it sends a datagram to dst's discard port until the neighbour
// entry is reachable. Without it the first connections' SYNs wait in the
// neighbour queue and leave from whichever CPU handles the ARP reply, so
// the balancer's per-CPU round-robin no longer alternates exactly.
func (c *Client) Resolve(ctx context.Context, dst netip.Addr) error {
	h, err := c.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	reachable := func() bool {
		neighs, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			return false
		}
		for _, n := range neighs {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == dst && n.State&(netlink.NUD_REACHABLE|netlink.NUD_PERMANENT) != 0 {
				return true
			}
		}
		return false
	}
	_, err = Await(ctx, 2*time.Second, fmt.Sprintf("%s resolves %s", c.Name, dst), func() error {
		if reachable() {
			return nil
		}
		err := c.NS.Do(func() error {
			conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.Addrs[0], 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write([]byte("arp"))
			return err
		})
		if err != nil {
			return err
		}
		return errors.New("no reachable neighbour entry yet")
	})
	return err
}
