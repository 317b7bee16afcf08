package health_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/health/healthtest"
)

// The daemon translates each virtual_server into a health.VirtualServer,
// runs the Manager, and on every Changes signal turns the Snapshot into
// the dataplane's backends.
func Example() {
	truePath, _ := exec.LookPath("true")
	falsePath, _ := exec.LookPath("false")
	misc := func(path string) health.Check {
		spec := health.MiscCheck{Script: health.Script{Args: []string{path}}}
		return health.Check{Spec: spec, Timing: health.DefaultTiming(spec, 6*time.Second)}
	}
	cfg := health.Config{VirtualServers: []health.VirtualServer{{
		Name:   "TCP 192.0.2.1:80",
		Quorum: 1,
		RealServers: []health.RealServer{
			{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 2, Checks: []health.Check{misc(truePath)}},
			{Addr: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 1, Inhibit: true, Checks: []health.Check{misc(falsePath)}},
		},
	}}}
	clock := healthtest.NewClock(time.Unix(0, 0)) // the daemon leaves Clock nil
	m, err := health.New(cfg, health.Options{Clock: clock, Random: func(int64) int64 { return 0 }})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()

	for len(clock.Pending()) < 2 { // both checkers waiting for their first run
		time.Sleep(time.Millisecond)
	}
	clock.Advance(health.BootstrapDelay)
	<-m.Changes() // the failing server went down
	for _, vs := range m.Snapshot().VirtualServers {
		fmt.Println(vs.Name, "quorum up:", vs.QuorumUp)
		for _, b := range vs.Backends {
			fmt.Printf("  %s %s weight %d\n", b.Addr, b.State, b.Weight)
		}
	}
	cancel()
	<-done
	// Output:
	// TCP 192.0.2.1:80 quorum up: true
	//   10.0.0.1:80 up weight 2
	//   10.0.0.2:80 draining weight 0
}
