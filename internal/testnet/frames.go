package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Live frames: a packet source and a packet sink at kernel speed, for
// forwarding benchmarks that must measure the forwarder, not a userspace
// sender. Both need BPF; the source needs Linux 5.18
// (BPF_F_TEST_XDP_LIVE_FRAMES).

// xdpMd is struct xdp_md, the context BPF_PROG_RUN takes for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// InjectFrames runs prog over count copies of frame in live-frame mode as
// if they had arrived on ifname in the namespace: what prog returns
// happens for real (XDP_PASS hands the frame to the network stack, XDP_TX
// sends it back out of ifname, XDP_REDIRECT redirects it). With a nil prog
// every frame is passed to the stack. It returns how long the kernel took,
// which includes the stack's processing of passed frames (done in the
// same call, in batches of 64).
func (ns *Namespace) InjectFrames(prog *ebpf.Program, ifname string, frame []byte, count uint32) (time.Duration, error) {
	if prog == nil {
		pass, err := xdpReturning(2) // XDP_PASS
		if err != nil {
			return 0, fmt.Errorf("load XDP_PASS program: %w", err)
		}
		defer pass.Close()
		prog = pass
	}
	var elapsed time.Duration
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		start := time.Now()
		_, err = prog.Run(&ebpf.RunOptions{
			Data:      frame,
			Repeat:    count,
			Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			Context:   xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifc.Index)},
			BatchSize: 64,
		})
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inject %d frames on %s:%s: %w", count, ns.Name, ifname, err)
	}
	return elapsed, nil
}

func xdpReturning(verdict int32) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, verdict), asm.Return()},
		License:      "GPL",
	})
}

// FrameSink counts and drops every frame arriving on a port, in XDP: the
// far end of a forwarding benchmark. A veth end running an XDP program also
// receives frames its peer XDP_TXes or redirects.
type FrameSink struct {
	counts *ebpf.Map
}

// Sink attaches a FrameSink to this end of the port; it is removed when
// the test ends.
func (p *Port) Sink() *FrameSink {
	p.t.Helper()
	s, err := newFrameSink(p.t, p.NS, p.Name)
	if err != nil {
		p.t.Fatalf("frame sink on %s:%s: %v", p.NS.Name, p.Name, err)
	}
	return s
}

// PeerSink attaches a FrameSink to the peer end of the port.
func (p *Port) PeerSink() *FrameSink {
	p.t.Helper()
	s, err := newFrameSink(p.t, p.PeerNS, p.PeerName)
	if err != nil {
		p.t.Fatalf("frame sink on %s:%s: %v", p.PeerNS.Name, p.PeerName, err)
	}
	return s
}

func newFrameSink(t testing.TB, ns *Namespace, ifname string) (*FrameSink, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("counter map: %w", err)
	}
	t.Cleanup(func() { counts.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "frame_sink",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word), // key 0
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, counts.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "drop"),
			// Per-CPU value: a plain increment is race free.
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
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
		return nil, fmt.Errorf("attach: %w", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return &FrameSink{counts: counts}, nil
}

// Frames is how many frames the sink has dropped so far.
func (s *FrameSink) Frames() (uint64, error) {
	var perCPU []uint64
	if err := s.counts.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read frame sink: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// UDPFrame builds an Ethernet/IPv4/UDP frame with a valid IP checksum and
// no UDP checksum (0, allowed over IPv4).
func UDPFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// AddNeighbor adds a permanent neighbour (ARP/NDP) entry on a link of the
// namespace, for benchmarks whose far end drops everything, ARP included.
func (ns *Namespace) AddNeighbor(link string, a netip.Addr, mac net.HardwareAddr) error {
	return ns.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		family := netlink.FAMILY_V4
		if a.Is6() {
			family = netlink.FAMILY_V6
		}
		return h.NeighSet(&netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       family,
			State:        netlink.NUD_PERMANENT,
			IP:           a.AsSlice(),
			HardwareAddr: mac,
		})
	})
}
