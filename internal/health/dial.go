package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dialer opens the checkers' connections. Tests pass one that dials from
// inside a network namespace.
type Dialer interface {
	// DialContext connects to ep.Remote from ep.Local, bound to
	// ep.Interface and marked with ep.FWMark when they are set. network is
	// "tcp", "udp" or "ping" (an ICMP datagram socket connected to the
	// remote address). Canceling ctx aborts the connect.
	DialContext(ctx context.Context, network string, ep Endpoint) (net.Conn, error)
}

// NetDialer dials with the host's network stack.
type NetDialer struct{}

// DialContext implements Dialer.
func (NetDialer) DialContext(ctx context.Context, network string, ep Endpoint) (net.Conn, error) {
	switch network {
	case "tcp", "udp":
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error { return setSockOpts(rc, ep) }}
		if ep.Local.Addr().IsValid() || ep.Local.Port() != 0 {
			if network == "tcp" {
				d.LocalAddr = net.TCPAddrFromAddrPort(ep.Local)
			} else {
				d.LocalAddr = net.UDPAddrFromAddrPort(ep.Local)
			}
		}
		family := "4"
		if ep.Remote.Addr().Is6() && !ep.Remote.Addr().Is4In6() {
			family = "6"
		}
		return d.DialContext(ctx, network+family, ep.Remote.String())
	case "ping":
		return dialPing(ep)
	}
	return nil, fmt.Errorf("dial %s: unknown network %q", ep.Remote, network)
}

func setSockOpts(rc syscall.RawConn, ep Endpoint) error {
	var opErr error
	err := rc.Control(func(fd uintptr) { opErr = applySockOpts(int(fd), ep) })
	return errors.Join(err, opErr)
}

func applySockOpts(fd int, ep Endpoint) error {
	if ep.FWMark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(ep.FWMark)); err != nil {
			return fmt.Errorf("set fwmark %d: %w", ep.FWMark, err)
		}
	}
	if ep.Interface != "" {
		if err := unix.BindToDevice(fd, ep.Interface); err != nil {
			return fmt.Errorf("bind to interface %s: %w", ep.Interface, err)
		}
	}
	return nil
}

// dialPing opens an unprivileged ICMP echo socket (SOCK_DGRAM,
// IPPROTO_ICMP), the kind ping(8) uses, connected to the remote address.
// The kernel fills in the echo identifier and matches replies to it.
func dialPing(ep Endpoint) (net.Conn, error) {
	remote := ep.Remote.Addr().Unmap()
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if remote.Is6() {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("open icmp socket: %w (add the daemon's group to sysctl net.ipv4.ping_group_range)", err)
		}
		return nil, fmt.Errorf("open icmp socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ping")
	defer f.Close()
	if err := applySockOpts(fd, ep); err != nil {
		return nil, err
	}
	if ep.Local.Addr().IsValid() {
		if err := unix.Bind(fd, sockaddr(ep.Local.Addr().Unmap().AsSlice(), family)); err != nil {
			return nil, fmt.Errorf("bind icmp socket to %s: %w", ep.Local.Addr(), err)
		}
	}
	if err := unix.Connect(fd, sockaddr(remote.AsSlice(), family)); err != nil {
		return nil, fmt.Errorf("connect icmp socket to %s: %w", remote, err)
	}
	// FileConn dups the descriptor into the runtime poller.
	return net.FileConn(f)
}

func sockaddr(ip []byte, family int) unix.Sockaddr {
	if family == unix.AF_INET6 {
		sa := &unix.SockaddrInet6{}
		copy(sa.Addr[:], ip)
		return sa
	}
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], ip)
	return sa
}
