package vrrp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// LinuxNetwork opens raw IP protocol 112 sockets and watches links with
// netlink.
type LinuxNetwork struct{}

// Listen opens the interface's VRRP socket: bound to the interface,
// joined to 224.0.0.18 or ff02::12 on it, multicast loopback off and
// TTL / hop limit 255.
func (LinuxNetwork) Listen(ifname string, is6 bool) (Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if is6 {
		return listen6(ifi)
	}
	return listen4(ifi)
}

func setsockopts(sc syscall.RawConn, fn func(fd int) error) error {
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = fn(int(fd)) }); err != nil {
		return err
	}
	return serr
}

type conn4 struct {
	pc  *net.IPConn
	sc  syscall.RawConn
	buf []byte
	oob []byte
	mu  sync.Mutex
	id  uint16
}

func listen4(ifi *net.Interface) (*conn4, error) {
	c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", packet.Protocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	pc := c.(*net.IPConn)
	sc, err := pc.SyscallConn()
	if err == nil {
		err = setsockopts(sc, func(fd int) error {
			if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name); err != nil {
				return fmt.Errorf("bind to %s: %w", ifi.Name, err)
			}
			// Only the groups joined on this socket, not every group the
			// host is in.
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
				return err
			}
			// Kernel receive timestamps: timers start at the arrival.
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
				return err
			}
			// We write the IP header: TOS, TTL and source are ours.
			return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		})
	}
	if err == nil {
		p := ipv4.NewPacketConn(pc)
		err = errors.Join(
			p.JoinGroup(ifi, &net.IPAddr{IP: packet.GroupIPv4.AsSlice()}),
			p.SetMulticastInterface(ifi),
			p.SetMulticastLoopback(false),
			p.SetMulticastTTL(packet.TTL),
			p.SetTOS(packet.TOS),
		)
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &conn4{pc: pc, sc: sc, buf: make([]byte, 65536), oob: make([]byte, 512)}, nil
}

// Read returns the next advert with its IP header (the raw socket hands
// the whole datagram over).
func (c *conn4) Read() (*packet.Packet, time.Duration, error) {
	n, oobn, err := recvmsg(c.sc, c.buf, c.oob)
	if err != nil {
		return nil, 0, err
	}
	age := time.Duration(0)
	cmsgs, _ := unix.ParseSocketControlMessage(c.oob[:oobn])
	for _, m := range cmsgs {
		if ts, ok := timestamp(m); ok {
			age = time.Since(ts)
		}
	}
	p, err := packet.DecodeIPv4(c.buf[:n])
	return p, age, err
}

// recvmsg reads one datagram and its control messages, waiting in the
// runtime's poller.
func recvmsg(sc syscall.RawConn, buf, oob []byte) (n, oobn int, err error) {
	var rerr error
	err = sc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, 0, err
	}
	return n, oobn, rerr
}

// timestamp reads an SO_TIMESTAMPNS control message.
func timestamp(m unix.SocketControlMessage) (time.Time, bool) {
	if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SO_TIMESTAMPNS || len(m.Data) < 16 {
		return time.Time{}, false
	}
	sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
	nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
	return time.Unix(sec, nsec), true
}

func (c *conn4) Write(src, dst netip.Addr, ttl uint8, msg []byte) error {
	c.mu.Lock()
	c.id++
	if c.id == 0 {
		c.id = 1 // 0 would let the kernel choose
	}
	b := append(packet.EncodeIPv4Header(src, dst, ttl, c.id, len(msg)), msg...)
	c.mu.Unlock()
	var werr error
	err := c.sc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), b, 0, &unix.SockaddrInet4{Addr: dst.As4()})
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

func (c *conn4) Close() error { return c.pc.Close() }

type conn6 struct {
	pc  *net.IPConn
	sc  syscall.RawConn
	p   *ipv6.PacketConn
	ifi *net.Interface
	buf []byte
	oob []byte
}

func listen6(ifi *net.Interface) (*conn6, error) {
	c, err := net.ListenPacket(fmt.Sprintf("ip6:%d", packet.Protocol), "::")
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	pc := c.(*net.IPConn)
	sc, err := pc.SyscallConn()
	if err == nil {
		err = setsockopts(sc, func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
				return err
			}
			return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		})
	}
	p := ipv6.NewPacketConn(pc)
	if err == nil {
		err = errors.Join(
			p.JoinGroup(ifi, &net.IPAddr{IP: packet.GroupIPv6.AsSlice()}),
			p.SetMulticastInterface(ifi),
			p.SetMulticastLoopback(false),
			p.SetMulticastHopLimit(packet.TTL),
			p.SetHopLimit(packet.TTL),
			p.SetTrafficClass(packet.TOS),
			p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true),
		)
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &conn6{pc: pc, sc: sc, p: p, ifi: ifi, buf: make([]byte, 65536), oob: make([]byte, 512)}, nil
}

