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
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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
	ifi, err := interfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	var c Conn
	if is6 {
		c, err = listen6(ifi)
	} else {
		c, err = listen4(ifi)
	}
	if errors.Is(err, unix.ENODEV) {
		// The link went away while the socket was set up.
		err = fmt.Errorf("%s: %w (%v)", ifname, ErrNoInterface, err)
	}
	return c, err
}

// interfaceByName looks the link up, telling a missing one
// (ErrNoInterface) from a failed lookup.
func interfaceByName(ifname string) (*net.Interface, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%s: %w", ifname, ErrNoInterface)
		}
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	ifi, err := net.InterfaceByIndex(l.Attrs().Index)
	if err != nil || ifi.Name != ifname {
		return nil, fmt.Errorf("%s: %w", ifname, ErrNoInterface)
	}
	return ifi, nil
}

func setsockopts(sc syscall.RawConn, fn func(fd int) error) error {
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = fn(int(fd)) }); err != nil {
		return err
	}
	return serr
}

type conn4 struct {
	*rawSock
	mu sync.Mutex
	id uint16
}

// rawSock is a socket set up through the net and x/net packages, then
// detached from Go's poller: the router's epoll loop reads it directly
// (a socket left in Go's poller would wake the runtime for every packet
// even when nobody reads). Read, for the portable loop, puts it back
// into the poller on first use.
type rawSock struct {
	fd  int
	ufd int // urgent socket, see urgentSocket
	buf []byte
	oob []byte
	// ifindex, is6 and groups are what SetGroups needs: the groups
	// joined on both sockets.
	ifindex int
	is6     bool
	groups  []netip.Addr

	once sync.Once
	file *os.File
	sc   syscall.RawConn
}

// detach takes the socket out of pc: a duplicate descriptor, with pc
// closed (which removes it from Go's poller).
func detach(pc *net.IPConn) (int, error) {
	sc, err := pc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := sc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	pc.Close()
	return fd, derr
}

