package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// host is the dataplane's one boundary to the machine outside its BPF
// objects: links, routes, neighbours, ARP/NDP probes and XDP attachment,
// all inside the network namespace the dataplane was given.
type host struct {
	ns netns.NsHandle // netns.None(): the caller's namespace
	nl *netlink.Handle
}

func openHost(nsPath string) (*host, error) {
	h := &host{ns: netns.None()}
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
		}
		h.ns = ns
	}
	var err error
	if h.ns.IsOpen() {
		h.nl, err = netlink.NewHandleAt(h.ns)
	} else {
		h.nl, err = netlink.NewHandle()
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

func (h *host) close() {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.ns.IsOpen() {
		h.ns.Close()
	}
}

// do runs fn inside the namespace: on a fresh locked OS thread that is
// thrown away afterwards, so no other goroutine ever runs there. Calls
// that resolve an ifindex in the calling thread's namespace (attaching
// XDP, devmap updates, packet sockets, BPF_PROG_TEST_RUN with an ingress
// interface) go through it.
func (h *host) do(fn func() error) error {
	if !h.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with the goroutine.
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// iface is an interface the program attaches to or sends out of.
type iface struct {
	name   string
	index  int // the interface itself
	attach int // where XDP sees its frames: the parent of a VLAN device
	vlan   uint16
	mac    net.HardwareAddr
}

func (h *host) ifaceOf(l netlink.Link) iface {
	a := l.Attrs()
	ifc := iface{name: a.Name, index: a.Index, attach: a.Index, mac: a.HardwareAddr}
	if v, ok := l.(*netlink.Vlan); ok && a.ParentIndex > 0 {
		ifc.attach = a.ParentIndex
		ifc.vlan = uint16(v.VlanId)
	}
	return ifc
}

func (h *host) ifaceByName(name string) (iface, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return iface{}, fmt.Errorf("interface %s: %w", name, err)
	}
	return h.ifaceOf(l), nil
}

// egress is how a backend is reached.
type egress struct {
	local bool
	via   iface // the interface the route names; neighbours live there
}

// egressOf asks the kernel's routing table how addr is reached. Direct
// routing needs the backend on a connected network (no gateway) or local.
// links caches interfaces by index across calls of one pass.
func (h *host) egressOf(addr netip.Addr, links map[int]iface) (egress, error) {
	routes, err := h.nl.RouteGet(addr.AsSlice())
	if err != nil {
		return egress{}, fmt.Errorf("route to %s: %w", addr, err)
	}
	if len(routes) == 0 {
		return egress{}, fmt.Errorf("no route to %s", addr)
	}
	r := routes[0]
	if r.Type == unix.RTN_LOCAL {
		return egress{local: true}, nil
	}
	if r.Gw != nil {
		return egress{}, fmt.Errorf("%s is reached through gateway %s: direct routing needs backends on a connected network", addr, r.Gw)
	}
	if ifc, ok := links[r.LinkIndex]; ok {
		return egress{via: ifc}, nil
	}
	l, err := h.nl.LinkByIndex(r.LinkIndex)
	if err != nil {
		return egress{}, fmt.Errorf("route to %s: interface %d: %w", addr, r.LinkIndex, err)
	}
	ifc := h.ifaceOf(l)
	links[r.LinkIndex] = ifc
	return egress{via: ifc}, nil
}

type neighKey struct {
	link int
	addr netip.Addr
}

// usableNeigh reports whether a neighbour entry's MAC can be trusted.
func usableNeigh(n netlink.Neigh) bool {
	if len(n.HardwareAddr) != 6 || n.IP == nil {
		return false
	}
	return n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|
		netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
}

// neighbours dumps the kernel's neighbour tables.
func (h *host) neighbours() (map[neighKey]net.HardwareAddr, error) {
	list, err := h.nl.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	out := make(map[neighKey]net.HardwareAddr, len(list))
	for _, n := range list {
		if !usableNeigh(n) {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		out[neighKey{n.LinkIndex, a.Unmap()}] = n.HardwareAddr
	}
	return out, nil
}

// probe asks addrs (all on interface link) for their MAC addresses with ARP
// requests or NDP neighbour solicitations, and collects the answers until
// all came or the timeout passes. The kernel does not learn from answers
// to requests it did not send, so the answers are read here.
func (h *host) probe(linkIndex int, addrs []netip.Addr, timeout time.Duration) (map[netip.Addr]net.HardwareAddr, error) {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	found := make(map[netip.Addr]net.HardwareAddr)
	var errs []error
	if len(v4) > 0 {
		errs = append(errs, h.probeARP(linkIndex, v4, timeout, found))
	}
	if len(v6) > 0 {
		errs = append(errs, h.probeNDP(linkIndex, v6, timeout, found))
	}
	return found, errors.Join(errs...)
}

// probeARP and probeNDP run entirely on a thread inside the namespace:
// sockets are bound to it, but Go resolves IPv6 zones (interface names) in
// the namespace of the calling thread.
func (h *host) probeARP(linkIndex int, addrs []netip.Addr, timeout time.Duration, found map[netip.Addr]net.HardwareAddr) error {
	return h.do(func() error {
		ifi, err := net.InterfaceByIndex(linkIndex)
		if err != nil {
			return fmt.Errorf("arp on interface %d: %w", linkIndex, err)
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return fmt.Errorf("arp on %s: %w", ifi.Name, err)
		}
		defer c.Close()
		want := make(map[netip.Addr]bool, len(addrs))
		for _, a := range addrs {
			want[a] = true
			if err := c.Request(a); err != nil {
				return fmt.Errorf("arp request for %s on %s: %w", a, ifi.Name, err)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		for len(want) > 0 {
			p, _, err := c.Read()
			if err != nil {
				if isTimeout(err) {
					return nil
				}
				return fmt.Errorf("arp read on %s: %w", ifi.Name, err)
			}
			if p.Operation == arp.OperationReply && want[p.SenderIP] {
				found[p.SenderIP] = p.SenderHardwareAddr
				delete(want, p.SenderIP)
			}
		}
		return nil
	})
}

func (h *host) probeNDP(linkIndex int, addrs []netip.Addr, timeout time.Duration, found map[netip.Addr]net.HardwareAddr) error {
	return h.do(func() error {
		ifi, err := net.InterfaceByIndex(linkIndex)
		if err != nil {
			return fmt.Errorf("ndp on interface %d: %w", linkIndex, err)
		}
		c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return fmt.Errorf("ndp on %s: %w", ifi.Name, err)
		}
		defer c.Close()
		want := make(map[netip.Addr]bool, len(addrs))
		for _, a := range addrs {
			want[a] = true
			dst, err := ndp.SolicitedNodeMulticast(a)
			if err != nil {
				return err
			}
			ns := &ndp.NeighborSolicitation{
				TargetAddress: a,
				Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}},
			}
			if err := c.WriteTo(ns, nil, dst); err != nil {
				return fmt.Errorf("neighbour solicitation for %s on %s: %w", a, ifi.Name, err)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		for len(want) > 0 {
			m, _, _, err := c.ReadFrom()
			if err != nil {
				if isTimeout(err) {
					return nil
				}
				continue // not an NDP message we can parse
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || !want[na.TargetAddress] {
				continue
			}
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
					found[na.TargetAddress] = lla.Addr
					delete(want, na.TargetAddress)
				}
			}
		}
		return nil
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// attach links prog to the interface in the given mode. Auto tries the
// driver first and reports whether it fell back to generic mode.
func (h *host) attach(prog *ebpf.Program, ifindex int, mode Mode) (l link.Link, generic bool, err error) {
	err = h.do(func() error {
		flags := link.XDPDriverMode
		if mode == ModeGeneric {
			flags = link.XDPGenericMode
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
		if err != nil && mode == ModeAuto {
			var err2 error
			l, err2 = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
			if err2 == nil {
				generic = true
				return nil
			}
			err = errors.Join(err, err2)
		}
		return err
	})
	return l, generic, err
}

// neighbourResubscribeDelay is how long after a failed neighbour
// subscription (a netlink socket overrun, say) it is made again.
const neighbourResubscribeDelay = time.Second

// watchNeighbours calls fn for every neighbour entry the kernel adds or
// changes with a usable MAC, until done closes. A subscription that fails
// later (onErr hears why) is made again, listing the existing entries so
// that changes missed meanwhile are caught up.
func (h *host) watchNeighbours(done <-chan struct{}, wg *sync.WaitGroup, onErr func(error), fn func(neighKey, net.HardwareAddr)) error {
	subscribe := func(listExisting bool) (chan netlink.NeighUpdate, error) {
		ch := make(chan netlink.NeighUpdate, 256)
		opts := netlink.NeighSubscribeOptions{ErrorCallback: onErr, ListExisting: listExisting}
		if h.ns.IsOpen() {
			ns := h.ns
			opts.Namespace = &ns
		}
		if err := netlink.NeighSubscribeWithOptions(ch, done, opts); err != nil {
			return nil, fmt.Errorf("subscribe to neighbour changes: %w", err)
		}
		return ch, nil
	}
	ch, err := subscribe(false)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for u := range ch {
				if u.Type != unix.RTM_NEWNEIGH || !usableNeigh(u.Neigh) {
					continue
				}
				a, ok := netip.AddrFromSlice(u.IP)
				if !ok {
					continue
				}
				fn(neighKey{u.LinkIndex, a.Unmap()}, u.HardwareAddr)
			}
			// The subscription ended: closed (done) or failed.
			for ch = nil; ch == nil; {
				select {
				case <-done:
					return
				case <-time.After(neighbourResubscribeDelay):
				}
				if ch, err = subscribe(true); err != nil {
					onErr(err)
				}
			}
		}
	}()
	return nil
}
