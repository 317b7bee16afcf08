package ipvs

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// framesPerOp is how many frames one benchmark iteration injects.
const framesPerOp = 1 << 18

// BenchmarkForwardDR measures how many packets per second IPVS forwards in
// DR mode: UDP frames of one flow are injected at kernel speed into the
// director's eth0 as if received there (live-frame BPF_PROG_RUN with
// XDP_PASS), go up the stack into IPVS, and leave towards the real server,
// whose end of the veth counts and drops them in XDP. The rate is frames
// that reached the real server per second of injection. dataplane/xdp has
// a benchmark of the same name and setup, with its XDP program in place of
// XDP_PASS + IPVS; test/vm -bench prints their ratio (make bench).
func BenchmarkForwardDR(b *testing.B) {
	requireIPVS(b)
	var (
		vip      = netip.MustParseAddr("10.78.0.100")
		client   = netip.MustParseAddrPort("10.78.0.1:40000")
		dirAddr  = netip.MustParsePrefix("10.78.0.2/24")
		realAddr = netip.MustParsePrefix("10.78.0.11/24")
	)
	director := testnet.NewNamespace(b, "dir")
	real := testnet.NewNamespace(b, "rs")
	port := testnet.VethPair(b, director, "eth0", real, "eth0", dirAddr, netip.PrefixFrom(vip, 32))
	if err := real.AddAddr("eth0", realAddr); err != nil {
		b.Fatal(err)
	}
	if err := real.AddAddr("lo", netip.PrefixFrom(vip, 32)); err != nil {
		b.Fatal(err)
	}
	peerMAC := peerHardwareAddr(b, real)
	// The sink drops ARP too: the director knows the real server's MAC.
	if err := director.AddNeighbor("eth0", realAddr.Addr(), peerMAC); err != nil {
		b.Fatal(err)
	}
	sink := port.PeerSink()

	f := newFixture(b, director)
	err := f.dp.Apply(dataplane.DesiredState{
		Services: []dataplane.Service{{
			Key:       dataplane.ServiceKey{Addr: vip, Port: 9, Protocol: dataplane.UDP},
			Scheduler: dataplane.RoundRobin,
			Forward:   dataplane.DirectRouting,
			Backends:  []dataplane.Backend{backend(realAddr.Addr(), 9, 1, dataplane.BackendUp)},
		}},
		Served: served(vip),
	})
	if err != nil {
		b.Fatal(err)
	}
	frame := testnet.UDPFrame(port.MAC, peerMAC, client, netip.AddrPortFrom(vip, 9), make([]byte, 18)) // 60-byte frame

	// Warm up: the first frame creates the IPVS connection entry.
	if _, err := director.InjectFrames(nil, "eth0", frame, 1); err != nil {
		b.Fatal(err)
	}
	waitFrames(b, sink, 1)

	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		d, err := director.InjectFrames(nil, "eth0", frame, framesPerOp)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += d
	}
	b.StopTimer()
	delivered := settledFrames(b, sink) - 1
	injected := uint64(b.N) * framesPerOp
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(100*float64(delivered)/float64(injected), "%delivered")
	b.ReportMetric(0, "ns/op")
}

func peerHardwareAddr(b *testing.B, ns *testnet.Namespace) []byte {
	h, err := ns.Netlink()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		b.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

func waitFrames(b *testing.B, sink *testnet.FrameSink, want uint64) {
	testnet.Eventually(b, 10*time.Second, "frames reach the real server", func() error {
		n, err := sink.Frames()
		if err == nil && n < want {
			err = fmt.Errorf("%d of %d frames", n, want)
		}
		return err
	})
}

// settledFrames reads the sink once frames in flight have landed: the
// count stays the same across two readings 50 ms apart.
func settledFrames(b *testing.B, sink *testnet.FrameSink) uint64 {
	var last uint64
	stable := 0
	testnet.Eventually(b, 10*time.Second, "frame count settles", func() error {
		n, err := sink.Frames()
		if err != nil {
			return err
		}
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		if stable < 5 {
			return fmt.Errorf("still counting (%d)", n)
		}
		return nil
	})
	return last
}