func newRawSock(fd int, ifi *net.Interface, is6 bool) (*rawSock, error) {
	group := packet.GroupIPv4
	if is6 {
		group = packet.GroupIPv6
	}
	s := &rawSock{fd: fd, buf: make([]byte, 65536), oob: make([]byte, 512),
		ifindex: ifi.Index, is6: is6, groups: []netip.Addr{group}}
	var err error
	if s.ufd, err = urgentSocket(ifi, is6); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

// pollable returns the socket as a RawConn in Go's poller.
func (s *rawSock) pollable() syscall.RawConn {
	s.once.Do(func() {
		s.file = os.NewFile(uintptr(s.fd), "vrrp")
		s.sc, _ = s.file.SyscallConn()
	})
	return s.sc
}

// SetGroups joins and leaves multicast groups on the interface, on the
// main and the urgent socket.
func (s *rawSock) SetGroups(groups []netip.Addr) error {
	for _, g := range groups {
		if !slices.Contains(s.groups, g) {
			if err := s.membership(g, true); err != nil {
				return fmt.Errorf("join %s: %w", g, err)
			}
		}
	}
	for _, g := range s.groups {
		if !slices.Contains(groups, g) {
			if err := s.membership(g, false); err != nil {
				return fmt.Errorf("leave %s: %w", g, err)
			}
		}
	}
	s.groups = slices.Clone(groups)
	return nil
}

func (s *rawSock) membership(g netip.Addr, join bool) error {
	for _, fd := range []int{s.fd, s.ufd} {
		var err error
		if s.is6 {
			opt := unix.IPV6_LEAVE_GROUP
			if join {
				opt = unix.IPV6_JOIN_GROUP
			}
			err = unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, opt, &unix.IPv6Mreq{Multiaddr: g.As16(), Interface: uint32(s.ifindex)})
		} else {
			opt := unix.IP_DROP_MEMBERSHIP
			if join {
				opt = unix.IP_ADD_MEMBERSHIP
			}
			err = unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, opt, &unix.IPMreqn{Multiaddr: g.As4(), Ifindex: int32(s.ifindex)})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *rawSock) sysfd() int    { return s.fd }
func (s *rawSock) urgentfd() int { return s.ufd }

func (s *rawSock) Close() error {
	unix.Close(s.ufd)
	var file *os.File
	s.once.Do(func() {}) // no poller registration after Close
	file = s.file
	if file != nil {
		return file.Close()
	}
	return unix.Close(s.fd)
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
	fd, err := detach(pc)
	if err != nil {
		return nil, err
	}
	s, err := newRawSock(fd, ifi, false)
	if err != nil {
		return nil, err
	}
	return &conn4{rawSock: s}, nil
}

// Read returns the next advert with its IP header (the raw socket hands
// the whole datagram over).
func (c *conn4) Read() (*packet.Packet, time.Duration, error) {
	n, oobn, err := recvmsg(c.pollable(), c.buf, c.oob)
	if err != nil {
		return nil, 0, err
	}
	return c.decode(n, oobn)
}

func (c *conn4) tryRead() (*packet.Packet, time.Duration, error) {
	n, oobn, err := recvmsgNoName(c.fd, c.buf, c.oob)
	if err == unix.EAGAIN {
		return nil, 0, errWouldBlock
	}
	if err != nil {
		return nil, 0, err
	}
	return c.decode(n, oobn)
}

func (c *conn4) decode(n, oobn int) (*packet.Packet, time.Duration, error) {
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

// recvmsgNoName is recvmsg(2) without the source address (the IPv4
// header has it), which spares x/sys/unix's sockaddr conversion and its
// getsockopt per packet.
func recvmsgNoName(fd int, buf, oob []byte) (n, oobn int, err error) {
	return rawRecvmsg(fd, buf, oob, nil)
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
	if !src.Is4() || !dst.Is4() {
		return fmt.Errorf("advert from %v to %v: want IPv4 addresses", src, dst)
	}
	c.mu.Lock()
	c.id++
	if c.id == 0 {
		c.id = 1 // 0 would let the kernel choose
	}
	b := append(packet.EncodeIPv4Header(src, dst, ttl, c.id, len(msg)), msg...)
	c.mu.Unlock()
	return rawSendto4(c.fd, b, dst)
}

type conn6 struct {
	*rawSock
	ifi *net.Interface
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
			// Only the groups joined on this socket (Linux 4.20).
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); err != nil {
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
	fd, err := detach(pc)
	if err != nil {
		return nil, err
	}
	s, err := newRawSock(fd, ifi, true)
	if err != nil {
		return nil, err
	}
	return &conn6{rawSock: s, ifi: ifi}, nil
}

func (c *conn6) Read() (*packet.Packet, time.Duration, error) {
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err := c.pollable().Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, 0, err
	}
	return c.decode(n, oobn, from)
}

func (c *conn6) tryRead() (*packet.Packet, time.Duration, error) {
	var name unix.RawSockaddrInet6
	n, oobn, err := rawRecvmsg(c.fd, c.buf, c.oob, &name)
	if err == unix.EAGAIN {
		return nil, 0, errWouldBlock
	}
	if err != nil {
		return nil, 0, err
	}
	return c.decode(n, oobn, &unix.SockaddrInet6{Addr: name.Addr, ZoneId: name.Scope_id})
}

func (c *conn6) decode(n, oobn int, from unix.Sockaddr) (*packet.Packet, time.Duration, error) {
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
	return rawSendmsg6(c.fd, msg, cm.Marshal(), dst, c.ifi.Index)
}

// urgentSocket opens a second VRRP socket on the interface that only
// queues adverts with priority 0 (a classic BPF filter reads the
// priority byte). A backup leaves its main socket unread between
// timer expiries and wakes at once only for these: the adverts that
// merely push its Master_Down_Timer on are read, with their kernel
// arrival times, when the timer would fire.
func urgentSocket(ifi *net.Interface, is6 bool) (int, error) {
	fam, level := unix.AF_INET, unix.IPPROTO_IP
	if is6 {
		fam, level = unix.AF_INET6, unix.IPPROTO_IPV6
	}
	fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, packet.Protocol)
	if err != nil {
		return -1, fmt.Errorf("urgent socket: %w", err)
	}
	// IPv4 raw sockets see the IP header: the priority is 2 bytes after
	// it. IPv6 raw sockets see the VRRP message itself.
	prog := []unix.SockFilter{
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0},
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 2},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	if is6 {
		prog[0] = unix.SockFilter{Code: unix.BPF_LDX | unix.BPF_IMM, K: 0}
	}
	err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	if err == nil {
		err = unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
	}
	if err == nil && !is6 {
		err = unix.SetsockoptInt(fd, level, unix.IP_MULTICAST_ALL, 0)
		if err == nil {
			err = unix.SetsockoptIPMreqn(fd, level, unix.IP_ADD_MEMBERSHIP,
				&unix.IPMreqn{Multiaddr: packet.GroupIPv4.As4(), Ifindex: int32(ifi.Index)})
		}
	}
	if err == nil && is6 {
		err = unix.SetsockoptInt(fd, level, unix.IPV6_MULTICAST_ALL, 0)
		if err == nil {
			err = unix.SetsockoptIPv6Mreq(fd, level, unix.IPV6_JOIN_GROUP,
				&unix.IPv6Mreq{Multiaddr: packet.GroupIPv6.As16(), Interface: uint32(ifi.Index)})
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("urgent socket: %w", err)
	}
	return fd, nil
}

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
		if !ok || a.Flags&(unix.IFA_F_SECONDARY|unusableAddr) != 0 {
			continue
		}
		ip = ip.Unmap()
		if is6 == ip.IsLinkLocalUnicast() && (is6 || ip.Is4()) {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s address", ifname, map[bool]string{false: "IPv4", true: "IPv6 link-local"}[is6])
}

