package daemontest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"

	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/vrrp/packet"
)

// TestSIGTERMStopsWithinTwoSeconds: on SIGTERM the master sends a
// priority 0 advert, removes the VIP, detaches the XDP program and
// removes its pins, runs notify_stop, and exits, all within 2 s.
func TestSIGTERMStopsWithinTwoSeconds(t *testing.T) {
	r := newRig(t)
	marker := filepath.Join(r.dir, "stopped")
	script := filepath.Join(r.dir, "notify_stop.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	adverts := r.watchAdverts()
	x := r.start(conf{NotifyStop: script + " VI_1"})
	x.waitServing(10 * time.Second)
	if !r.hasVIP() || !r.forwarding() || dataplaneKind == "xdp" && len(r.pinned()) == 0 {
		t.Fatalf("before the stop: VIP %v, dataplane forwarding %v, pins %v", r.hasVIP(), r.forwarding(), r.pinned())
	}

	took := x.signal(syscall.SIGTERM, 2*time.Second)
	t.Logf("xkeep exited %v after SIGTERM", took.Round(time.Millisecond))
	if r.hasVIP() {
		t.Error("the VIP is still on eth0")
	}
	if r.forwarding() {
		t.Errorf("the %s dataplane still intercepts VIP traffic", dataplaneKind)
	}
	if p := r.pinned(); len(p) != 0 {
		t.Errorf("pins left in %s: %v", r.pinDir, p)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "VI_1" {
		t.Errorf("notify_stop did not run: %q, %v", b, err)
	}
	testnet.Eventually(t, time.Second, "a priority 0 advert on the segment", func() error {
		if !slices.Contains(adverts.priorities(), 0) {
			return fmt.Errorf("priorities seen %v", adverts.priorities())
		}
		return nil
	})
	if _, err := os.Stat(x.socket); err == nil {
		t.Error("the control socket is still there")
	}
	if err := x.proc.Wait(); err != nil {
		t.Errorf("exit status: %v", err)
	}
}

// TestSIGKILLThenRestartAdoptsThePins: a SIGKILLed daemon's crash guard
// removes its VIP, and leaves its XDP program forwarding on its own; the
// next start adopts the pinned maps and links (same --pin-dir), keeps
// forwarding while VRRP decides and, master again, adds the VIP back:
// every established connection still reaches the same real server.
//
// On IPVS the guard removes the services too (they would bounce a new
// master's DR packets back), so nothing forwards while the daemon is
// dead; the restarted daemon adds them again, and IPVS's connection table
// keeps each connection on its real server. The XDP-only checks (pins,
// no detach, forwarding while dead) are left out.
func TestSIGKILLThenRestartAdoptsThePins(t *testing.T) {
	xdp := dataplaneKind == "xdp"
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)

	const n = 6
	askAll := r.holdConns(n).askAll

	x.signal(syscall.SIGKILL, 2*time.Second)
	// The daemon's output ends when its guard has exited too.
	if r.hasVIP() {
		t.Fatal("after SIGKILL the VIP is still on eth0: the crash guard did not remove it")
	}
	if xdp {
		if !r.forwarding() || len(r.pinned()) == 0 {
			t.Fatalf("after SIGKILL: XDP attached %v, pins %v (both stay for the next start)", r.forwarding(), r.pinned())
		}
		askAll("with the daemon dead") // the pinned program forwards on its own
	} else if r.forwarding() {
		t.Fatalf("after SIGKILL IPVS services are left: %v", r.ipvsServices())
	}

	events := r.watchAddrs()
	detached := func() int { return 0 }
	if xdp {
		detached = r.watchXDPDetach()
	}
	x = r.start(conf{})
	if xdp {
		askAll("while the restarted daemon is not master yet")
	}
	snap := x.waitServing(10 * time.Second)
	if xdp && !strings.Contains(x.log.String(), "adopted") {
		t.Error("the restarted daemon did not say it adopted the pinned state")
	}
	askAll("after the restart")
	if n := detached(); n > 0 {
		t.Errorf("the XDP program was detached %d times during the restart: forwarding had a gap", n)
	}
	if !r.hasVIP() || !slices.Contains(events.list(), "+"+vip.String()) {
		t.Errorf("the VIP is not back (address events %v)", events.list())
	}
	if in := snap.Instances[0]; in.State != status.StateMaster {
		t.Errorf("VI_1 %s", in.State)
	}
	t.Logf("address events during the restart: %v", events.list())
}

// TestSIGKILLWithItsGuardThenRestartRemovesTheStaleVIP: when the guard
// dies with the daemon (a kill of the whole cgroup, the machine's OOM
// killer taking both), the VIP stays; the next start removes it (it is
// not master yet) before it becomes master again.
func TestSIGKILLWithItsGuardThenRestartRemovesTheStaleVIP(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)
	guard := x.guardPID()
	// Stopped first, so that it cannot act on the daemon's death.
	if err := syscall.Kill(guard, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := x.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(guard, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-x.proc.Done()
	if !r.hasVIP() {
		t.Fatal("the VIP is gone although the guard died with the daemon")
	}

	events := r.watchAddrs()
	x = r.start(conf{})
	testnet.Eventually(t, 5*time.Second, "the stale VIP removed at start", func() error {
		if !slices.Contains(events.list(), "-"+vip.String()) {
			return fmt.Errorf("address events %v", events.list())
		}
		return nil
	})
	x.waitServing(10 * time.Second)
	if !r.hasVIP() {
		t.Error("the VIP is not back")
	}
}

// adverts records the priorities of VRRP adverts seen from the client.
type adverts struct {
	mu    chan struct{}
	prios []int
}

func (a *adverts) priorities() []int {
	a.mu <- struct{}{}
	defer func() { <-a.mu }()
	return slices.Clone(a.prios)
}

// watchAdverts joins the VRRP group on the client's eth0 and records
// every advert's priority.
func (r *rig) watchAdverts() *adverts {
	r.t.Helper()
	a := &adverts{mu: make(chan struct{}, 1)}
	var conn net.PacketConn
	err := r.cli.Do(func() (err error) {
		conn, err = net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return ipv4.NewPacketConn(conn).JoinGroup(ifi, &net.IPAddr{IP: net.IP(packet.GroupIPv4.AsSlice())})
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			// VRRPv3: version/type, VRID, priority, ...
			if n >= 3 {
				a.mu <- struct{}{}
				a.prios = append(a.prios, int(buf[2]))
				<-a.mu
			}
		}
	}()
	return a
}

// watchXDPDetach samples the LB's eth0 every few milliseconds until the
// returned function is called, which reports how many samples found no
// XDP program attached.
func (r *rig) watchXDPDetach() func() int {
	r.t.Helper()
	h, err := r.lb.Netlink()
	if err != nil {
		r.t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		defer h.Close()
		n := 0
		for {
			if l, err := h.LinkByName("eth0"); err == nil {
				if x := l.Attrs().Xdp; x == nil || (!x.Attached && x.ProgId == 0) {
					n++
				}
			}
			select {
			case <-stop:
				done <- n
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() int {
		close(stop)
		return <-done
	}
}

// TestIPVSUnavailableSaysUseXDP: on a kernel without IPVS (this
// machine's), `xkeep run --dataplane=ipvs` refuses to start and names the
// XDP dataplane.
func TestIPVSUnavailableSaysUseXDP(t *testing.T) {
	r := newRig(t)
	var famErr error
	if err := r.lb.Do(func() error {
		_, famErr = netlink.GenlFamilyGet("IPVS")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if famErr == nil {
		t.Skip("skipped: this kernel has IPVS (the test is about kernels without it)")
	}
	x := r.startArgs(conf{}.render(), "--dataplane", "ipvs")
	if err := x.proc.Wait(); err == nil {
		t.Fatal("xkeep run --dataplane=ipvs started without IPVS")
	}
	if out := x.log.String(); !strings.Contains(out, "the kernel has no IPVS") || !strings.Contains(out, "--dataplane=xdp") {
		t.Errorf("message does not say to use --dataplane=xdp:\n%s", out)
	}
}
