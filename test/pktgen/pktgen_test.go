package pktgen

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestLiveFramesReachTheSink sends frames out of one end of a veth pair
// and counts them at the other.
func TestLiveFramesReachTheSink(t *testing.T) {
	a := testnet.NewNamespace(t, "gen")
	b := testnet.NewNamespace(t, "sink")
	port := testnet.VethPair(t, a, "g0", b, "s0")
	sink, err := NewSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var l link.Link
	if err := b.Do(func() error {
		ifc, err := net.InterfaceByName("s0")
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: sink.Program(), Interface: ifc.Index})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	frame := UDPFrame(port.MAC, net.HardwareAddr{2, 0, 0, 0, 0, 1},
		netip.MustParseAddrPort("10.0.0.1:1000"), netip.MustParseAddrPort("10.0.0.2:2000"), 18)
	for _, random := range []int{0, 14 + 20} {
		if err := sink.Reset(); err != nil {
			t.Fatal(err)
		}
		res, err := Run(Config{NetNS: a.Path(), Interface: port.Index, Frame: frame, Count: 100_000, RandomSourcePort: random})
		if err != nil {
			t.Fatal(err)
		}
		got, err := sink.Count()
		if err != nil {
			t.Fatal(err)
		}
		// A veth drops what does not fit its ring, and how much depends on
		// how busy the receiving CPU is (go test runs packages in
		// parallel): at least half must arrive, and never more than sent.
		if got < res.Sent/2 || got > res.Sent {
			t.Errorf("sent %d frames (random port at %d), sink counted %d", res.Sent, random, got)
		}
		t.Logf("%d frames in %v: %.2f Mpps, %d received", res.Sent, res.Elapsed, res.PPS()/1e6, got)
	}
	if _, err := Run(Config{Interface: port.Index, Frame: frame[:10], Count: 1}); err == nil {
		t.Error("short frame: no error")
	}
}
