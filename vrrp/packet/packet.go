// Package packet encodes and decodes VRRP advertisements: VRRPv2 (RFC 3768)
// over IPv4 with no or simple-password authentication, and VRRPv3
// (RFC 5798) over IPv4 and IPv6.
//
// Decoding never panics: every malformed input returns a *DecodeError whose
// Reason the runtime counts by.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is VRRP's IP protocol number (and IPv6 next header).
const Protocol = 112

// protocolAH is IPsec AH (RFC 4302): keepalived's auth_type AH wraps the
// advert in it. It is recognised and rejected.
const protocolAH = 51

// TTL is the IPv4 TTL / IPv6 hop limit every multicast advert carries.
const TTL = 255

// TOS is the IPv4 type of service adverts are sent with (internetwork
// control), as keepalived sends them.
const TOS = 0xc0

// Multicast groups adverts are sent to.
var (
	GroupIPv4 = netip.MustParseAddr("224.0.0.18")
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// TypeAdvertisement is the only VRRP packet type.
const TypeAdvertisement = 1

// HeaderLen is the fixed part of a VRRP message.
const HeaderLen = 8

// AuthDataLen is the length of VRRPv2's authentication data.
const AuthDataLen = 8

// MaxV3Interval is the largest VRRPv3 interval (12 bits of centiseconds).
const MaxV3Interval = 4095 * 10 * time.Millisecond

// AuthType is VRRPv2's authentication type.
type AuthType uint8

// VRRPv2 authentication types (RFC 2338 section 5.3.6).
const (
	AuthNone AuthType = 0
	AuthPass AuthType = 1
	AuthAH   AuthType = 2
)

func (a AuthType) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthPass:
		return "simple"
	case AuthAH:
		return "ah"
	}
	return fmt.Sprintf("auth-%d", uint8(a))
}

// Reason says why a packet was dropped; the runtime counts drops by it.
type Reason string

// Drop reasons. The codec returns the first group; the runtime adds the
// ones that depend on an instance's configuration.
const (
	ReasonLength   Reason = "length"    // too short, or lengths disagree
	ReasonIP       Reason = "ip_header" // malformed IP header
	ReasonVersion  Reason = "version"   // not VRRPv2/v3, or not the instance's
	ReasonType     Reason = "type"      // not an advertisement
	ReasonChecksum Reason = "checksum"  // VRRP or IPv4 header checksum wrong
	ReasonAuth     Reason = "auth"      // AH, unknown type, or wrong password
	ReasonTTL      Reason = "ttl"       // TTL/hop limit not 255 (or unicast_ttl)
	ReasonVRID     Reason = "vrid"      // no instance for this VRID
	ReasonInterval Reason = "interval"  // VRRPv2 interval differs, or zero
	ReasonAddrs    Reason = "addr_list" // address count or list mismatch
	ReasonFamily   Reason = "family"    // IPv4 addresses in IPv6 or the reverse
	ReasonSource   Reason = "source"    // source not an allowed unicast peer
)

// DecodeError is a packet rejected by the decoder or the runtime.
type DecodeError struct {
	Reason Reason
	Msg    string
}

func (e *DecodeError) Error() string { return fmt.Sprintf("vrrp %s: %s", e.Reason, e.Msg) }

