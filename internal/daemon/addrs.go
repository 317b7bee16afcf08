package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// AddressBook finds where addresses live on this node: the XDP dataplane
// serves a virtual server whose VIP no vrrp_instance manages on the
// interface that holds the address.
type AddressBook interface {
	// Local maps each of addrs that is on a non-loopback interface to
	// that interface's name.
	Local(addrs []netip.Addr) (map[netip.Addr]string, error)
	// Watch calls changed after every address change until ctx ends.
	Watch(ctx context.Context, changed func()) error
}

// netlinkAddresses is the AddressBook of the process's network namespace.
type netlinkAddresses struct{}

func (netlinkAddresses) Local(addrs []netip.Addr) (map[netip.Addr]string, error) {
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	list, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := map[netip.Addr]string{}
	names := map[int]string{}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !want[ip.Unmap()] {
			continue
		}
		name, ok := names[a.LinkIndex]
		if !ok {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				continue
			}
			if l.Attrs().Flags&net.FlagLoopback == 0 {
				name = l.Attrs().Name
			}
			names[a.LinkIndex] = name
		}
		if name != "" {
			out[ip.Unmap()] = name
		}
	}
	return out, nil
}

func (netlinkAddresses) Watch(ctx context.Context, changed func()) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return fmt.Errorf("address changes: %w", err)
		case _, ok := <-ch:
			if !ok {
				return fmt.Errorf("address changes: subscription closed")
			}
			changed()
		}
	}
}
