package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/dataplane/ipvs"
	"github.com/xkeep/xkeep/dataplane/xdp"
	"github.com/xkeep/xkeep/vrrp"
)

// Dataplane kinds (--dataplane).
const (
	DataplaneXDP  = "xdp"
	DataplaneIPVS = "ipvs"
)

// DataplaneOptions choose and configure the packet forwarder.
type DataplaneOptions struct {
	// Kind is DataplaneXDP (default) or DataplaneIPVS.
	Kind string
	// PinDir is the XDP dataplane's bpffs directory: a daemon started
	// after a killed one with the same PinDir adopts its maps and links,
	// so established flows keep their backends.
	PinDir string
	// XDPMode is the XDP attach mode.
	XDPMode xdp.Mode
	// Open replaces the real constructors (tests). resumed reports that
	// the forwarder was still forwarding, left by a previous run.
	Open func(log *slog.Logger) (dp dataplane.Dataplane, resumed bool, err error)
}

func (o DataplaneOptions) name() string {
	if o.Kind == "" {
		return DataplaneXDP
	}
	return o.Kind
}

func (o DataplaneOptions) capabilities() capabilities {
	if o.name() == DataplaneIPVS {
		return ipvsCapabilities
	}
	return xdpCapabilities
}

// leftover reports XDP links a previous daemon left pinned: the program
// is still attached and forwarding, and must be adopted (then kept or
// detached) even when the configuration has no virtual server any more.
func (o DataplaneOptions) leftover() bool {
	return o.Open == nil && o.name() == DataplaneXDP && hasPinnedLinks(o.PinDir)
}

func hasPinnedLinks(dir string) bool {
	if dir == "" {
		return false
	}
	links, _ := filepath.Glob(filepath.Join(dir, "link-*"))
	return len(links) > 0
}

// open opens the forwarder. lease is the XDP program's interception lease
// (see interceptLease).
func (o DataplaneOptions) open(log *slog.Logger, lease time.Duration) (dataplane.Dataplane, bool, error) {
	if o.Open != nil {
		return o.Open(log)
	}
	if o.name() == DataplaneIPVS {
		// ipvs.New's error says to use --dataplane=xdp when the kernel
		// has no IPVS (errors.Is(err, ipvs.ErrUnavailable)).
		dp, err := ipvs.New(ipvs.Config{Logger: log})
		if err != nil {
			return nil, false, err
		}
		if b, err := os.ReadFile("/proc/sys/net/ipv4/vs/expire_nodest_conn"); err == nil && strings.TrimSpace(string(b)) == "0" {
			log.Info("net.ipv4.vs.expire_nodest_conn is 0 (as keepalived leaves it): a removed real server's established connections are forwarded to it until they expire; set it to 1 to cut them")
		}
		return dp, false, nil
	}
	resumed := hasPinnedLinks(o.PinDir)
	dp, err := xdp.New(xdp.Options{Logger: log, PinDir: o.PinDir, Mode: o.XDPMode, Lease: lease})
	if err != nil {
		return nil, false, err
	}
	return dp, resumed, nil
}

// leaser is a dataplane whose interception lapses unless it is renewed
// (XDP: the program keeps running after a SIGKILL; IPVS has no such
// thing).
type leaser interface {
	SetLease(time.Duration) error
}

// interceptLease is how long the XDP program goes on balancing after the
// daemon stops renewing it (SIGKILL): three advert intervals of the
// quickest instance, the least time in which a peer can take a VIP over
// (Master_Down_Interval adds the skew). A killed master thus stops
// intercepting before the new master sends it DR packets as a real
// server, which it would otherwise bounce back (a forwarding loop); a
// restart within the lease adopts the program without a pause. 0 when no
// VRRP instance runs: no peer takes anything over.
func interceptLease(c vrrp.Config) time.Duration {
	var quickest time.Duration
	for _, in := range c.Instances {
		if quickest == 0 || in.AdvertInterval < quickest {
			quickest = in.AdvertInterval
		}
	}
	return 3 * quickest
}