func (c *conn6) Read() (*packet.Packet, time.Duration, error) {
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err := c.sc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, 0, err
	}
	sa, ok := from.(*unix.SockaddrInet6)
	if !ok {
		return nil, 0, &packet.DecodeError{Reason: packet.ReasonIP, Msg: "no IPv6 source address"}
	}
	var dst netip.Addr
	hop := -1
	age := time.Duration(0)
	cmsgs, _ := unix.ParseSocketControlMessage(c.oob[:oobn])
	for _, m := range cmsgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 16:
			dst = netip.AddrFrom16([16]byte(m.Data[:16]))
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			hop = int(binary.NativeEndian.Uint32(m.Data[:4]))
		default:
			if ts, ok := timestamp(m); ok {
				age = time.Since(ts)
			}
		}
	}
	if hop < 0 || !dst.IsValid() {
		return nil, age, &packet.DecodeError{Reason: packet.ReasonIP, Msg: "no IPv6 hop limit or destination"}
	}
	p, err := packet.Decode(c.buf[:n], netip.AddrFrom16(sa.Addr), dst, uint8(hop))
	return p, age, err
}

func (c *conn6) Write(src, dst netip.Addr, ttl uint8, msg []byte) error {
	cm := &ipv6.ControlMessage{HopLimit: int(ttl), IfIndex: c.ifi.Index}
	if src.IsValid() {
		cm.Src = src.AsSlice()
	}
	_, err := c.p.WriteTo(msg, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: c.ifi.Name})
	return err
}

func (c *conn6) Close() error { return c.pc.Close() }

// PrimaryAddr returns the interface's first primary IPv4 address, or its
// IPv6 link-local address.
func (LinuxNetwork) PrimaryAddr(ifname string, is6 bool) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	fam := netlink.FAMILY_V4
	if is6 {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Flags&unix.IFA_F_SECONDARY != 0 {
			continue
		}
		ip = ip.Unmap()
		if is6 == ip.IsLinkLocalUnicast() && (is6 || ip.Is4()) {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s address", ifname, map[bool]string{false: "IPv4", true: "IPv6 link-local"}[is6])
}

func linkUp(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// Links lists every link and whether it is up and running.
func (LinuxNetwork) Links() (map[string]bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(links))
	for _, l := range links {
		out[l.Attrs().Name] = linkUp(l)
	}
	return out, nil
}

// WatchLinks reports link changes from a netlink subscription.
func (LinuxNetwork) WatchLinks(ctx context.Context, fn func(string, bool)) error {
	ch := make(chan netlink.LinkUpdate, 64)
	errc := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to links: %w", err)
	}
	last := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case u, ok := <-ch:
			if !ok {
				return errors.New("link subscription closed")
			}
			name, up := u.Attrs().Name, linkUp(u.Link)
			if u.Header.Type == unix.RTM_DELLINK {
				up = false
			}
			if prev, seen := last[name]; !seen || prev != up {
				last[name] = up
				fn(name, up)
			}
		}
	}
}

// NetlinkAddrs adds and removes VIPs with netlink, over one netlink
// socket kept open (in the namespace of its first use), so a takeover
// costs one round trip per address.
type NetlinkAddrs struct {
	mu    sync.Mutex
	h     *netlink.Handle
	links map[string]netlink.Link
}

// link returns the named link, cached: a takeover then costs a single
// netlink round trip. A failed request drops the cache entry.
func (n *NetlinkAddrs) link(h *netlink.Handle, name string) (netlink.Link, error) {
	n.mu.Lock()
	l, ok := n.links[name]
	n.mu.Unlock()
	if ok {
		return l, nil
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.links == nil {
		n.links = map[string]netlink.Link{}
	}
	n.links[name] = l
	n.mu.Unlock()
	return l, nil
}

func (n *NetlinkAddrs) forget(name string) {
	n.mu.Lock()
	delete(n.links, name)
	n.mu.Unlock()
}

func (n *NetlinkAddrs) handle() (*netlink.Handle, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, err
		}
		n.h = h
	}
	return n.h, nil
}

