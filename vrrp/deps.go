package vrrp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// The Router reaches the world only through these interfaces, so it can
// be driven without root or a network (see vrrptest). The Linux
// implementations are in linux.go.

// Clock is the time source (tailscale tstime-style).
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer that can be re-armed.
type Timer interface {
	Chan() <-chan time.Time
	// Reset re-arms the timer to fire d from now, dropping any pending
	// expiry.
	Reset(d time.Duration)
	Stop()
}

// Network opens VRRP sockets and watches links.
type Network interface {
	// Listen opens the VRRP socket of an interface for one family, joined
	// to the VRRP multicast group of that interface. An interface that
	// does not exist is an error wrapping ErrNoInterface: its instances
	// wait in FAULT until it appears.
	Listen(ifname string, ipv6 bool) (Conn, error)
	// PrimaryAddr is the address adverts leave from when no source is
	// configured: the first IPv4 address, or the IPv6 link-local one.
	PrimaryAddr(ifname string, ipv6 bool) (netip.Addr, error)
	// Links returns every existing link and whether it is up (up and
	// running) now.
	Links() (map[string]bool, error)
	// WatchLinks calls fn for every link change until ctx ends. It
	// reports each existing link's state once it is subscribed, so a
	// change between Links and WatchLinks is not lost; and it reports an
	// address becoming usable on a link (AddrAdded), so instances whose
	// interface had none yet find their source address.
	WatchLinks(ctx context.Context, fn func(LinkEvent)) error
}

// FileWatcher reads track_file files and says when they change.
type FileWatcher interface {
	// Read returns the number the file holds: leading blanks, an
	// optional sign and decimal digits, as keepalived reads it; a file
	// with no number holds 0.
	Read(path string) (int64, error)
	// Init writes value to path when it does not exist, or always with
	// overwrite (keepalived's init_file).
	Init(path string, value int64, overwrite bool) error
	// Watch calls changed with a path of paths that may have changed
	// (written, replaced, created or removed) until ctx ends; and once
	// with each path when the watch is in place, so a change between a
	// read and the watch is not lost.
	Watch(ctx context.Context, paths []string, changed func(path string)) error
}

// LinkEvent is a link's new state.
type LinkEvent struct {
	Name string
	Up   bool
	// Gone is true when the link was deleted (or moved to another
	// namespace); a later event without it means it is back (its
	// sockets must be opened again: the old ones are bound to the old
	// link).
	Gone bool
	// AddrAdded reports an address that became usable on the link (for
	// IPv6, once duplicate address detection let it go); Up is then the
	// link's last reported state.
	AddrAdded bool
}

// ErrNoInterface is what Listen's error wraps when the interface does not
// exist.
var ErrNoInterface = errors.New("no such interface")

// Conn is one VRRP socket.
type Conn interface {
	// Read returns the next advert and how long ago the kernel received
	// it (0 when unknown): timers start from the arrival, not from when
	// the process got to it. A malformed packet returns a
	// *packet.DecodeError (read on); a closed socket net.ErrClosed.
	Read() (*packet.Packet, time.Duration, error)
	// Write sends a VRRP message from src to dst with the given TTL or
	// hop limit.
	Write(src, dst netip.Addr, ttl uint8, msg []byte) error
	// SetGroups makes the socket receive exactly these multicast groups
	// (Listen joins the family's VRRP group; mcast_dst_ip names others,
	// unicast instances need none).
	SetGroups(groups []netip.Addr) error
	Close() error
}

// AddressManager adds and removes virtual addresses.
type AddressManager interface {
	// AddVIP adds the address to vip.Dev (or dev when empty); an address
	// already there is no error.
	AddVIP(vip VIP, dev string) error
	// RemoveVIP removes it; an absent address is no error.
	RemoveVIP(vip VIP, dev string) error
}

// Announcer sends one gratuitous ARP (IPv4) or unsolicited neighbour
// advertisement (IPv6) for each of addrs on an interface: one round of a
// burst.
type Announcer interface {
	Announce(ifname string, addrs []netip.Addr) error
}

// Command is a script to run.
type Command struct {
	// Argv is the program and its arguments.
	Argv    []string
	User    string
	Timeout time.Duration
}

// ScriptRunner runs scripts; nil error means exit status 0.
type ScriptRunner interface {
	Run(ctx context.Context, cmd Command) error
}

// ErrInsecureScript is returned by a ScriptRunner that refuses a script
// a non-root user could modify.
var ErrInsecureScript = errors.New("insecure script")

type realClock struct{}

// SystemClock is the real clock.
func SystemClock() Clock { return realClock{} }

func (realClock) Now() time.Time { return time.Now() }

// NewTimer returns a timerfd-backed timer (precise to the kernel's
// timer slack), or a Go timer when timerfd is not available. Stop
// releases it.
func (realClock) NewTimer(d time.Duration) Timer {
	if t, err := newFDTimer(d); err == nil {
		return t
	}
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) Chan() <-chan time.Time { return t.t.C }
func (t realTimer) Reset(d time.Duration)  { t.t.Reset(d) }
func (t realTimer) Stop()                  { t.t.Stop() }
