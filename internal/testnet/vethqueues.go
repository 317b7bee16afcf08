package testnet

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// VethPairQueues is VethPair with queues receive and transmit queues on
// both ends. A veth hands a frame to the peer's queue of the sending CPU
// (modulo the queue count), each queue with its own NAPI instance: with one
// queue (VethPair), senders on several CPUs share one ring and one NAPI
// and do not scale; with a queue per CPU they do.
func VethPairQueues(t testing.TB, a *Namespace, aName string, b *Namespace, bName string, queues int, addrs ...netip.Prefix) *Port {
	t.Helper()
	if queues < 1 {
		t.Fatalf("veth %s:%s <-> %s:%s: %d queues", a.Name, aName, b.Name, bName, queues)
	}
	err := b.withNetlink(func(h *netlink.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: bName, NumTxQueues: queues, NumRxQueues: queues},
			PeerName:      aName,
			PeerNamespace: netlink.NsFd(int(a.handle)),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("veth %s:%s <-> %s:%s: %v", a.Name, aName, b.Name, bName, err)
	}
	if err := b.LinkUp(bName); err != nil {
		t.Fatal(err)
	}
	port := &Port{t: t, NS: a, Name: aName, PeerNS: b, PeerName: bName}
	err = a.withNetlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(aName)
		if err != nil {
			return err
		}
		for _, p := range addrs {
			if err := h.AddrAdd(l, netlinkAddr(p)); err != nil {
				return fmt.Errorf("add %s: %w", p, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		port.Index = l.Attrs().Index
		port.MAC = l.Attrs().HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatalf("veth %s:%s <-> %s:%s: %v", a.Name, aName, b.Name, bName, err)
	}
	return port
}
