package ipvs

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// drLab is the LVS-DR setup of the seed, in namespaces on one segment: a
// client, a director holding the VIP on eth0 and running IPVS, and two real
// servers with the VIP on lo (arp_ignore/arp_announce, so only the director
// answers ARP for it) serving HTTP on VIP:80 and answering the client
// directly.
type drLab struct {
	f       *fixture
	client  *testnet.Namespace
	rsNames map[netip.Addr]string
	http    *http.Client
}

var (
	labVIP    = netip.MustParseAddr("10.77.0.100")
	labClient = netip.MustParsePrefix("10.77.0.1/24")
	labDir    = netip.MustParsePrefix("10.77.0.2/24")
	labRS     = []netip.Prefix{netip.MustParsePrefix("10.77.0.11/24"), netip.MustParsePrefix("10.77.0.12/24")}
)

func newDRLab(t *testing.T) *drLab {
	t.Helper()
	requireIPVS(t)
	seg := testnet.NewSegment(t)
	client := testnet.NewNamespace(t, "cli")
	director := testnet.NewNamespace(t, "dir")
	seg.Attach(client, "eth0", labClient)
	seg.Attach(director, "eth0", labDir, netip.PrefixFrom(labVIP, 32))
	lab := &drLab{client: client, rsNames: map[netip.Addr]string{}}
	for i, addr := range labRS {
		name := fmt.Sprintf("rs%d", i+1)
		rs := testnet.NewNamespace(t, name)
		seg.Attach(rs, "eth0", addr)
		if err := rs.AddAddr("lo", netip.PrefixFrom(labVIP, 32)); err != nil {
			t.Fatal(err)
		}
		for _, kv := range [][2]string{
			{"net/ipv4/conf/all/arp_ignore", "1"}, {"net/ipv4/conf/eth0/arp_ignore", "1"},
			{"net/ipv4/conf/all/arp_announce", "2"}, {"net/ipv4/conf/eth0/arp_announce", "2"},
		} {
			if err := rs.Sysctl(kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		serveName(t, rs, name)
		lab.rsNames[addr.Addr()] = name
	}
	lab.f = newFixture(t, director)
	lab.http = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			// One new connection, hence one scheduling decision, per request.
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := client.Do(func() (err error) {
					c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
	t.Cleanup(lab.http.CloseIdleConnections)
	return lab
}

// serveName answers every HTTP request on port 80 of the namespace with
// the server's name.
func serveName(t *testing.T, ns *testnet.Namespace, name string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", ":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func (l *drLab) service(sched dataplane.Scheduler, weights ...int) dataplane.Service {
	s := dataplane.Service{
		Key:       dataplane.ServiceKey{Addr: labVIP, Port: 80, Protocol: dataplane.TCP},
		Scheduler: sched,
		Forward:   dataplane.DirectRouting,
	}
	for i, addr := range labRS {
		s.Backends = append(s.Backends, backend(addr.Addr(), 80, weights[i], dataplane.BackendUp))
	}
	return s
}

func (l *drLab) apply(t *testing.T, svcs ...dataplane.Service) {
	t.Helper()
	if err := l.f.dp.Apply(dataplane.DesiredState{Services: svcs, Served: served(labVIP)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// get makes n requests to the VIP, each on a new connection, and counts
// which real server answered.
func (l *drLab) get(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, err := l.http.Get("http://" + labVIP.String() + "/")
		if err != nil {
			t.Fatalf("GET via the VIP: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		got[string(body)]++
	}
	return got
}

func (l *drLab) stats(t *testing.T) dataplane.ServiceStats {
	t.Helper()
	st, err := l.f.dp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 {
		t.Fatalf("Stats reports %d services, want 1", len(st.Services))
	}
	return st.Services[0]
}

// statsWhen waits for the counters to satisfy cond: IPVS on 6.1 folds its
// per-CPU counters into the totals it reports every 2 seconds.
func (l *drLab) statsWhen(t *testing.T, what string, cond func(dataplane.ServiceStats) error) dataplane.ServiceStats {
	t.Helper()
	var st dataplane.ServiceStats
	testnet.Eventually(t, 10*time.Second, what, func() error {
		st = l.stats(t)
		return cond(st)
	})
	return st
}

func TestDRForwardsHTTPAndTakesFailedBackendsOut(t *testing.T) {
	lab := newDRLab(t)
	svc := lab.service(dataplane.RoundRobin, 1, 1)
	lab.apply(t, svc)

	// Round robin over new connections: both real servers answer, equally.
	if got := lab.get(t, 10); got["rs1"] != 5 || got["rs2"] != 5 {
		t.Fatalf("answers %v, want 5 from each real server", got)
	}
	st := lab.statsWhen(t, "counters show 10 connections", func(st dataplane.ServiceStats) error {
		if st.NewFlows != 10 {
			return fmt.Errorf("%d connections", st.NewFlows)
		}
		return nil
	})
	// A connection is at least SYN, ACK, request, FIN from the client.
	if st.Packets < 10*4 || st.Bytes < st.Packets*40 {
		t.Errorf("service counters %+v: want at least 40 packets of 40 bytes or more", st)
	}
	var flows uint64
	for _, b := range st.Backends {
		if b.Packets < 5*4 || b.Bytes < b.Packets*40 {
			t.Errorf("backend %s counters %+v: want its 5 connections' packets", b.BackendKey, b)
		}
		flows += b.ActiveFlows
	}
	// Closed connections keep their IPVS entries for a while (FIN_WAIT,
	// TIME_WAIT): ActiveFlows counts active and inactive entries.
	if flows == 0 || flows > 10 {
		t.Errorf("ActiveFlows sum to %d, want 1-10 (entries of the 10 connections)", flows)
	}
	t.Logf("after 10 connections: %d packets, %d bytes, %d flows", st.Packets, st.Bytes, st.NewFlows)
	for _, b := range st.Backends {
		t.Logf("  backend %s: %d packets, %d bytes, %d active flows", b.BackendKey, b.Packets, b.Bytes, b.ActiveFlows)
	}

	// rs2 fails: Down removes it, every new connection goes to rs1.
	svc.Backends[1].State = dataplane.BackendDown
	lab.apply(t, svc)
	if got := lab.get(t, 6); got["rs1"] != 6 {
		t.Fatalf("with rs2 down: answers %v, want all 6 from rs1", got)
	}
	lab.statsWhen(t, "counters move on", func(st2 dataplane.ServiceStats) error {
		if st2.NewFlows != 16 || st2.Backends[0].Packets < st.Backends[0].Packets+6*4 {
			return fmt.Errorf("before %+v, now %+v", st, st2)
		}
		return nil
	})

	// rs2 recovers; rs1 goes to inhibit_on_failure (weight 0): all to rs2.
	svc.Backends[1].State = dataplane.BackendUp
	svc.Backends[0].State = dataplane.BackendDraining
	lab.apply(t, svc)
	if got := lab.get(t, 4); got["rs2"] != 4 {
		t.Fatalf("with rs1 draining: answers %v, want all 4 from rs2", got)
	}
}

func TestDRWeightsAndPersistence(t *testing.T) {
	lab := newDRLab(t)
	// wrr 3:1 over whole cycles of 4 connections: exactly 3:1.
	lab.apply(t, lab.service(dataplane.WeightedRoundRobin, 3, 1))
	if got := lab.get(t, 8); got["rs1"] != 6 || got["rs2"] != 2 {
		t.Fatalf("wrr 3:1 answers %v, want rs1 6, rs2 2", got)
	}

	// Persistence pins the client to one real server despite rr.
	svc := lab.service(dataplane.RoundRobin, 1, 1)
	svc.Persistence = time.Minute
	lab.apply(t, svc)
	got := lab.get(t, 6)
	if len(got) != 1 {
		t.Fatalf("persistent service: answers %v, want all from one real server", got)
	}
	pinned := 0
	if got["rs2"] == 6 {
		pinned = 1
	}
	// Draining keeps the persistence entry: the client stays.
	svc.Backends[pinned].State = dataplane.BackendDraining
	lab.apply(t, svc)
	if got := lab.get(t, 3); got[fmt.Sprintf("rs%d", pinned+1)] != 3 {
		t.Fatalf("pinned real server draining: answers %v, want the client to stay on rs%d", got, pinned+1)
	}
	// Down removes it, and the client moves to the other one.
	svc.Backends[pinned].State = dataplane.BackendDown
	lab.apply(t, svc)
	if got := lab.get(t, 3); got[fmt.Sprintf("rs%d", 2-pinned)] != 3 {
		t.Fatalf("pinned real server down: answers %v, want all on rs%d", got, 2-pinned)
	}
}

func TestDRUnservedVIPReachesTheLocalStackAndCountersContinue(t *testing.T) {
	lab := newDRLab(t)
	svc := lab.service(dataplane.RoundRobin, 1, 1)
	lab.apply(t, svc)
	lab.get(t, 4)
	before := lab.statsWhen(t, "4 connections counted", func(st dataplane.ServiceStats) error {
		if st.NewFlows != 4 {
			return fmt.Errorf("%d connections", st.NewFlows)
		}
		return nil
	})

	// BACKUP for the VIP (it stays local, as on a backup that is also a
	// real server): IPVS must not intercept, the local stack answers.
	if err := lab.f.dp.Apply(dataplane.DesiredState{Services: []dataplane.Service{svc}}); err != nil {
		t.Fatal(err)
	}
	serveName(t, lab.f.ns, "director")
	if got := lab.get(t, 2); got["director"] != 2 {
		t.Fatalf("VIP not served: answers %v, want the director's own server", got)
	}
	if st := lab.stats(t); st.NewFlows != before.NewFlows || st.Packets < before.Packets {
		t.Errorf("counters went wrong while the service was out of the kernel: %+v -> %+v", before, st)
	}

	// MASTER again: back in IPVS, and the totals continue.
	lab.apply(t, svc)
	if got := lab.get(t, 4); got["rs1"]+got["rs2"] != 4 {
		t.Fatalf("served again: answers %v, want the real servers", got)
	}
	lab.statsWhen(t, "totals continue", func(st dataplane.ServiceStats) error {
		if st.NewFlows != before.NewFlows+4 || st.Packets < before.Packets+4*4 || st.Bytes <= before.Bytes {
			return fmt.Errorf("before %+v, now %+v", before, st)
		}
		return nil
	})
}
