package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Segment is one L2 segment: a bridge inside a namespace of its own, so
// that neither the bridge nor the switch-side veth ends touch the caller's
// namespace.
type Segment struct {
	t      testing.TB
	Switch *Namespace
	bridge int // ifindex of the bridge inside Switch
	ports  int
}

// NewSegment creates a bridge in a fresh namespace.
func NewSegment(t testing.TB) *Segment {
	t.Helper()
	sw := NewNamespace(t, "sw")
	seg := &Segment{t: t, Switch: sw}
	err := sw.withNetlink(func(h *netlink.Handle) error {
		mcastSnooping := false
		br := &netlink.Bridge{
			LinkAttrs:         netlink.LinkAttrs{Name: "br0"},
			MulticastSnooping: &mcastSnooping,
		}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		l, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		seg.bridge = l.Attrs().Index
		return h.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("create segment: %v", err)
	}
	return seg
}

// Port is a host's interface: one end of a veth pair inside the host's
// namespace; the peer end sits in another namespace (the segment's switch
// or the other host).
type Port struct {
	t        testing.TB
	NS       *Namespace
	Name     string
	Index    int
	MAC      net.HardwareAddr
	PeerNS   *Namespace
	PeerName string
}

// Attach connects host to the segment with a veth whose host end is named
// ifname, brings it up and adds the addresses to it.
func (s *Segment) Attach(host *Namespace, ifname string, addrs ...netip.Prefix) *Port {
	s.t.Helper()
	s.ports++
	peer := fmt.Sprintf("p%d-%s", s.ports, host.Name)
	if len(peer) > 15 {
		peer = peer[:15]
	}
	port, err := newVeth(s.t, s.Switch, peer, s.bridge, host, ifname, addrs)
	if err != nil {
		s.t.Fatalf("attach %s:%s to segment: %v", host.Name, ifname, err)
	}
	return port
}

// VethPair joins two namespaces directly: aName in a, bName in b, both up,
// with the given addresses on a's end. It returns a's end; its PeerName is
// bName.
func VethPair(t testing.TB, a *Namespace, aName string, b *Namespace, bName string, addrs ...netip.Prefix) *Port {
	t.Helper()
	port, err := newVeth(t, b, bName, 0, a, aName, addrs)
	if err != nil {
		t.Fatalf("veth %s:%s <-> %s:%s: %v", a.Name, aName, b.Name, bName, err)
	}
	return port
}

// newVeth creates the pair from inside peerNS, moving the host end into
// host, so neither end ever exists in the caller's namespace.
func newVeth(t testing.TB, peerNS *Namespace, peerName string, master int, host *Namespace, ifname string, addrs []netip.Prefix) (*Port, error) {
	err := peerNS.withNetlink(func(h *netlink.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: peerName, MasterIndex: master},
			PeerName:      ifname,
			PeerNamespace: netlink.NsFd(int(host.handle)),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		l, err := h.LinkByName(peerName)
		if err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
	if err != nil {
		return nil, err
	}
	port := &Port{t: t, NS: host, Name: ifname, PeerNS: peerNS, PeerName: peerName}
	err = host.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifname)
		if err != nil {
			return err
		}
		for _, p := range addrs {
			a := netlinkAddr(p)
			if p.Addr().Is6() {
				a.Flags = unix.IFA_F_NODAD
			}
			if err := h.AddrAdd(l, a); err != nil {
				return fmt.Errorf("add %s: %w", p, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		port.Index = l.Attrs().Index
		port.MAC = l.Attrs().HardwareAddr
		return nil
	})
	return port, err
}

// PeerXDPPass attaches an XDP program that passes every frame to the peer
// end. Frames an XDP program on this end sends out (XDP_TX, redirect) reach
// the peer only when the peer runs an XDP program of its own.
func (p *Port) PeerXDPPass() {
	p.t.Helper()
	if err := attachXDPPass(p.t, p.PeerNS, p.PeerName); err != nil {
		p.t.Fatalf("XDP_PASS program on %s:%s: %v", p.PeerNS.Name, p.PeerName, err)
	}
}

// XDPPass attaches an XDP_PASS program to this end (see PeerXDPPass).
func (p *Port) XDPPass() {
	p.t.Helper()
	if err := attachXDPPass(p.t, p.NS, p.Name); err != nil {
		p.t.Fatalf("XDP_PASS program on %s:%s: %v", p.NS.Name, p.Name, err)
	}
}

// DisableTxChecksum turns transmit checksum offload off on this end, like
// `ethtool -K IF tx off`: veth otherwise hands packets over with the
// checksum left for offload, and a packet an XDP program forwards keeps the
// wrong TCP checksum.
func (p *Port) DisableTxChecksum() {
	p.t.Helper()
	if err := p.NS.Do(func() error { return setTxChecksum(p.Name, false) }); err != nil {
		p.t.Fatalf("tx checksum off on %s:%s: %v", p.NS.Name, p.Name, err)
	}
}

func attachXDPPass(t testing.TB, ns *Namespace, ifname string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdp_pass",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer prog.Close()
	var l link.Link
	err = ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index})
		return err
	})
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = l.Close() })
	return nil
}

// setTxChecksum uses the legacy ETHTOOL_STXCSUM ioctl, which the kernel
// maps onto the tx-checksum-* features.
func setTxChecksum(ifname string, on bool) error {
	const ethtoolSTXCSUM = 0x17
	type ethtoolValue struct{ cmd, data uint32 }
	type ifreq struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	val := ethtoolValue{cmd: ethtoolSTXCSUM}
	if on {
		val.data = 1
	}
	var req ifreq
	copy(req.name[:], ifname)
	req.data = unsafe.Pointer(&val)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("SIOCETHTOOL: %w", errno)
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
