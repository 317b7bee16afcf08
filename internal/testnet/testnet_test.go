package testnet

import (
	"bytes"
	"net"
	"net/netip"
	"os/exec"
	"testing"
)

func TestSegmentCarriesUDPBetweenNamespaces(t *testing.T) {
	seg := NewSegment(t)
	a := NewNamespace(t, "a")
	b := NewNamespace(t, "b")
	pa := seg.Attach(a, "eth0", netip.MustParsePrefix("10.9.0.1/24"))
	pb := seg.Attach(b, "eth0", netip.MustParsePrefix("10.9.0.2/24"))
	pa.PeerXDPPass()
	pb.DisableTxChecksum()

	var conn net.PacketConn
	if err := b.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", "10.9.0.2:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := a.Do(func() error {
		c, err := net.Dial("udp4", "10.9.0.2:9999")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], []byte("hello")) || from.(*net.UDPAddr).IP.String() != "10.9.0.1" {
		t.Fatalf("got %q from %v, want hello from 10.9.0.1", buf[:n], from)
	}
	if ok, err := a.HasAddr(netip.MustParseAddr("10.9.0.1")); err != nil || !ok {
		t.Fatalf("HasAddr = %v, %v", ok, err)
	}
}

func TestStartRunsProcessInsideNamespace(t *testing.T) {
	a := NewNamespace(t, "a")
	if err := a.AddAddr("lo", netip.MustParsePrefix("10.7.7.7/32")); err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(exec.Command("cat", "/proc/net/fib_trie"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("10.7.7.7")) {
		t.Fatalf("process did not see the namespace's address:\n%s", out)
	}
}