func errf(r Reason, format string, args ...any) error {
	return &DecodeError{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the drop reason of err, or "other" when err carries none.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return "other"
}

// Advert is a VRRP advertisement.
type Advert struct {
	Version  uint8 // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in VRRPv2,
	// centiseconds in VRRPv3.
	Interval time.Duration
	// AuthType and AuthData are VRRPv2 only.
	AuthType AuthType
	AuthData [AuthDataLen]byte
	Addrs    []netip.Addr
	// Checksum is the value on the wire (filled by Decode).
	Checksum uint16
}

// Len is the length of the encoded message for addresses of the given
// family.
func (a *Advert) Len(is6 bool) int {
	n := HeaderLen
	if is6 {
		n += 16 * len(a.Addrs)
	} else {
		n += 4 * len(a.Addrs)
	}
	if a.Version == 2 {
		n += AuthDataLen
	}
	return n
}

// ChecksumMode selects how a VRRPv3 over IPv4 checksum is computed.
type ChecksumMode uint8

const (
	// PseudoHeader includes the IPv4 pseudo-header (RFC 5798 5.2.8 as
	// keepalived reads it; its default).
	PseudoHeader ChecksumMode = iota
	// MessageOnly sums the VRRP message alone, like VRRPv2 (keepalived's
	// v3_checksum_as_v2, RFC 9568).
	MessageOnly
)

// Marshal encodes the advert for the given IP source and destination (the
// VRRPv3 checksum covers them through the pseudo-header). mode matters only
// for VRRPv3 over IPv4.
func (a *Advert) Marshal(src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	is6 := src.Is6() && !src.Is4In6()
	if src.IsValid() && dst.IsValid() && is6 != (dst.Is6() && !dst.Is4In6()) {
		return nil, fmt.Errorf("encode vrrp: source %s and destination %s differ in family", src, dst)
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("encode vrrp: %d addresses (max 255)", len(a.Addrs))
	}
	b := make([]byte, a.Len(is6))
	switch a.Version {
	case 2:
		if is6 {
			return nil, errors.New("encode vrrp: VRRPv2 is IPv4 only")
		}
		secs := a.Interval / time.Second
		if a.Interval%time.Second != 0 || secs < 1 || secs > 255 {
			return nil, fmt.Errorf("encode vrrp: VRRPv2 interval %v is not 1..255 whole seconds", a.Interval)
		}
		b[4] = byte(a.AuthType)
		b[5] = byte(secs)
	case 3:
		cs := a.Interval / (10 * time.Millisecond)
		if a.Interval%(10*time.Millisecond) != 0 || cs < 1 || cs > 4095 {
			return nil, fmt.Errorf("encode vrrp: VRRPv3 interval %v is not 10ms..40.95s in centiseconds", a.Interval)
		}
		binary.BigEndian.PutUint16(b[4:], uint16(cs))
	default:
		return nil, fmt.Errorf("encode vrrp: version %d (want 2 or 3)", a.Version)
	}
	b[0] = a.Version<<4 | TypeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = byte(len(a.Addrs))
	off := HeaderLen
	for _, ad := range a.Addrs {
		ad = ad.Unmap()
		if ad.Is6() != is6 {
			return nil, fmt.Errorf("encode vrrp: address %s in an advert sent from %s", ad, src)
		}
		s := ad.AsSlice()
		copy(b[off:], s)
		off += len(s)
	}
	if a.Version == 2 {
		copy(b[off:], a.AuthData[:])
	}
	sum := Checksum(b, src, dst, a.Version == 3 && (is6 || mode == PseudoHeader))
	binary.BigEndian.PutUint16(b[6:], sum)
	return b, nil
}

// Checksum computes the checksum of VRRP message b (its checksum field
// taken as zero), with the pseudo-header of src and dst when pseudo is set.
func Checksum(b []byte, src, dst netip.Addr, pseudo bool) uint16 {
	var sum uint32
	if pseudo {
		s, d := src.Unmap(), dst.Unmap()
		sum = sumBytes(sum, s.AsSlice())
		sum = sumBytes(sum, d.AsSlice())
		if s.Is4() {
			sum += Protocol + uint32(len(b))
		} else {
			sum += uint32(len(b)>>16) + uint32(len(b)&0xffff) + Protocol
		}
	}
	if len(b) >= 8 {
		sum = sumBytes(sum, b[:6])
		sum = sumBytes(sum, b[8:])
	} else {
		sum = sumBytes(sum, b)
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// Packet is a decoded advert with the IP fields the checks need.
type Packet struct {
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	TOS uint8 // IPv4 only
	ID  uint16
	Advert
	// Length is the VRRP message length.
	Length int
	// ChecksumMode is the form of checksum that matched (VRRPv3 over IPv4
	// accepts both; the runtime compares it with the instance's).
	ChecksumMode ChecksumMode
}

// DecodeIPv4 decodes an IPv4 datagram carrying VRRP, as a raw socket
// returns it. Bytes after the IP total length (Ethernet padding) are
// ignored.
func DecodeIPv4(b []byte) (*Packet, error) {
	if len(b) < 20 {
		return nil, errf(ReasonLength, "%d bytes is shorter than an IPv4 header", len(b))
	}
	if b[0]>>4 != 4 {
		return nil, errf(ReasonIP, "IP version %d in an IPv4 packet", b[0]>>4)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || ihl > len(b) {
		return nil, errf(ReasonIP, "IPv4 header length %d with %d bytes", ihl, len(b))
	}
	if total < ihl || total > len(b) {
		return nil, errf(ReasonLength, "IPv4 total length %d with header %d and %d bytes captured", total, ihl, len(b))
	}
	if s := sumBytes(0, b[:ihl]); fold(s) != 0xffff {
		return nil, errf(ReasonChecksum, "bad IPv4 header checksum %#04x", binary.BigEndian.Uint16(b[10:]))
	}
	if frag := binary.BigEndian.Uint16(b[6:]); frag&0x3fff != 0 {
		return nil, errf(ReasonIP, "fragmented IPv4 packet (flags/offset %#04x)", frag)
	}
	switch b[9] {
	case Protocol:
	case protocolAH:
		return nil, errf(ReasonAuth, "IPsec AH authentication is not supported")
	default:
		return nil, errf(ReasonIP, "IP protocol %d is not VRRP", b[9])
	}
	p := &Packet{
		Src: netip.AddrFrom4([4]byte(b[12:16])),
		Dst: netip.AddrFrom4([4]byte(b[16:20])),
		TTL: b[8],
		TOS: b[1],
		ID:  binary.BigEndian.Uint16(b[4:]),
	}
	if err := p.decode(b[ihl:total]); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeIPv6 decodes an IPv6 packet carrying VRRP directly (no extension
// headers) as a packet capture holds it. Bytes after the payload length
// are ignored.
func DecodeIPv6(b []byte) (*Packet, error) {
	if len(b) < 40 {
		return nil, errf(ReasonLength, "%d bytes is shorter than an IPv6 header", len(b))
	}
	if b[0]>>4 != 6 {
		return nil, errf(ReasonIP, "IP version %d in an IPv6 packet", b[0]>>4)
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if 40+plen > len(b) {
		return nil, errf(ReasonLength, "IPv6 payload length %d with %d bytes captured", plen, len(b)-40)
	}
	switch b[6] {
	case Protocol:
	case protocolAH:
		return nil, errf(ReasonAuth, "IPsec AH authentication is not supported")
	default:
		return nil, errf(ReasonIP, "IPv6 next header %d is not VRRP", b[6])
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	return Decode(b[40:40+plen], src, dst, b[7])
}

// Decode decodes a VRRP message received from src to dst with the given
// TTL or hop limit, as an IPv6 raw socket returns it (or an IPv4 one
// without the header).
func Decode(msg []byte, src, dst netip.Addr, ttl uint8) (*Packet, error) {
	p := &Packet{Src: src.Unmap(), Dst: dst.Unmap(), TTL: ttl}
	if err := p.decode(msg); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Packet) decode(b []byte) error {
	is6 := p.Src.Is6()
	if p.Dst.IsValid() && p.Dst.Is6() != is6 {
		return errf(ReasonFamily, "source %s and destination %s differ in family", p.Src, p.Dst)
	}
	if len(b) < HeaderLen {
		return errf(ReasonLength, "%d bytes is shorter than the VRRP header", len(b))
	}
	p.Version = b[0] >> 4
	if t := b[0] & 0x0f; p.Version == 2 || p.Version == 3 {
		if t != TypeAdvertisement {
			return errf(ReasonType, "packet type %d is not an advertisement", t)
		}
	} else {
		return errf(ReasonVersion, "version %d (want 2 or 3)", p.Version)
	}
	p.VRID = b[1]
	p.Priority = b[2]
	n := int(b[3])
	p.Checksum = binary.BigEndian.Uint16(b[6:])
	alen := 4
	if is6 {
		alen = 16
	}
	want := HeaderLen + n*alen
	switch p.Version {
	case 2:
		if is6 {
			return errf(ReasonVersion, "VRRPv2 over IPv6")
		}
		want += AuthDataLen
		p.AuthType = AuthType(b[4])
		p.Interval = time.Duration(b[5]) * time.Second
	case 3:
		p.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&0x0fff) * 10 * time.Millisecond
	}
	if len(b) != want {
		return errf(ReasonLength, "VRRPv%d message of %d bytes, but %d addresses need %d", p.Version, len(b), n, want)
	}
	p.Length = len(b)
	switch {
	case p.Version == 2:
		if c := Checksum(b, p.Src, p.Dst, false); c != p.Checksum {
			return errf(ReasonChecksum, "bad VRRPv2 checksum %#04x (want %#04x)", p.Checksum, c)
		}
		p.ChecksumMode = MessageOnly
	case is6:
		if c := Checksum(b, p.Src, p.Dst, true); c != p.Checksum {
			return errf(ReasonChecksum, "bad VRRPv3 checksum %#04x (want %#04x)", p.Checksum, c)
		}
		p.ChecksumMode = PseudoHeader
	default:
		// VRRPv3 over IPv4: either form; the runtime decides which it takes.
		if Checksum(b, p.Src, p.Dst, true) == p.Checksum {
			p.ChecksumMode = PseudoHeader
		} else if Checksum(b, p.Src, p.Dst, false) == p.Checksum {
			p.ChecksumMode = MessageOnly
		} else {
			return errf(ReasonChecksum, "bad VRRPv3 checksum %#04x (want %#04x with the pseudo-header, %#04x without)",
				p.Checksum, Checksum(b, p.Src, p.Dst, true), Checksum(b, p.Src, p.Dst, false))
		}
	}
	if p.Version == 2 {
		switch p.AuthType {
		case AuthNone, AuthPass:
		case AuthAH:
			return errf(ReasonAuth, "IPsec AH authentication is not supported")
		default:
			return errf(ReasonAuth, "unknown authentication type %d", p.AuthType)
		}
		copy(p.AuthData[:], b[want-AuthDataLen:])
	}
	if p.Interval == 0 {
		return errf(ReasonInterval, "advertisement interval is zero")
	}
	p.Addrs = make([]netip.Addr, n)
	for i := range n {
		o := HeaderLen + i*alen
		if is6 {
			p.Addrs[i] = netip.AddrFrom16([16]byte(b[o : o+16]))
		} else {
			p.Addrs[i] = netip.AddrFrom4([4]byte(b[o : o+4]))
		}
	}
	return nil
}

func fold(s uint32) uint32 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return s
}

// AuthPassword returns the 8-byte authentication data for a VRRPv2 simple
// password: the first 8 bytes, zero padded, as keepalived sends it.
func AuthPassword(pass string) [AuthDataLen]byte {
	var d [AuthDataLen]byte
	copy(d[:], pass)
	return d
}

// EncodeIPv4Header builds the 20-byte IPv4 header for an advert of
// payloadLen bytes (for raw sockets with IP_HDRINCL).
func EncodeIPv4Header(src, dst netip.Addr, ttl uint8, id uint16, payloadLen int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	h[1] = TOS
	binary.BigEndian.PutUint16(h[2:], uint16(20+payloadLen))
	binary.BigEndian.PutUint16(h[4:], id)
	h[8] = ttl
	h[9] = Protocol
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], ^uint16(fold(sumBytes(0, h))))
	return h
}
