// Package e2e is xkeep's end-to-end suite: the seed's building blocks
// (/work/shared/seed) as assertions on real `xkeep run` processes (and
// keepalived as a peer) in network namespaces, with real traffic through
// the dataplane. Each scenario is its own test; each ends by checking
// that no namespace, link, bpf pin or process of it is left.
//
// The dataplane is xdp unless XKEEP_E2E_DATAPLANE says ipvs: test/vm runs
// the suite that way inside its 6.1 VM, where IPVS exists. Bounds in the
// assertions derive from the configured timers (Master_Down_Interval,
// Skew_Time, the checks' delay_loop, retry, delay_before_retry and
// connect_timeout) plus a slack for process scheduling.
package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/test/lab/rig"
)

// DataplaneEnv selects the dataplane the suite runs xkeep with.
const DataplaneEnv = "XKEEP_E2E_DATAPLANE"

// xkeepBin is the xkeep binary TestMain builds (or finds in $XKEEP_BIN).
var xkeepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xkeep-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if os.Geteuid() != 0 && !testnet.InCI() {
			// Every test skips with its reason (testnet.RequireRoot); no
			// need to build.
			return m.Run()
		}
		xkeepBin, err = rig.BuildXkeep(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// dataplane is the --dataplane the suite runs.
func dataplane() string {
	if d := os.Getenv(DataplaneEnv); d != "" {
		return d
	}
	return "xdp"
}

// statsLag is how old the dataplane's counters may be when read. XDP's
// are read from the BPF maps at scrape time; IPVS's come from the
// kernel's estimator, which folds its per-CPU counters into the totals
// it reports every 2 s (ip_vs_est.c, 6.1).
func statsLag() time.Duration {
	if dataplane() == "ipvs" {
		return 2 * time.Second
	}
	return 0
}

// inVM reports whether the suite runs inside test/vm's VM (TCG: slower,
// no keepalived).
func inVM() bool { return os.Getenv("XKEEP_VM") != "" }

// timers are the suite's configuration timers and the slack added to
// every bound derived from them. The VM runs under TCG, several times
// slower, so it gets longer ones.
type timers struct {
	advert time.Duration // advert_int (VRRPv3)
	script time.Duration // vrrp_script interval
	// TCP_CHECK
	delayLoop, connectTimeout, delayBeforeRetry time.Duration
	retry                                       int
	request                                     time.Duration // one client request, connect included
	every                                       time.Duration // between a client address's requests
	// slack absorbs process start-up, scheduling on a busy 2-core
	// machine, netlink and polling.
	slack time.Duration
}

var tm = func() timers {
	if inVM() {
		return timers{
			advert: 500 * time.Millisecond, script: time.Second,
			delayLoop: time.Second, connectTimeout: time.Second, delayBeforeRetry: time.Second, retry: 1,
			request: time.Second, every: 200 * time.Millisecond, slack: 2 * time.Second,
		}
	}
	return timers{
		advert: 200 * time.Millisecond, script: 500 * time.Millisecond,
		delayLoop: 500 * time.Millisecond, connectTimeout: 500 * time.Millisecond, delayBeforeRetry: 500 * time.Millisecond, retry: 1,
		request: 500 * time.Millisecond, every: 50 * time.Millisecond, slack: time.Second,
	}
}()

// startupLimit bounds how long a daemon may take from exec to ready
// (config, BPF verification, listeners). No timer of the configuration
// covers it, so the VRRP bounds start from ready.
const startupLimit = 15 * time.Second

// Addresses every scenario uses (inside its own namespaces).
var (
	vip1 = rig.Addr(200)
	vip2 = rig.Addr(201)
	// clientAddrs: four sources, so rr with persistence reaches both
	// real servers.
	clientAddrs = []netip.Addr{rig.Addr(101), rig.Addr(102), rig.Addr(103), rig.Addr(104)}
)