// unusableAddr flags an address nothing can be sent from yet (or ever):
// IPv6 duplicate address detection has not finished, or failed.
const unusableAddr = unix.IFA_F_TENTATIVE | unix.IFA_F_DADFAILED

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

// WatchLinks reports link changes from a netlink subscription, starting
// with a listing of the existing links.
func (LinuxNetwork) WatchLinks(ctx context.Context, fn func(LinkEvent)) error {
	ch := make(chan netlink.LinkUpdate, 256)
	errc := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
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
	addrs := make(chan netlink.AddrUpdate, 256)
	err = netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to addresses: %w", err)
	}
	last := map[string]LinkEvent{}
	names := map[int]string{} // by index, to see renames
	report := func(ev LinkEvent) {
		if prev, seen := last[ev.Name]; !seen || prev != ev {
			last[ev.Name] = ev
			fn(ev)
		}
	}
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
			a := u.Attrs()
			if old, ok := names[a.Index]; ok && old != a.Name {
				report(LinkEvent{Name: old, Gone: true}) // renamed
			}
			if u.Header.Type == unix.RTM_DELLINK {
				delete(names, a.Index)
				report(LinkEvent{Name: a.Name, Gone: true})
				continue
			}
			names[a.Index] = a.Name
			report(LinkEvent{Name: a.Name, Up: linkUp(u.Link)})
		case u, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			name, known := names[u.LinkIndex]
			if !u.NewAddr || u.Flags&unusableAddr != 0 || !known {
				continue
			}
			fn(LinkEvent{Name: name, Up: last[name].Up, AddrAdded: true})
		}
	}
}