func vipAddr(v VIP) *netlink.Addr {
	bits := 32
	if v.Prefix.Addr().Is6() {
		bits = 128
	}
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: v.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.Prefix.Bits(), bits)},
		Label: v.Label,
		Scope: int(v.Scope),
	}
	if bits == 128 {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func vipDev(v VIP, dev string) string {
	if v.Dev != "" {
		return v.Dev
	}
	return dev
}

// AddVIP adds the address (no error when present).
func (n *NetlinkAddrs) AddVIP(v VIP, dev string) error {
	h, err := n.handle()
	if err != nil {
		return err
	}
	name := vipDev(v, dev)
	link, err := n.link(h, name)
	if err != nil {
		return err
	}
	err = h.AddrAdd(link, vipAddr(v))
	if errors.Is(err, unix.ENODEV) {
		// The interface was re-created: look it up again.
		n.forget(name)
		if link, err = n.link(h, name); err == nil {
			err = h.AddrAdd(link, vipAddr(v))
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		n.forget(name)
		return fmt.Errorf("add %s to %s: %w", v.Prefix, name, err)
	}
	return nil
}

// RemoveVIP removes the address (no error when absent).
func (n *NetlinkAddrs) RemoveVIP(v VIP, dev string) error {
	h, err := n.handle()
	if err != nil {
		return err
	}
	name := vipDev(v, dev)
	link, err := n.link(h, name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	err = h.AddrDel(link, vipAddr(v))
	if errors.Is(err, unix.ENODEV) {
		n.forget(name)
		return nil
	}
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		n.forget(name)
		return fmt.Errorf("remove %s from %s: %w", v.Prefix, name, err)
	}
	return nil
}

// LinuxAnnouncer sends gratuitous ARP requests (mdlayher/arp) and
// unsolicited neighbour advertisements (mdlayher/ndp).
type LinuxAnnouncer struct{}

var allNodes = netip.MustParseAddr("ff02::1")

// Announce sends one announcement for addr out of ifname.
func (LinuxAnnouncer) Announce(ifname string, addr netip.Addr) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	if addr.Is4() {
		c, err := arp.Dial(ifi)
		if err != nil {
			return fmt.Errorf("arp socket on %s: %w", ifname, err)
		}
		defer c.Close()
		// Sender and target are both the VIP: every neighbour that has it
		// cached learns the new MAC.
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, addr, ethernet.Broadcast, addr)
		if err != nil {
			return err
		}
		return c.WriteTo(p, ethernet.Broadcast)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return fmt.Errorf("ndp socket on %s: %w", ifname, err)
	}
	defer c.Close()
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	return c.WriteTo(na, nil, allNodes)
}

// ExecRunner runs scripts as processes, with keepalived's script
// security.
type ExecRunner struct {
	// AllowInsecure runs scripts a non-root user could change.
	AllowInsecure bool
}

// Run runs cmd and waits for it, killing it (and its children) after the
// timeout.
func (r ExecRunner) Run(ctx context.Context, cmd Command) error {
	if len(cmd.Argv) == 0 {
		return errors.New("empty script")
	}
	path, err := exec.LookPath(cmd.Argv[0])
	if err != nil {
		return err
	}
	if !r.AllowInsecure {
		if err := CheckScriptSecurity(path); err != nil {
			return fmt.Errorf("%w: %v", ErrInsecureScript, err)
		}
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	c := exec.CommandContext(ctx, path, cmd.Argv[1:]...)
	c.Args[0] = cmd.Argv[0]
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 100 * time.Millisecond
	if cmd.User != "" {
		cred, err := lookupCredential(cmd.User)
		if err != nil {
			return err
		}
		c.SysProcAttr.Credential = cred
	}
	return c.Run()
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("script user: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// CheckScriptSecurity refuses, like keepalived's script_security, a
// script that a non-root user could replace: the file or any directory
// above it owned by another user and writable by it, or writable by a
// group other than root's or by everyone (a sticky directory such as
// /tmp only protects what root owns in it).
func CheckScriptSecurity(path string) error {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return err
	}
	for {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		mode := fi.Mode()
		sticky := fi.IsDir() && mode&os.ModeSticky != 0
		switch {
		case st.Uid != 0 && mode&0o200 != 0:
			return fmt.Errorf("%s is owned by uid %d and writable by it", p, st.Uid)
		case st.Gid != 0 && mode&0o020 != 0 && !sticky:
			return fmt.Errorf("%s is writable by group %d", p, st.Gid)
		case mode&0o002 != 0 && !sticky:
			return fmt.Errorf("%s is writable by everyone", p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}

// LinuxDeps returns the real implementations, acting in the calling
// process's network namespace.
func LinuxDeps(allowInsecureScripts bool) Deps {
	return Deps{
		Clock:     SystemClock(),
		Network:   LinuxNetwork{},
		Addrs:     &NetlinkAddrs{},
		Announcer: LinuxAnnouncer{},
		Scripts:   ExecRunner{AllowInsecure: allowInsecureScripts},
	}
}
