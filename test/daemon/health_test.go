package daemontest

import (
	"fmt"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

// TestRealServerDiesAndReturns stops a real server's listener: its
// TCP_CHECK fails, and within the check's bound (delay_loop, then retry
// attempts delay_before_retry apart, each up to connect_timeout) the
// daemon takes it out of the dataplane, so every new connection reaches
// the other server. When it listens again it is back within a delay_loop.
func TestRealServerDiesAndReturns(t *testing.T) {
	r := newRig(t)
	c := conf{DelayLoop: 1, Retry: 1, DelayBeforeRetry: 1, ConnectTimeout: 1}
	x := r.start(c)
	x.waitServing(10 * time.Second)
	// Both serve before the failure.
	seen := map[string]int{}
	for range 4 {
		who, err := r.who()
		if err != nil {
			t.Fatal(err)
		}
		seen[who]++
	}
	if seen["rs1"] == 0 || seen["rs2"] == 0 {
		t.Fatalf("rr over both servers answered %v", seen)
	}

	sec := time.Second
	downBound := time.Duration(c.DelayLoop)*sec + time.Duration(c.Retry)*time.Duration(c.DelayBeforeRetry)*sec +
		time.Duration(c.Retry+1)*time.Duration(c.ConnectTimeout)*sec + 500*time.Millisecond
	dead := r.servers[1]
	start := time.Now()
	dead.stop()
	testnet.Eventually(t, downBound, "rs2 taken out of the dataplane", func() error {
		if err := backendState(x, dead, "down"); err != nil {
			return err
		}
		// The status shows the checker's verdict; the owner loop applies
		// it a moment later. IPVS's table says when it has (XDP applies
		// in microseconds, well before the next connection).
		if dataplaneKind == "ipvs" && r.ipvsHasDest(tcpPort, dead.addr) {
			return fmt.Errorf("%s still an IPVS destination", dead.addr)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("rs2 down %v after its listener closed (bound %v)", took.Round(time.Millisecond), downBound)
	for i := range 6 {
		who, err := r.who()
		if err != nil {
			t.Fatalf("connection %d after rs2 went down: %v", i, err)
		}
		if who != "rs1" {
			t.Fatalf("connection %d answered by %s, want rs1 only", i, who)
		}
	}
	fams, err := x.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := metricValue(fams, "xkeep_backend_up", map[string]string{"port": "80", "backend": fmt.Sprintf("%s:80", dead.addr)}); err != nil || v != 0 {
		t.Errorf("xkeep_backend_up for rs2 = %v (%v), want 0", v, err)
	}

	upBound := time.Duration(c.DelayLoop)*sec + time.Duration(c.ConnectTimeout)*sec + 500*time.Millisecond
	start = time.Now()
	dead.listen()
	testnet.Eventually(t, upBound, "rs2 back in the dataplane", func() error {
		if err := backendState(x, dead, "up"); err != nil {
			return err
		}
		if dataplaneKind == "ipvs" && !r.ipvsHasDest(tcpPort, dead.addr) {
			return fmt.Errorf("%s not an IPVS destination yet", dead.addr)
		}
		return nil
	})
	t.Logf("rs2 up %v after it listened again (bound %v)", time.Since(start).Round(time.Millisecond), upBound)
	seen = map[string]int{}
	for range 4 {
		who, err := r.who()
		if err != nil {
			t.Fatal(err)
		}
		seen[who]++
	}
	if seen["rs2"] == 0 {
		t.Fatalf("rs2 gets no new connections after returning: %v", seen)
	}
}

// backendState checks the TCP service's backend on rs in the daemon's
// status.
func backendState(x *xkeep, rs *realServer, want string) error {
	snap, err := x.status()
	if err != nil {
		return err
	}
	for _, s := range snap.Services {
		if s.Port != tcpPort {
			continue
		}
		for _, b := range s.Backends {
			if b.Addr == rs.addr {
				if b.State != want {
					return fmt.Errorf("%s is %s", rs.name, b.State)
				}
				return checkWeight(b, want)
			}
		}
	}
	return fmt.Errorf("no backend %s in %+v", rs.addr, snap.Services)
}

func checkWeight(b status.Backend, state string) error {
	if state == "down" && b.EffectiveWeight != 0 {
		return fmt.Errorf("down backend with effective weight %d", b.EffectiveWeight)
	}
	return nil
}
