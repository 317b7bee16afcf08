package xdp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Mode is how the program attaches to an interface.
type Mode string

// Attach modes (the daemon's --xdp-mode).
const (
	// ModeAuto attaches in native (driver) mode and falls back to generic
	// mode, with a warning, when the driver has no XDP support.
	ModeAuto Mode = "auto"
	// ModeNative attaches in driver mode only; attaching fails without it.
	ModeNative Mode = "native"
	// ModeGeneric attaches in generic (skb) mode: works everywhere, slower.
	ModeGeneric Mode = "generic"
)

// ParseMode parses a --xdp-mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeNative, ModeGeneric:
		return m, nil
	case "":
		return ModeAuto, nil
	}
	return "", fmt.Errorf("unknown xdp mode %q (want native, generic or auto)", s)
}

// Options configure a Dataplane. The zero value works: no pinning, auto
// mode, default sizes, the caller's network namespace.
type Options struct {
	// Logger receives warnings (generic-mode fallback, unresolved
	// backends); nil discards them.
	Logger *slog.Logger
	// PinDir is this daemon's directory on a bpf filesystem, e.g.
	// /sys/fs/bpf/xkeep/<instance>. Maps and XDP links are pinned there, so
	// a restarted daemon (Release, then New with the same PinDir) keeps the
	// flow table and forwarding never stops. When it lies under
	// /sys/fs/bpf and nothing is mounted there, New mounts bpffs. Empty:
	// nothing is pinned and Release is Close.
	PinDir string
	// Mode is the attach mode; empty means ModeAuto.
	Mode Mode
	// NetNS is the path of the network namespace whose interfaces, routes
	// and neighbours the dataplane uses (e.g. /var/run/netns/lb); empty
	// means the caller's.
	NetNS string

	// FlowTableSize is the capacity of each flow table, IPv4 and IPv6 (LRU;
	// default 262144).
	FlowTableSize int
	// PersistTableSize is the capacity of the persistence table (LRU;
	// default 65536).
	PersistTableSize int
	// MaxServices bounds the number of services (default 4096).
	MaxServices int
	// MaxBackends bounds backends over all services (default 65536).
	MaxBackends int
	// MaglevTableSize is the size of each mh service's lookup table; it
	// must be a prime larger than the service's backend count (default
	// 16381).
	MaglevTableSize int
	// MaxSlots bounds a wrr/sh slot list; longer lists (large coprime
	// weights) are scaled down, rounding the weights (default 65536).
	MaxSlots int
	// TCPTimeout and UDPTimeout are flow idle timeouts (defaults 900 s and
	// 300 s, as IPVS's established TCP and UDP timeouts). UDP's also
	// applies to SCTP.
	TCPTimeout, UDPTimeout time.Duration
	// SweepInterval is how often expired flows are removed and active-flow
	// counts (lc, wlc) recounted, and unresolved backends probed again
	// (default 10 s; negative disables the background sweep).
	SweepInterval time.Duration
	// ProbeTimeout bounds how long Apply waits for ARP/NDP answers for
	// backends missing from the neighbour table (default 1 s).
	ProbeTimeout time.Duration
	// Lease bounds how long the attached program keeps intercepting VIP
	// traffic after this process stops renewing it (it renews every
	// Lease/3 while open; SetLease changes it). A killed daemon's program
	// then stops balancing on its own, and the node, if it is a real
	// server too, answers DR packets a new master sends it instead of
	// bouncing them back. 0: no lease, the program intercepts until it is
	// detached.
	Lease time.Duration
}

// Defaults.
const (
	DefaultFlowTableSize    = 262144
	DefaultPersistTableSize = 65536
	DefaultMaxServices      = 4096
	DefaultMaxBackends      = 65536
	DefaultMaglevTableSize  = 16381
	DefaultMaxSlots         = 65536
	DefaultTCPTimeout       = 900 * time.Second
	DefaultUDPTimeout       = 300 * time.Second
	DefaultSweepInterval    = 10 * time.Second
	DefaultProbeTimeout     = time.Second
)

// withDefaults fills unset fields and checks the rest, before any syscall.
func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mode, err := ParseMode(string(o.Mode))
	if err != nil {
		return o, fmt.Errorf("xdp options: %w", err)
	}
	o.Mode = mode
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.FlowTableSize, DefaultFlowTableSize)
	def(&o.PersistTableSize, DefaultPersistTableSize)
	def(&o.MaxServices, DefaultMaxServices)
	def(&o.MaxBackends, DefaultMaxBackends)
	def(&o.MaglevTableSize, DefaultMaglevTableSize)
	def(&o.MaxSlots, DefaultMaxSlots)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&o.TCPTimeout, DefaultTCPTimeout)
	defDur(&o.UDPTimeout, DefaultUDPTimeout)
	defDur(&o.SweepInterval, DefaultSweepInterval)
	defDur(&o.ProbeTimeout, DefaultProbeTimeout)

	var errs []error
	for _, c := range []struct {
		name string
		v    int
	}{
		{"flow table size", o.FlowTableSize},
		{"persistence table size", o.PersistTableSize},
		{"max services", o.MaxServices},
		{"max backends", o.MaxBackends},
		{"max slots", o.MaxSlots},
	} {
		if c.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: must be positive", c.name, c.v))
		}
	}
	if !isPrime(o.MaglevTableSize) {
		errs = append(errs, fmt.Errorf("maglev table size %d: must be a prime (e.g. 16381, 65521)", o.MaglevTableSize))
	}
	if o.Lease < 0 {
		errs = append(errs, errors.New("lease must not be negative"))
	}
	if o.TCPTimeout < 0 || o.UDPTimeout < 0 {
		errs = append(errs, errors.New("flow timeouts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("xdp options: %w", err)
	}
	return o, nil
}
