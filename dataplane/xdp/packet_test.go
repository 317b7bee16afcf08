package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Hand-written frame builders for the fixtures. Checksums are left zero:
// the program neither checks nor changes them (DR leaves IP and L4 alone).

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
	etherVLAN = 0x8100
)

type frame struct {
	dst, src net.HardwareAddr
	vlan     int // VLAN id of an 802.1Q tag; -1: untagged
	pcp      int // priority bits of the tag
}

func (f frame) wrap(etherType uint16, payload []byte) []byte {
	b := make([]byte, 0, 18+len(payload))
	b = append(b, f.dst...)
	b = append(b, f.src...)
	if f.vlan >= 0 {
		b = binary.BigEndian.AppendUint16(b, etherVLAN)
		b = binary.BigEndian.AppendUint16(b, uint16(f.pcp)<<13|uint16(f.vlan))
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// ip wraps an L4 payload in an IPv4 or IPv6 header (by the source's
// family) and an Ethernet frame.
func (f frame) ip(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	if src.Is4() {
		return f.wrap(etherIPv4, ipv4(src, dst, proto, l4, ipv4Opts{}))
	}
	return f.wrap(etherIPv6, ipv6(src, dst, proto, l4))
}

type ipv4Opts struct {
	id              uint16
	moreFragments   bool
	fragOffset      uint16 // in 8-byte units
	options         int    // extra header words (IHL > 5)
	ihlOverride     int
	versionOverride int
}

func ipv4(src, dst netip.Addr, proto uint8, payload []byte, o ipv4Opts) []byte {
	hlen := 20 + 4*o.options
	b := make([]byte, hlen, hlen+len(payload))
	ihl := hlen / 4
	if o.ihlOverride > 0 {
		ihl = o.ihlOverride
	}
	version := 4
	if o.versionOverride > 0 {
		version = o.versionOverride
	}
	b[0] = byte(version<<4 | ihl)
	binary.BigEndian.PutUint16(b[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(b[4:], o.id)
	frag := o.fragOffset
	if o.moreFragments {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	for i := 20; i < hlen; i++ {
		b[i] = 1 // NOP options
	}
	return append(b, payload...)
}

// ext is an IPv6 extension header: its type and body (after next header
// and length; padded to 8 bytes).
type ext struct {
	typ  uint8
	body []byte
}

func ipv6(src, dst netip.Addr, proto uint8, payload []byte, exts ...ext) []byte {
	var chain []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		h := []byte{next, 0}
		h = append(h, e.body...)
		if e.typ == 44 { // fragment: fixed 8 bytes, reserved length byte
			h = h[:8]
		} else {
			for len(h)%8 != 0 {
				h = append(h, 0)
			}
			h[1] = byte(len(h)/8 - 1)
		}
		chain = append(chain, h...)
	}
	first := proto
	if len(exts) > 0 {
		first = exts[0].typ
	}
	b := make([]byte, 40, 40+len(chain)+len(payload))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(chain)+len(payload)))
	b[6] = first
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	b = append(b, chain...)
	return append(b, payload...)
}

// fragExt is an IPv6 fragment header body: offset in 8-byte units.
func fragExt(offset uint16, more bool, id uint32) ext {
	body := make([]byte, 6)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(body[0:], v)
	binary.BigEndian.PutUint32(body[2:], id)
	return ext{typ: 44, body: body}
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func tcp(sport, dport uint16, flags uint8, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	return append(b, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func icmp(typ, code uint8, rest uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	return append(b, body...)
}

func arpRequest(sender net.HardwareAddr, senderIP, target netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], etherIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:], sender)
	s, t := senderIP.As4(), target.As4()
	copy(b[14:], s[:])
	copy(b[24:], t[:])
	return b
}