// NetlinkAddrs adds and removes VIPs over a netlink socket of its own
// (opened in the namespace of its first use). Adding the address is the
// last step of a takeover, so each address's request is encoded once
// (with vishvananda/netlink's nl package) and then sent with a single
// sendto: no link lookup, allocation or runtime call on that path; the
// kernel has added the address when sendto returns.
type NetlinkAddrs struct {
	mu     sync.Mutex
	fd     int
	opened bool
	seq    uint32
	links  map[string]int // interface index by name
	reqs   map[addrReq][]byte
	buf    []byte
}

type addrReq struct {
	vip VIP
	dev string
	add bool
}

func (n *NetlinkAddrs) open() error {
	if n.opened {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink socket: %w", err)
	}
	// Errors come back without a copy of the request.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	// Bounds the (unexpected) wait for an answer not queued by the time
	// sendto returns.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	n.fd, n.opened = fd, true
	n.links, n.reqs, n.buf = map[string]int{}, map[addrReq][]byte{}, make([]byte, 8192)
	return nil
}

// request returns the encoded request for an address change, building
// it (and the opposite one) on first use.
func (n *NetlinkAddrs) request(k addrReq) ([]byte, error) {
	if b, ok := n.reqs[k]; ok {
		return b, nil
	}
	idx, ok := n.links[k.dev]
	if !ok {
		l, err := netlink.LinkByName(k.dev)
		if err != nil {
			return nil, err
		}
		idx = l.Attrs().Index
		n.links[k.dev] = idx
	}
	other := k
	other.add = !k.add
	n.reqs[other] = addrRequest(other.vip, idx, other.add)
	n.reqs[k] = addrRequest(k.vip, idx, k.add)
	return n.reqs[k], nil
}

// ForgetInterface drops what is cached about an interface that is gone
// (when it returns it has another index).
func (n *NetlinkAddrs) ForgetInterface(dev string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.opened {
		n.forget(dev)
	}
}

// PrepareVIP encodes the requests for an address ahead of its first
// change (the router calls it for every VIP it may add).
func (n *NetlinkAddrs) PrepareVIP(v VIP, dev string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.open() == nil {
		_, _ = n.request(addrReq{vip: v, dev: vipDev(v, dev), add: true})
	}
}

// forget drops what is cached about an interface (it may have been
// re-created with another index).
func (n *NetlinkAddrs) forget(dev string) {
	delete(n.links, dev)
	for k := range n.reqs {
		if k.dev == dev {
			delete(n.reqs, k)
		}
	}
}

// addrRequest encodes RTM_NEWADDR or RTM_DELADDR for a VIP as `ip addr
// add/del` would: the broadcast address of an IPv4 prefix up to /30,
// the label (IPv4 only), no duplicate address detection for IPv6.
func addrRequest(v VIP, ifindex int, add bool) []byte {
	typ, flags := unix.RTM_DELADDR, unix.NLM_F_ACK
	if add {
		typ, flags = unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK
	}
	req := nl.NewNetlinkRequest(typ, flags)
	a := v.Prefix.Addr()
	msg := nl.NewIfAddrmsg(unix.AF_INET)
	if a.Is6() {
		msg = nl.NewIfAddrmsg(unix.AF_INET6)
		msg.Flags = unix.IFA_F_NODAD
	}
	msg.Prefixlen, msg.Scope, msg.Index = uint8(v.Prefix.Bits()), v.Scope, uint32(ifindex)
	req.AddData(msg)
	ip := a.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	if a.Is4() {
		if v.Prefix.Bits() < 31 {
			mask := net.CIDRMask(v.Prefix.Bits(), 32)
			brd := make([]byte, 4)
			for i := range brd {
				brd[i] = ip[i] | ^mask[i]
			}
			req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, brd))
		}
		if v.Label != "" {
			req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(v.Label)))
		}
	}
	return req.Serialize()
}

