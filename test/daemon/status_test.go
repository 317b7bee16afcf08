package daemontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

// TestStatusCommand runs `xkeep status`, `--json` and `--watch` against
// a running daemon.
func TestStatusCommand(t *testing.T) {
	r := newRig(t)
	x := r.start(conf{})
	x.waitServing(10 * time.Second)
	if _, err := r.who(); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := runXkeep(t, "status", "--socket", x.socket)
	if code != 0 {
		t.Fatalf("xkeep status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"dataplane " + dataplaneKind, "VI_1", "MASTER", "150", "10.60.0.100",
		"TCP 10.60.0.100:80", "UDP 10.60.0.100:5353", "rr", "served",
		"-> 10.60.0.11:80", "-> 10.60.0.12:80", "Route", "up",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("xkeep status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("xkeep status:\n%s", out)

	// IPVS's counters lag by up to its 2 s estimator period.
	testnet.Eventually(t, 5*time.Second, "xkeep status --json shows the connection", func() error {
		out, errOut, code := runXkeep(t, "status", "--socket", x.socket, "--json")
		if code != 0 {
			return fmt.Errorf("xkeep status --json: exit %d: %s", code, errOut)
		}
		var snap status.Snapshot
		if err := json.Unmarshal([]byte(out), &snap); err != nil {
			return fmt.Errorf("xkeep status --json: %v\n%s", err, out)
		}
		if len(snap.Instances) != 1 || snap.Instances[0].State != status.StateMaster || len(snap.Services) != 2 {
			return fmt.Errorf("--json snapshot %+v", snap)
		}
		var tcp status.Service
		for _, s := range snap.Services {
			if s.Port == tcpPort {
				tcp = s
			}
		}
		if tcp.NewFlows == 0 || len(tcp.Backends) != 2 || len(tcp.Backends[0].Checks) != 1 || tcp.Backends[0].Checks[0].Type != "TCP_CHECK" {
			return fmt.Errorf("TCP service in --json: %+v", tcp)
		}
		return nil
	})

	// --watch refreshes until interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, xkeepBin, "status", "--socket", x.socket, "--watch", "--interval", "100ms")
	var buf testnet.SyncBuffer
	cmd.Stdout = &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testnet.Eventually(t, 5*time.Second, "--watch refreshes at a 100 ms interval", func() error {
		if n := strings.Count(buf.String(), "Virtual services"); n < 3 {
			return fmt.Errorf("%d screens", n)
		}
		return nil
	})
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("xkeep status --watch after SIGINT: %v", err)
	}
	if !bytes.Contains([]byte(buf.String()), []byte("\033[H\033[2J")) {
		t.Error("--watch does not clear the screen between refreshes")
	}
}
