package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	src4 = netip.MustParseAddr("10.0.0.1")
	src6 = netip.MustParseAddr("fe80::1")
)

func v4packet(t testing.TB, a Advert, mode ChecksumMode) []byte {
	t.Helper()
	msg, err := a.Marshal(src4, GroupIPv4, mode)
	if err != nil {
		t.Fatal(err)
	}
	return append(EncodeIPv4Header(src4, GroupIPv4, TTL, 7, len(msg)), msg...)
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a    Advert
		src  netip.Addr
		mode ChecksumMode
	}{
		{"v2 none", Advert{Version: 2, VRID: 51, Priority: 100, Interval: time.Second,
			Addrs: []netip.Addr{netip.MustParseAddr("192.168.8.100")}}, src4, MessageOnly},
		{"v2 pass", Advert{Version: 2, VRID: 1, Priority: 254, Interval: 255 * time.Second, AuthType: AuthPass,
			AuthData: AuthPassword("secret"), Addrs: []netip.Addr{netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.1.1.2")}}, src4, MessageOnly},
		{"v3 ipv4 pseudo-header", Advert{Version: 3, VRID: 2, Priority: 1, Interval: 10 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.1.1")}}, src4, PseudoHeader},
		{"v3 ipv4 as v2", Advert{Version: 3, VRID: 2, Priority: 1, Interval: MaxV3Interval,
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.1.1")}}, src4, MessageOnly},
		{"v3 ipv6", Advert{Version: 3, VRID: 255, Priority: 255, Interval: 100 * time.Millisecond,
			Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::100")}}, src6, PseudoHeader},
		{"v3 no addresses", Advert{Version: 3, VRID: 9, Priority: 0, Interval: time.Second}, src6, PseudoHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := GroupIPv4
			if tt.src.Is6() {
				dst = GroupIPv6
			}
			msg, err := tt.a.Marshal(tt.src, dst, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Decode(msg, tt.src, dst, 255)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Advert
			got.Checksum = 0
			want := tt.a
			if want.Addrs == nil {
				want.Addrs = []netip.Addr{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v\nwant    %+v", got, want)
			}
			if p.ChecksumMode != tt.mode {
				t.Errorf("checksum mode %d, want %d", p.ChecksumMode, tt.mode)
			}
			if p.Length != len(msg) {
				t.Errorf("length %d, want %d", p.Length, len(msg))
			}
		})
	}
}

// TestChecksumPseudoHeaderKnownValue pins the VRRPv3/IPv4 checksum to a
// value computed by hand the way keepalived's vrrp_build_vrrp_v3 does it:
// pseudo-header (src, 224.0.0.18, 0, 112, length) then the message.
func TestChecksumPseudoHeaderKnownValue(t *testing.T) {
	a := Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.168.8.100")}}
	msg, err := a.Marshal(netip.MustParseAddr("192.168.8.130"), GroupIPv4, PseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	// Words: c0a8 0882 e000 0012 0070 000c | 3133 6400 0064 [0000] c0a8 0864
	sum := uint32(0xc0a8 + 0x0882 + 0xe000 + 0x0012 + 0x0070 + 0x000c + 0x3133 + 0x6401 + 0x0064 + 0xc0a8 + 0x0864)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	want := ^uint16(sum)
	if got := binary.BigEndian.Uint16(msg[6:]); got != want {
		t.Fatalf("checksum %#04x, want %#04x (message % x)", got, want, msg)
	}
	// The v3_checksum_as_v2 form leaves the pseudo-header out.
	msg2, _ := a.Marshal(netip.MustParseAddr("192.168.8.130"), GroupIPv4, MessageOnly)
	if binary.BigEndian.Uint16(msg2[6:]) == want {
		t.Fatal("message-only checksum equals the pseudo-header one")
	}
}

func TestDecodeIPv4IgnoresEthernetPadding(t *testing.T) {
	b := v4packet(t, Advert{Version: 2, VRID: 7, Priority: 50, Interval: time.Second,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}, MessageOnly)
	padded := append(bytes.Clone(b), make([]byte, 60-14-len(b))...)
	p, err := DecodeIPv4(padded)
	if err != nil {
		t.Fatal(err)
	}
	if p.VRID != 7 || p.TTL != 255 || p.TOS != TOS || p.Src != src4 || p.Dst != GroupIPv4 || p.ID != 7 {
		t.Fatalf("decoded %+v", p)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := func() []byte {
		return v4packet(t, Advert{Version: 2, VRID: 7, Priority: 50, Interval: time.Second, AuthType: AuthPass,
			AuthData: AuthPassword("pw"), Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}, MessageOnly)
	}
	// fix recomputes the VRRP checksum after a change, so that the
	// change itself is what the decoder sees.
	fix := func(b []byte) []byte {
		msg := b[20:]
		binary.BigEndian.PutUint16(msg[6:], Checksum(msg, src4, GroupIPv4, false))
		return b
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   Reason
	}{
		{"empty", func([]byte) []byte { return nil }, ReasonLength},
		{"short vrrp", func(b []byte) []byte {
			b = b[:24]
			binary.BigEndian.PutUint16(b[2:], 24)
			binary.BigEndian.PutUint16(b[10:], 0)
			binary.BigEndian.PutUint16(b[10:], ^uint16(fold(sumBytes(0, b[:20]))))
			return b
		}, ReasonLength},
		{"ip header checksum", func(b []byte) []byte { b[10] ^= 1; return b }, ReasonChecksum},
		{"total length beyond data", func(b []byte) []byte { return b[:len(b)-1] }, ReasonLength},
		{"version 1", func(b []byte) []byte { b[20] = 0x11; return fix(b) }, ReasonVersion},
		{"type 2", func(b []byte) []byte { b[20] = 0x22; return fix(b) }, ReasonType},
		{"address count", func(b []byte) []byte { b[23] = 2; return fix(b) }, ReasonLength},
		{"vrrp checksum", func(b []byte) []byte { b[26] ^= 0xff; return b }, ReasonChecksum},
		{"auth AH", func(b []byte) []byte { b[24] = 2; return fix(b) }, ReasonAuth},
		{"auth unknown", func(b []byte) []byte { b[24] = 9; return fix(b) }, ReasonAuth},
		{"zero interval", func(b []byte) []byte { b[25] = 0; return fix(b) }, ReasonInterval},
		{"AH protocol", func(b []byte) []byte {
			b[9] = 51
			binary.BigEndian.PutUint16(b[10:], 0)
			binary.BigEndian.PutUint16(b[10:], ^uint16(fold(sumBytes(0, b[:20]))))
			return b
		}, ReasonAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeIPv4(tt.mutate(good()))
			if err == nil {
				t.Fatal("decoded, want an error")
			}
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestDecodeIPv6RejectsVRRPv2AndFamilyMix(t *testing.T) {
	a := Advert{Version: 3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}
	msg, err := a.Marshal(src6, GroupIPv6, PseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	msg[0] = 0x21
	if _, err := Decode(msg, src6, GroupIPv6, 255); ReasonOf(err) != ReasonVersion {
		t.Fatalf("VRRPv2 over IPv6: %v", err)
	}
	if _, err := Decode(msg, src6, GroupIPv4, 255); ReasonOf(err) != ReasonFamily {
		t.Fatalf("mixed families: %v", err)
	}
	if _, err := (&Advert{Version: 3, VRID: 1, Priority: 1, Interval: time.Second,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}).Marshal(src6, GroupIPv6, PseudoHeader); err == nil {
		t.Fatal("encoded an IPv4 address in an IPv6 advert")
	}
}

func TestMarshalRejectsBadIntervals(t *testing.T) {
	for _, a := range []Advert{
		{Version: 2, Interval: 1500 * time.Millisecond},
		{Version: 2, Interval: 0},
		{Version: 2, Interval: 256 * time.Second},
		{Version: 3, Interval: 5 * time.Millisecond},
		{Version: 3, Interval: MaxV3Interval + 10*time.Millisecond},
		{Version: 4, Interval: time.Second},
	} {
		if _, err := a.Marshal(src4, GroupIPv4, PseudoHeader); err == nil {
			t.Errorf("%+v encoded, want an error", a)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: no panic, and what
// decodes re-encodes to the same message.
func FuzzDecode(f *testing.F) {
	f.Add(v4packet(f, Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second, AuthType: AuthPass,
		AuthData: AuthPassword("x"), Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}}, MessageOnly))
	f.Add(v4packet(f, Advert{Version: 3, VRID: 1, Priority: 100, Interval: 10 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}}, PseudoHeader))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := DecodeIPv4(b); err == nil {
			mode := p.ChecksumMode
			msg, err := p.Advert.Marshal(p.Src, p.Dst, mode)
			if err != nil {
				t.Fatalf("decoded %+v but cannot encode it: %v", p, err)
			}
			ihl := int(b[0]&0x0f) * 4
			orig := bytes.Clone(b[ihl : ihl+p.Length])
			if p.Version == 3 && orig[4]&0xf0 != 0 {
				// Reserved bits are not kept, so neither is the checksum.
				orig[4] &= 0x0f
				copy(orig[6:8], msg[6:8])
			}
			if !bytes.Equal(msg, orig) {
				t.Fatalf("re-encoded % x, want % x", msg, orig)
			}
		} else if ReasonOf(err) == "other" {
			t.Fatalf("error without a reason: %v", err)
		}
		if _, err := DecodeIPv6(b); err != nil && ReasonOf(err) == "other" {
			t.Fatalf("error without a reason: %v", err)
		}
		if len(b) > 0 {
			_, _ = Decode(b[1:], src6, GroupIPv6, b[0])
			_, _ = Decode(b[1:], src4, GroupIPv4, b[0])
		}
	})
}
