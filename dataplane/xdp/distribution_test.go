package xdp

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"testing"

	"github.com/xkeep/xkeep/dataplane"
)

// Distribution tests: many new flows through the loaded program
// (BPF_PROG_TEST_RUN, pinned to one CPU), counted by the backend MAC each
// one leaves with.

const distFlows = 100_000

// flowFrames returns n TCP SYNs to vip:80, from n distinct clients
// (10.128.0.0/9 counting up) with source port basePort.
func (e *fixtureEnv) flowFrames(vip netip.Addr, n int, basePort uint16) [][]byte {
	tmpl := tcpFlow(e.fromClient(), netip.MustParseAddr("10.128.0.0"), basePort, vip, tcpSYN)
	out := make([][]byte, n)
	for i := range out {
		f := append([]byte(nil), tmpl...)
		binary.BigEndian.PutUint32(f[14+12:], binary.BigEndian.Uint32(f[14+12:])+uint32(i))
		out[i] = f
	}
	return out
}

// distribute runs the frames and returns the backend address each went to.
func (e *fixtureEnv) distribute(frames [][]byte) []string {
	e.t.Helper()
	byMAC := make(map[[6]byte]string)
	for i := 11; i <= 14; i++ {
		a := fmt.Sprintf("10.0.0.%d", i)
		byMAC[[6]byte(backendMAC(netip.MustParseAddr(a)))] = a
	}
	out := make([]string, len(frames))
	err := e.dp.withRunner(e.eth0.Index, func(r *runner) error {
		for i, f := range frames {
			v, o, err := r.run(f)
			if err != nil {
				return err
			}
			if v != xdpTX {
				return fmt.Errorf("flow %d: verdict %s", i, verdictNames[v])
			}
			out[i] = byMAC[[6]byte(net.HardwareAddr(o[:6]))]
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func distEnv(t *testing.T) *fixtureEnv {
	if testing.Short() {
		t.Skip("skipped in -short: runs 100k+ flows through the program")
	}
	return newFixtureEnv(t, Options{FlowTableSize: 1 << 19, MaglevTableSize: DefaultMaglevTableSize})
}

func TestDistributionRoundRobinIsExact(t *testing.T) {
	e := distEnv(t)
	e.apply(dataplane.DesiredState{
		Services: []dataplane.Service{svc(vip4, 80, dataplane.RoundRobin, backends("10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14")...)},
		Served:   served(vip4),
	})
	got := count(e.distribute(e.flowFrames(vip4, distFlows, 1000)))
	for _, b := range []string{"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"} {
		if got[b] != distFlows/4 {
			t.Errorf("rr: %s got %d of %d flows, want exactly %d (all: %v)", b, got[b], distFlows, distFlows/4, got)
		}
	}
}

func TestDistributionWeightedRoundRobin(t *testing.T) {
	e := distEnv(t)
	weights := map[string]int{"10.0.0.11": 1, "10.0.0.12": 2, "10.0.0.13": 3, "10.0.0.14": 7}
	var bes []dataplane.Backend
	total := 0
	for a, w := range weights {
		bes = append(bes, weighted(a, w))
		total += w
	}
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.WeightedRoundRobin, bes...)}, Served: served(vip4)})
	got := count(e.distribute(e.flowFrames(vip4, distFlows, 1000)))
	for a, w := range weights {
		want := float64(distFlows) * float64(w) / float64(total)
		if dev := math.Abs(float64(got[a])-want) / want; dev > 0.01 {
			t.Errorf("wrr: %s (weight %d) got %d flows, want %.0f ±1%% (off by %.2f%%)", a, w, got[a], want, 100*dev)
		}
	}
	t.Logf("wrr 1:2:3:7 over %d flows: %v", distFlows, got)
}

func TestDistributionMaglevMovesFewFlows(t *testing.T) {
	e := distEnv(t)
	all := backends("10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14")
	apply := func(bes []dataplane.Backend) {
		e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.Maglev, bes...)}, Served: served(vip4)})
	}
	apply(all)
	before := e.distribute(e.flowFrames(vip4, distFlows, 1000))
	shares := count(before)
	n := len(all)
	for b, c := range shares {
		if dev := math.Abs(float64(c)-float64(distFlows)/float64(n)) / (float64(distFlows) / float64(n)); dev > 0.05 {
			t.Errorf("mh: %s got %d of %d flows, more than 5%% off an even share", b, c, distFlows)
		}
	}
	// Drop one backend; the same clients open new connections (new source
	// port, so the flow table does not hold them).
	apply(all[:n-1])
	after := e.distribute(e.flowFrames(vip4, distFlows, 2000))
	moved := 0
	for i := range before {
		if before[i] != after[i] {
			moved++
		}
	}
	limit := 1/float64(n) + 0.02
	frac := float64(moved) / float64(distFlows)
	t.Logf("mh: removing 1 of %d backends moved %.2f%% of %d clients (limit %.2f%%)", n, 100*frac, distFlows, 100*limit)
	if frac > limit {
		t.Errorf("mh moved %.2f%% of flows when 1 of %d backends went, want at most %.2f%%", 100*frac, n, 100*limit)
	}
}

func TestDistributionWeightedMaglev(t *testing.T) {
	e := distEnv(t)
	weights := map[string]int{"10.0.0.11": 1, "10.0.0.12": 1, "10.0.0.13": 2, "10.0.0.14": 4}
	var bes []dataplane.Backend
	for a, w := range weights {
		bes = append(bes, weighted(a, w))
	}
	e.apply(dataplane.DesiredState{Services: []dataplane.Service{svc(vip4, 80, dataplane.Maglev, bes...)}, Served: served(vip4)})
	got := count(e.distribute(e.flowFrames(vip4, distFlows, 1000)))
	for a, w := range weights {
		want := float64(distFlows) * float64(w) / 8
		if dev := math.Abs(float64(got[a])-want) / want; dev > 0.05 {
			t.Errorf("weighted mh: %s (weight %d) got %d flows, want %.0f ±5%%", a, w, got[a], want)
		}
	}
	t.Logf("mh 1:1:2:4 over %d clients: %v", distFlows, got)
}
