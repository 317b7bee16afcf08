// Package vrrptest has in-memory fakes of the vrrp Router's dependencies:
// a clock that only moves when told, a segment that carries adverts
// between routers, an address table and a script runner. They stand in
// for the kernel so the driver can be tested without root; the namespace
// tests in test/vrrp use the real ones.
package vrrptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/packet"
)

// Clock is a fake clock whose timers fire when Advance passes them.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

// NewClock returns a clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing d from now.
func (c *Clock) NewTimer(d time.Duration) vrrp.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), armed: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time forward by d, firing due timers in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *timer
		for _, t := range c.timers {
			if t.armed && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.armed = false
		select {
		case next.ch <- c.now:
		default:
		}
	}
	c.now = end
	c.mu.Unlock()
}

// NextTimer returns when the earliest armed timer fires.
func (c *Clock) NextTimer() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if t.armed && (next.IsZero() || t.at.Before(next)) {
			next = t.at
		}
	}
	return next, !next.IsZero()
}

type timer struct {
	c     *Clock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (t *timer) Chan() <-chan time.Time { return t.ch }
func (t *timer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.at, t.armed = t.c.now.Add(d), true
}
func (t *timer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.armed = false
}

// Segment is a shared L2 segment: what one host's Conn writes, every
// other host's Conn on the same interface name reads, encoded and decoded
// by the real codec.
type Segment struct {
	mu    sync.Mutex
	conns []*conn
}

// Host is one router's view of the segment: its network, addresses and
// announcements. Every interface name exists (up) until SetLink or
// RemoveLink says otherwise.
type Host struct {
	Seg  *Segment
	Addr netip.Addr // primary address on every interface
	mu   sync.Mutex
	vips map[netip.Prefix]string
	// Announced counts gratuitous ARPs per address.
	announced map[netip.Addr]int
	links     map[string]bool
	removed   map[string]bool
	listens   map[string]int
	failures  map[string]error
	watchers  []*linkWatch
}

// NewHost attaches a host with the given primary address.
func (s *Segment) NewHost(addr netip.Addr) *Host {
	return &Host{Seg: s, Addr: addr, vips: map[netip.Prefix]string{}, announced: map[netip.Addr]int{},
		links: map[string]bool{}, removed: map[string]bool{}, listens: map[string]int{}, failures: map[string]error{}}
}

type conn struct {
	host   *Host
	ifname string
	ch     chan datagram
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	groups []netip.Addr
}

type datagram struct {
	msg      []byte
	src, dst netip.Addr
}

// Listen implements vrrp.Network; a removed interface is
// vrrp.ErrNoInterface.
func (h *Host) Listen(ifname string, ipv6 bool) (vrrp.Conn, error) {
	h.mu.Lock()
	removed, failure := h.removed[ifname], h.failures[ifname]
	if !removed && failure == nil {
		h.listens[ifname]++
	}
	h.mu.Unlock()
	if removed {
		return nil, fmt.Errorf("listen on %s: %w", ifname, vrrp.ErrNoInterface)
	}
	if failure != nil {
		return nil, fmt.Errorf("listen on %s: %w", ifname, failure)
	}
	group := packet.GroupIPv4
	if ipv6 {
		group = packet.GroupIPv6
	}
	c := &conn{host: h, ifname: ifname, ch: make(chan datagram, 1024), closed: make(chan struct{}), groups: []netip.Addr{group}}
	h.Seg.mu.Lock()
	h.Seg.conns = append(h.Seg.conns, c)
	h.Seg.mu.Unlock()
	return c, nil
}

// PrimaryAddr implements vrrp.Network.
func (h *Host) PrimaryAddr(string, bool) (netip.Addr, error) { return h.Addr, nil }

// Links implements vrrp.Network.
func (h *Host) Links() (map[string]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]bool{}
	for k, v := range h.links {
		out[k] = v
	}
	return out, nil
}

// linkWatch is one running WatchLinks.
type linkWatch struct {
	fn     func(vrrp.LinkEvent)
	broken chan error
}

// WatchLinks implements vrrp.Network.
func (h *Host) WatchLinks(ctx context.Context, fn func(vrrp.LinkEvent)) error {
	w := &linkWatch{fn: fn, broken: make(chan error, 1)}
	h.mu.Lock()
	h.watchers = append(h.watchers, w)
	var now []vrrp.LinkEvent
	for name, up := range h.links {
		now = append(now, vrrp.LinkEvent{Name: name, Up: up})
	}
	h.mu.Unlock()
	for _, ev := range now {
		fn(ev)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-w.broken:
		return err
	}
}

// BreakWatch ends every running WatchLinks with err, as a netlink socket
// overrun ends the real one; changes from then on reach no watcher until
// WatchLinks is called again.
func (h *Host) BreakWatch(err error) {
	h.mu.Lock()
	ws := h.watchers
	h.watchers = nil
	h.mu.Unlock()
	for _, w := range ws {
		w.broken <- err
	}
}

