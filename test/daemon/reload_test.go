package daemontest

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/api"
	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

const extraService = `virtual_server 10.60.0.100 8080 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 10.60.0.11 8080 {
        weight 2
    }
}
`

// TestReloadKeepsTheMasterAndItsFlows: a good reload (`xkeep reload`
// and SIGHUP) adds a service and changes another while VI_1 stays MASTER
// with no transition, the VIP stays, and established connections keep
// their real servers. A broken file is rejected with file:line:col
// positions in the API's reply and the daemon's log, and nothing changes:
// the services, VRRP state, VIP and connections stay as they were.
func TestReloadKeepsTheMasterAndItsFlows(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	before := x.waitServing(10 * time.Second)

	askAll := r.holdConns(4).askAll
	unchanged := func(when string, wantServices int) status.Snapshot {
		t.Helper()
		snap, err := x.status()
		if err != nil {
			t.Fatal(err)
		}
		in := snap.Instances[0]
		if in.State != status.StateMaster || in.Counters.Transitions != before.Instances[0].Counters.Transitions {
			t.Fatalf("%s: VI_1 %s after %d transitions (had %d)", when, in.State, in.Counters.Transitions, before.Instances[0].Counters.Transitions)
		}
		if len(snap.Services) != wantServices {
			t.Fatalf("%s: %d services, want %d", when, len(snap.Services), wantServices)
		}
		if !r.hasVIP() || !r.forwarding() {
			t.Fatalf("%s: VIP %v, dataplane forwarding %v", when, r.hasVIP(), r.forwarding())
		}
		askAll(when)
		return snap
	}

	// A good reload through the control socket: one more service, and
	// the UDP service's checkers slowed down.
	good := conf{Extra: extraService}.render()
	good = strings.Replace(good, "delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol UDP", "delay_loop 2\n    lb_algo rr\n    lb_kind DR\n    protocol UDP", 1)
	r.writeConf(good)
	out, errOut, code := runXkeep(t, "reload", "--socket", x.socket)
	if code != 0 || !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("xkeep reload: exit %d, %q %q", code, out, errOut)
	}
	snap := unchanged("after a good reload", 3)
	t.Logf("reload took %v", snap.Config.LastReloadDuration)
	testnet.Eventually(t, 5*time.Second, "the new service served", func() error {
		snap, err := x.status()
		if err != nil {
			return err
		}
		for _, s := range snap.Services {
			if s.Port == 8080 && s.Active && len(s.Backends) == 1 && s.Backends[0].Weight == 2 {
				return nil
			}
		}
		return fmt.Errorf("services %+v", snap.Services)
	})

	// The same through SIGHUP.
	if err := x.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 5*time.Second, "SIGHUP reloads", func() error {
		snap, err := x.status()
		if err != nil {
			return err
		}
		if snap.Config.Reloads != 2 || !snap.Config.LastReloadOK {
			return fmt.Errorf("reloads %d ok %v", snap.Config.Reloads, snap.Config.LastReloadOK)
		}
		return nil
	})
	unchanged("after SIGHUP", 3)

	// A broken file: two errors, both reported with their positions.
	beforeBroken, err := x.status()
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(good, "lb_algo wrr", "lb_algo wrrr", 1)
	broken = strings.Replace(broken, "virtual_router_id 60", "virtual_router_id 600", 1)
	path := r.writeConf(broken)
	wantErrs := []string{path + ":7:23: ", "unknown lb_algo \"wrrr\""}
	res, err := api.NewClient(x.socket).Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Errors) < 2 {
		t.Fatalf("broken reload accepted or under-reported: %+v", res)
	}
	joined := strings.Join(res.Errors, "\n")
	for _, w := range wantErrs {
		if !strings.Contains(joined, w) {
			t.Errorf("reload errors lack %q:\n%s", w, joined)
		}
	}
	for _, e := range res.Errors {
		if !strings.HasPrefix(e, path+":") {
			t.Errorf("error without its position: %q", e)
		}
	}
	_, errOut, code = runXkeep(t, "reload", "--socket", x.socket)
	if code != 1 || !strings.Contains(errOut, "unknown lb_algo") || !strings.Contains(errOut, "keeps running the previous one") {
		t.Errorf("xkeep reload of a broken file: exit %d, %q", code, errOut)
	}
	snap = unchanged("after a rejected reload", 3)
	if snap.Apply.Applies != beforeBroken.Apply.Applies {
		t.Errorf("the rejected file reached the dataplane: %d applies, %d before", snap.Apply.Applies, beforeBroken.Apply.Applies)
	}
	if snap.Config.ReloadFailures != 2 || snap.Config.LastReloadOK || !strings.Contains(snap.Config.LastReloadError, "unknown lb_algo") {
		t.Errorf("config status after the rejected reload: %+v", snap.Config)
	}
	for _, s := range snap.Services {
		if s.Port == 8080 && s.Scheduler != "wrr" {
			t.Errorf("the rejected file changed the running service: %+v", s)
		}
	}
	if !strings.Contains(x.log.String(), path+":7:23") {
		t.Error("the daemon's log lacks the error's position")
	}
	fams, err := x.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := metricValue(fams, "xkeep_config_last_reload_successful", nil); err != nil || v != 0 {
		t.Errorf("xkeep_config_last_reload_successful = %v (%v), want 0", v, err)
	}
}