// exec sends a request and returns the kernel's answer (an errno).
func (n *NetlinkAddrs) exec(req []byte) error {
	n.seq++
	binary.NativeEndian.PutUint32(req[8:12], n.seq)
	if err := rawSendtoKernel(n.fd, req); err != nil {
		return err
	}
	for {
		// The kernel answers within sendto: the answer is queued.
		k, err := rawRecvNoWait(n.fd, n.buf)
		if err == unix.EAGAIN {
			k, _, err = unix.Recvfrom(n.fd, n.buf, 0)
		}
		if err != nil {
			return fmt.Errorf("netlink answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(n.buf[:k])
		if err != nil {
			return fmt.Errorf("netlink answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue // an answer to an earlier request we gave up on
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return syscall.Errno(-errno)
			}
			return nil
		}
	}
}

// change adds or removes an address, looking the interface up again
// once when it was re-created.
func (n *NetlinkAddrs) change(v VIP, dev string, add bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.open(); err != nil {
		return err
	}
	k := addrReq{vip: v, dev: vipDev(v, dev), add: add}
	for attempt := 0; ; attempt++ {
		req, err := n.request(k)
		if err != nil {
			return err
		}
		err = n.exec(req)
		if errors.Is(err, unix.ENODEV) {
			n.forget(k.dev)
			if attempt == 0 {
				continue
			}
		}
		return err
	}
}

func vipDev(v VIP, dev string) string {
	if v.Dev != "" {
		return v.Dev
	}
	return dev
}

// AddVIP adds the address (no error when present).
func (n *NetlinkAddrs) AddVIP(v VIP, dev string) error {
	err := n.change(v, dev, true)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", v.Prefix, vipDev(v, dev), err)
	}
	return nil
}

// RemoveVIP removes the address (no error when absent, or when its
// interface is gone).
func (n *NetlinkAddrs) RemoveVIP(v VIP, dev string) error {
	err := n.change(v, dev, false)
	var nf netlink.LinkNotFoundError
	if err == nil || errors.As(err, &nf) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("remove %s from %s: %w", v.Prefix, vipDev(v, dev), err)
}

// LinuxAnnouncer sends gratuitous ARP requests (built with mdlayher/arp)
// and unsolicited neighbour advertisements (mdlayher/ndp). ARP leaves
// through one AF_PACKET socket of its own, opened in the namespace of its
// first use with protocol 0 so that the kernel queues it nothing: a round
// costs two ioctls (the interface's index and MAC, always current) and a
// sendto per address. Opening a socket per round cost a netlink lookup,
// and closing one waits for an RCU grace period.
type LinuxAnnouncer struct {
	mu     sync.Mutex
	fd     int
	opened bool
}

var allNodes = netip.MustParseAddr("ff02::1")

// Announce sends one announcement for each of addrs out of ifname.
func (a *LinuxAnnouncer) Announce(ifname string, addrs []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.opened {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket for gratuitous ARP: %w", err)
		}
		a.fd, a.opened = fd, true
	}
	ifi, err := a.link(ifname)
	if err != nil {
		return err
	}
	var v6 []netip.Addr
	for _, addr := range addrs {
		if !addr.Is4() {
			v6 = append(v6, addr)
			continue
		}
		if err := a.sendARP(ifi, addr); err != nil {
			return err
		}
	}
	if len(v6) > 0 {
		return announceNA(ifi, v6)
	}
	return nil
}

// Close closes the socket; a later Announce opens another.
func (a *LinuxAnnouncer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.opened {
		return nil
	}
	a.opened = false
	return unix.Close(a.fd)
}

// link looks the interface up with SIOCGIFINDEX and SIOCGIFHWADDR.
func (a *LinuxAnnouncer) link(ifname string) (*net.Interface, error) {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	if err := unix.IoctlIfreq(a.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	index := int(ifr.Uint32())
	// struct ifreq with ifr_hwaddr, a struct sockaddr.
	var hw struct {
		name   [unix.IFNAMSIZ]byte
		family uint16
		addr   [14]byte
		_      [8]byte
	}
	copy(hw.name[:], ifname)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(a.fd), unix.SIOCGIFHWADDR, uintptr(unsafe.Pointer(&hw))); errno != 0 {
		return nil, fmt.Errorf("hardware address of %s: %w", ifname, errno)
	}
	return &net.Interface{Index: index, Name: ifname, HardwareAddr: net.HardwareAddr(hw.addr[:6])}, nil
}

