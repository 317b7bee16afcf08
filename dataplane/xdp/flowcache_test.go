package xdp

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// Each CPU keeps its own copy of the IPv4 flows it forwarded (flow_cache in
// bpf/maps.h). These tests run the program on two CPUs and check that the
// copies never keep a flow on a backend the flow table no longer gives it.

// needTwoCPUs skips, saying why, on a one-CPU machine; under CI, which
// has two, it fails instead.
func needTwoCPUs(t *testing.T) {
	if n := runtime.NumCPU(); n < 2 {
		if testnet.InCI() {
			t.Fatalf("in CI: the flow cache tests need two CPUs to run the program on, this machine has %d", n)
		}
		t.Skipf("skipped: needs two CPUs to run the program on, this machine has %d", n)
	}
}

// TestFlowCacheReopenedOnAnotherCPU: a connection is forwarded on CPU 1,
// closed and reopened (a bare SYN on the closing flow) on CPU 0, where
// round robin gives it the other backend; CPU 1's next packet of it must
// follow to the new backend, not its cached copy.
func TestFlowCacheReopenedOnAnotherCPU(t *testing.T) {
	needTwoCPUs(t)
	for _, fam := range []struct {
		name        string
		vip, client netip.Addr
		backends    [2]string
	}{
		{"IPv4", vip4, client4, [2]string{"10.0.0.11", "10.0.0.12"}},
		{"IPv6", vip6, client6, [2]string{"fd00::11", "fd00::12"}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			e := newFixtureEnv(t, Options{TCPTimeout: 100 * time.Second})
			e.apply(dataplane.DesiredState{
				Services: []dataplane.Service{svc(fam.vip, 80, dataplane.RoundRobin, backends(fam.backends[:]...)...)},
				Served:   served(fam.vip),
			})
			c := e.fromClient()
			ack := tcpFlow(c, fam.client, 5, fam.vip, tcpACK)
			first := e.forwardedToOn(1, ack, ack, ack)
			if first[0] == "pass" || first[1] != first[0] || first[2] != first[0] {
				t.Fatalf("flow on CPU 1 went %v, want one backend throughout", first)
			}
			other := fam.backends[0]
			if first[0] == other {
				other = fam.backends[1]
			}
			// Move CPU 0's round-robin cursor so that the reopened flow
			// lands on the other backend.
			for p := uint16(100); e.forwardedToOn(0, tcpFlow(c, fam.client, p, fam.vip, tcpSYN))[0] != first[0]; p++ {
				if p > 110 {
					t.Fatalf("CPU 0 never scheduled a flow to %s", first[0])
				}
			}
			got := e.forwardedToOn(0, tcpFlow(c, fam.client, 5, fam.vip, tcpFIN|tcpACK), tcpFlow(c, fam.client, 5, fam.vip, tcpSYN))
			if want := []string{first[0], other}; !slices.Equal(got, want) {
				t.Fatalf("FIN then SYN on CPU 0 went %v, want %v (closed, then reopened on the next backend)", got, want)
			}
			if got := e.forwardedToOn(1, ack, ack); !slices.Equal(got, []string{other, other}) {
				t.Errorf("the reopened flow on CPU 1 went %v, want %s (its cached copy named %s)", got, other, first[0])
			}
		})
	}
}

// TestFlowCacheFollowsBackendChanges: a flow cached on CPU 1 is
// rescheduled on CPU 0 when its backend goes; CPU 1 follows, and a flow
// idle past its timeout is scheduled again on either CPU.
func TestFlowCacheFollowsBackendChanges(t *testing.T) {
	needTwoCPUs(t)
	e := newFixtureEnv(t, Options{TCPTimeout: 100 * time.Second})
	state := func(addrs ...string) {
		e.apply(dataplane.DesiredState{
			Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends(addrs...)...)},
			Served:   served(vip4),
		})
	}
	state("10.0.0.11")
	ack := tcpFlow(e.fromClient(), client4, 7, vip4, tcpACK)
	if got := e.forwardedToOn(1, ack, ack); !slices.Equal(got, []string{"10.0.0.11", "10.0.0.11"}) {
		t.Fatalf("flow on CPU 1 went %v", got)
	}
	state("10.0.0.12")
	if got := e.forwardedToOn(0, ack); !slices.Equal(got, []string{"10.0.0.12"}) {
		t.Fatalf("after .11 was replaced, CPU 0 sent the flow to %v, want .12", got)
	}
	if got := e.forwardedToOn(1, ack); !slices.Equal(got, []string{"10.0.0.12"}) {
		t.Errorf("after .11 was replaced, CPU 1 sent the flow to %v, want .12", got)
	}
	// Idle past the timeout: a new flow, whichever CPU sees it first.
	state("10.0.0.12", "10.0.0.13")
	if err := e.dp.advanceClock(101 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := e.reasons()["flow_expired"]
	e.forwardedToOn(1, ack)
	if d := e.reasons()["flow_expired"] - before; d != 1 {
		t.Errorf("an idle flow cached on CPU 1: flow_expired grew by %d, want 1", d)
	}
}