// SetLink creates a link or changes its state, and tells the watchers.
func (h *Host) SetLink(name string, up bool) {
	h.notify(vrrp.LinkEvent{Name: name, Up: up})
}

// RemoveLink deletes a link: listening on it fails with
// vrrp.ErrNoInterface and nothing sent on it arrives, until SetLink
// creates it again.
func (h *Host) RemoveLink(name string) {
	h.notify(vrrp.LinkEvent{Name: name, Gone: true})
}

func (h *Host) notify(ev vrrp.LinkEvent) {
	h.mu.Lock()
	if ev.Gone {
		delete(h.links, ev.Name)
		h.removed[ev.Name] = true
	} else {
		h.links[ev.Name] = ev.Up
		delete(h.removed, ev.Name)
	}
	ws := slices.Clone(h.watchers)
	h.mu.Unlock()
	for _, w := range ws {
		w.fn(ev)
	}
}

// FailListen makes listening on an interface fail with err (nil: succeed
// again).
func (h *Host) FailListen(ifname string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures[ifname] = err
}

// OpenConns returns how many sockets are open on an interface.
func (h *Host) OpenConns(ifname string) int {
	h.Seg.mu.Lock()
	defer h.Seg.mu.Unlock()
	n := 0
	for _, c := range h.Seg.conns {
		select {
		case <-c.closed:
		default:
			if c.host == h && c.ifname == ifname {
				n++
			}
		}
	}
	return n
}

// Listens returns how many sockets were opened on an interface.
func (h *Host) Listens(ifname string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listens[ifname]
}

// usable reports whether a link exists and is up.
func (h *Host) usable(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	up, known := h.links[name]
	return !h.removed[name] && (!known || up)
}

func (c *conn) Read() (*packet.Packet, time.Duration, error) {
	select {
	case d := <-c.ch:
		p, err := packet.Decode(d.msg, d.src, d.dst, packet.TTL)
		return p, 0, err
	case <-c.closed:
		return nil, 0, net.ErrClosed
	}
}

// Write delivers msg to the other hosts' conns on the same interface
// name: every one for a unicast dst, those that joined dst for a
// multicast one.
func (c *conn) Write(src, dst netip.Addr, ttl uint8, msg []byte) error {
	if !src.IsValid() {
		src = c.host.Addr
	}
	if !c.host.usable(c.ifname) {
		return errors.New("link down or gone")
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	c.host.Seg.mu.Lock()
	defer c.host.Seg.mu.Unlock()
	for _, o := range c.host.Seg.conns {
		if o.host == c.host || o.ifname != c.ifname || !o.host.usable(o.ifname) || (dst.IsMulticast() && !o.joined(dst)) {
			continue
		}
		select {
		case <-o.closed:
		case o.ch <- datagram{msg: slices.Clone(msg), src: src, dst: dst}:
		default:
		}
	}
	return nil
}

func (c *conn) joined(g netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.groups, g)
}

// SetGroups implements vrrp.Conn.
func (c *conn) SetGroups(groups []netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = slices.Clone(groups)
	return nil
}

func (c *conn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// AddVIP implements vrrp.AddressManager.
func (h *Host) AddVIP(v vrrp.VIP, dev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vips[v.Prefix] = dev
	return nil
}

// RemoveVIP implements vrrp.AddressManager.
func (h *Host) RemoveVIP(v vrrp.VIP, dev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.vips, v.Prefix)
	return nil
}

// VIPs lists the addresses the host holds.
func (h *Host) VIPs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p := range h.vips {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}

// Announce implements vrrp.Announcer.
func (h *Host) Announce(ifname string, addrs []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range addrs {
		h.announced[a]++
	}
	return nil
}

// Announced returns how many announcements addr got.
func (h *Host) Announced(addr netip.Addr) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.announced[addr]
}

// Scripts is a fake script runner: each command's result comes from
// Result, and every run is recorded.
type Scripts struct {
	mu     sync.Mutex
	Result map[string]error
	runs   [][]string
}

// Run implements vrrp.ScriptRunner.
func (s *Scripts) Run(ctx context.Context, cmd vrrp.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, cmd.Argv)
	if s.Result == nil {
		return nil
	}
	return s.Result[cmd.Argv[0]]
}

// SetResult sets what running the program argv0 returns.
func (s *Scripts) SetResult(argv0 string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Result == nil {
		s.Result = map[string]error{}
	}
	s.Result[argv0] = err
}

// Runs returns the commands run so far.
func (s *Scripts) Runs() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// Deps returns vrrp.Deps using this host, clock and scripts.
func (h *Host) Deps(clock *Clock, scripts *Scripts) vrrp.Deps {
	return vrrp.Deps{Clock: clock, Network: h, Addrs: h, Announcer: h, Scripts: scripts}
}
