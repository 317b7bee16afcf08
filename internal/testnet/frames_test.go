package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestInjectedFramesReachTheStackAndTheSink(t *testing.T) {
	a := NewNamespace(t, "a")
	b := NewNamespace(t, "b")
	pa := VethPair(t, a, "eth0", b, "eth0", netip.MustParsePrefix("10.9.1.1/24"))
	sink := pa.PeerSink()

	// XDP_TX: out of a's eth0, into the sink on b's end.
	tx, err := xdpReturning(3)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	frame := UDPFrame(pa.MAC, pa.MAC, netip.MustParseAddrPort("10.9.1.2:1000"), netip.MustParseAddrPort("10.9.1.1:9"), []byte("x"))
	if _, err := a.InjectFrames(tx, "eth0", frame, 1000); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, "sink counts 1000 frames", func() error {
		n, err := sink.Frames()
		if err == nil && n != 1000 {
			err = fmt.Errorf("%d frames", n)
		}
		return err
	})

	// nil program: XDP_PASS into a's stack, up to a UDP socket.
	var conn net.PacketConn
	if err := a.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", "10.9.1.1:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := a.InjectFrames(nil, "eth0", frame, 3); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for i := range 3 {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != "x" || from.String() != "10.9.1.2:1000" {
			t.Fatalf("datagram %d: %q from %v, want \"x\" from 10.9.1.2:1000", i, buf[:n], from)
		}
	}
}
