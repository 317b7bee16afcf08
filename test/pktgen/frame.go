package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// UDPFrame builds an Ethernet/IPv4-or-IPv6/UDP frame with a payload of n
// zero bytes and correct IP and UDP checksums. The source port sits at
// offset 14+20 (IPv4) or 14+40 (IPv6), for Config.RandomSourcePort.
func UDPFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, n int) []byte {
	udp := make([]byte, 8+n)
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	var ip []byte
	etherType := uint16(0x0800)
	if src.Addr().Is4() {
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8] = 64
		ip[9] = 17
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^sum(0, ip))
		pseudo := append(append([]byte{}, ip[12:20]...), 0, 17, 0, 0)
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
		binary.BigEndian.PutUint16(udp[6:], ^sum(sum(0, pseudo), udp))
	} else {
		etherType = 0x86dd
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		ip[6] = 17
		ip[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		pseudo := append(append([]byte{}, ip[8:40]...), 0, 0, 0, 0, 0, 0, 0, 17)
		binary.BigEndian.PutUint32(pseudo[32:], uint32(len(udp)))
		binary.BigEndian.PutUint16(udp[6:], ^sum(sum(0, pseudo), udp))
	}
	f := make([]byte, 0, 14+len(ip)+len(udp))
	f = append(f, dstMAC...)
	f = append(f, srcMAC...)
	f = binary.BigEndian.AppendUint16(f, etherType)
	f = append(f, ip...)
	return append(f, udp...)
}

// sum is the ones'-complement sum of b added to acc, folded to 16 bits.
func sum(acc uint16, b []byte) uint16 {
	s := uint32(acc)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
