// Package vrrp is xkeep's VRRP engine (RFC 3768 VRRPv2, RFC 5798 VRRPv3),
// built to interoperate with keepalived. It has three layers:
//
//   - vrrp/packet: the codec (adverts over IPv4 and IPv6, both VRRPv3
//     checksum forms, drop reasons).
//   - Machine: the protocol, pure. Configure, Step and Advance take the
//     current time as an input; Ready returns what to do (send an advert,
//     add or remove addresses, announce them, report a transition);
//     NextDeadline says when to call Advance. It opens no socket and
//     reads no clock, so tests drive it on a fake one.
//   - Router: the runtime around one Machine. Raw IP protocol 112
//     sockets, netlink addresses, gratuitous ARP and unsolicited NA,
//     vrrp_script and notify scripts, link watching, all behind the small
//     interfaces of deps.go (LinuxDeps gives the real ones; vrrptest has
//     fakes). With the real ones it waits in an epoll set (timerfd,
//     sockets, eventfd) for precise timers and few wakeups. A missing
//     or vanishing interface is a FAULT reason, never an error: the
//     instance's sockets open (again) when the interface appears.
//
// The package knows nothing of keepalived.conf: internal/daemon translates
// the configuration model into Config.
package vrrp
