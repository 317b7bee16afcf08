package xdp

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
)

// The BPF structs hold addresses and ports in network byte order; their Go
// mirrors (generated) see them as native-endian integers. These helpers
// convert between the two so the bytes in the map are the bytes on the wire.

func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func familyOf(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// netPort turns a host-order port into the value whose memory is the port
// in network order.
func netPort(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func hostPort(p uint16) uint16 { return netPort(p) }

// maskWords is the client netmask persistence groups by, as address words;
// bits 0 means the full address.
func maskWords(bits int, is4 bool) [4]uint32 {
	total := 128
	if is4 {
		total = 32
	}
	if bits <= 0 || bits > total {
		bits = total
	}
	var b [16]byte
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	var w [4]uint32
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

func svcKeyOf(k dataplane.ServiceKey) balancerSvcKey {
	return balancerSvcKey{
		Addr:   addrWords(k.Addr),
		Port:   netPort(k.Port),
		Proto:  uint8(k.Protocol),
		Family: familyOf(k.Addr),
	}
}

func serviceKeyFrom(k balancerSvcKey) dataplane.ServiceKey {
	return dataplane.ServiceKey{
		Addr:     wordsAddr(k.Addr, k.Family),
		Port:     hostPort(k.Port),
		Protocol: dataplane.Protocol(k.Proto),
	}
}

func fragKeyOf(k dataplane.ServiceKey) balancerFragKey {
	return balancerFragKey{Addr: addrWords(k.Addr), Proto: uint8(k.Protocol), Family: familyOf(k.Addr)}
}