// htons puts a 16-bit value in network byte order, as sockaddr_ll wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func (a *LinuxAnnouncer) sendARP(ifi *net.Interface, addr netip.Addr) error {
	// Sender and target are both the VIP: every neighbour that has it
	// cached learns the new MAC.
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, addr, ethernet.Broadcast, addr)
	if err != nil {
		return err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	frame, err := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: ifi.HardwareAddr,
		EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(unix.ETH_P_ARP), Halen: 6}
	copy(to.Addr[:], ethernet.Broadcast)
	if err := unix.Sendto(a.fd, frame, unix.MSG_DONTWAIT, to); err != nil {
		return fmt.Errorf("gratuitous ARP for %s on %s: %w", addr, ifi.Name, err)
	}
	return nil
}

func announceNA(ifi *net.Interface, addrs []netip.Addr) error {
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return fmt.Errorf("ndp socket on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	for _, addr := range addrs {
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: addr,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		}
		if err := c.WriteTo(na, nil, allNodes); err != nil {
			return fmt.Errorf("neighbour advertisement for %s on %s: %w", addr, ifi.Name, err)
		}
	}
	return nil
}

// ExecRunner runs scripts as processes, refusing those its security
// policy says others could change.
type ExecRunner struct {
	// Security returns the policy in force (a reload may change it); nil
	// means RefuseWorldWritable.
	Security func() ScriptSecurity
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
	security := RefuseWorldWritable
	if r.Security != nil {
		security = r.Security()
	}
	if err := security.Check(path); err != nil {
		return fmt.Errorf("%w: %v", ErrInsecureScript, err)
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

// ScriptSecurity says which scripts (notify, vrrp_script, MISC_CHECK, ...)
// are refused.
type ScriptSecurity int32

const (
	// RefuseWorldWritable refuses a script that anyone can change: the
	// file or a directory above it writable by everyone (sticky
	// directories such as /tmp excepted). xkeep's default: keepalived
	// without enable_script_security runs such a script, as root.
	RefuseWorldWritable ScriptSecurity = iota
	// RefuseNonRoot refuses a script that any non-root user can change
	// (keepalived's enable_script_security).
	RefuseNonRoot
	// AllowAllScripts runs every script (xkeep run
	// --allow-insecure-scripts).
	AllowAllScripts
)

// Check returns why the policy refuses the script at path, or nil.
func (s ScriptSecurity) Check(path string) error {
	if s == AllowAllScripts {
		return nil
	}
	return checkScriptPath(path, s == RefuseNonRoot)
}

// checkScriptPath walks from the script up to /. Strict, it refuses, like
// keepalived's script_security, a path that a non-root user could
// replace: the file or any directory above it owned by another user and
// writable by it, or writable by a group other than root's or by everyone
// (a sticky directory such as /tmp only protects what root owns in it).
// Otherwise it refuses only what everyone may write.
func checkScriptPath(path string, strict bool) error {
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
		case strict && st.Uid != 0 && mode&0o200 != 0:
			return fmt.Errorf("%s is owned by uid %d and writable by it", p, st.Uid)
		case strict && st.Gid != 0 && mode&0o020 != 0 && !sticky:
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
func LinuxDeps(security func() ScriptSecurity) Deps {
	return Deps{
		Clock:     SystemClock(),
		Network:   LinuxNetwork{},
		Addrs:     &NetlinkAddrs{},
		Announcer: &LinuxAnnouncer{},
		Scripts:   ExecRunner{Security: security},
	}
}
