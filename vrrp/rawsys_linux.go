package vrrp

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Non-blocking syscalls of the epoll loop, made with RawSyscall. A
// syscall through the runtime (entersyscall) wakes the runtime's
// monitor thread whenever it sleeps, which it does between adverts; at
// 100 adverts a second that wakeup, and the monitor's polling after it,
// cost more than the advert itself. These calls never block (the fds are
// non-blocking or MSG_DONTWAIT is set), so the runtime need not know.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawRead(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errnoErr(e)
}

func rawEpollWait0(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(n), errnoErr(e)
}

func rawTimerfdSettime(fd int, spec *unix.ItimerSpec) error {
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(spec)), 0, 0, 0)
	return errnoErr(e)
}

// rawRecvmsg reads one datagram with its control messages and, when name
// is not nil, its source address.
func rawRecvmsg(fd int, buf, oob []byte, name *unix.RawSockaddrInet6) (n, oobn int, err error) {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	if name != nil {
		msg.Name = (*byte)(unsafe.Pointer(name))
		msg.Namelen = unix.SizeofSockaddrInet6
	}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(msg.Controllen), nil
}

func rawSendto4(fd int, b []byte, dst netip.Addr) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.As4()}
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	return errnoErr(e)
}

func rawSendmsg6(fd int, b, oob []byte, dst netip.Addr, ifindex int) error {
	sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16(), Scope_id: uint32(ifindex)}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sa)), Namelen: unix.SizeofSockaddrInet6, Iov: &iov, Iovlen: 1}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
	return errnoErr(e)
}

// rawSendtoKernel sends a netlink request to the kernel, which handles it
// before sendto returns.
func rawSendtoKernel(fd int, b []byte) error {
	sa := unix.RawSockaddrNetlink{Family: unix.AF_NETLINK}
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		0, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrNetlink)
	return errnoErr(e)
}

// rawRecvNoWait reads one queued datagram; EAGAIN when none is.
func rawRecvNoWait(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
