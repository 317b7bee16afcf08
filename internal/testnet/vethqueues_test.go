package testnet

import (
	"net/netip"
	"testing"
)

func TestVethPairQueues(t *testing.T) {
	a := NewNamespace(t, "a")
	b := NewNamespace(t, "b")
	p := VethPairQueues(t, a, "q0", b, "q1", 2, netip.MustParsePrefix("10.9.9.1/24"))
	h, err := b.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("q1")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().NumRxQueues != 2 || l.Attrs().NumTxQueues != 2 {
		t.Errorf("peer end has %d rx, %d tx queues, want 2", l.Attrs().NumRxQueues, l.Attrs().NumTxQueues)
	}
	if ok, err := a.HasAddr(netip.MustParseAddr("10.9.9.1")); err != nil || !ok || p.Index == 0 {
		t.Errorf("address or index missing: %v %v %d", ok, err, p.Index)
	}
}
