package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xkeep/xkeep/internal/status"
	"github.com/xkeep/xkeep/internal/testnet"
)

// MetricsAddr is where every xkeep daemon serves /metrics, inside its
// node's namespace.
const MetricsAddr = "127.0.0.1:9650"

// Daemon is a running xkeep or keepalived process on a node.
type Daemon struct {
	Node *Node
	Kind string // "xkeep" or "keepalived"
	// Socket is xkeep's control socket.
	Socket string
	// ConfPath is the configuration file it runs.
	ConfPath string
	// LogPath is the file holding the process's output.
	LogPath string

	cmd  *exec.Cmd
	proc *testnet.Process
	log  *testnet.SyncBuffer
	// vrrpPidFile is keepalived's VRRP child pid file.
	vrrpPidFile string
	vrrpPid     int
}

// XkeepOptions are `xkeep run` flags.
type XkeepOptions struct {
	// Dataplane is xdp or ipvs (default xdp).
	Dataplane string
	// XDPMode is auto, native or generic (default auto).
	XDPMode string
	// LogLevel defaults to debug.
	LogLevel string
}

// StartXkeep writes conf and runs `xkeep run` on the node with its own
// control socket, metrics listener and pin directory (under the rig's
// bpf mount). The process is killed when the test ends, if still running.
func (n *Node) StartXkeep(conf Conf, o XkeepOptions) *Daemon {
	t := n.rig.T
	t.Helper()
	if o.Dataplane == "" {
		o.Dataplane = "xdp"
	}
	if o.XDPMode == "" {
		o.XDPMode = "auto"
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	seq := n.nextDaemon()
	path := n.writeConf(fmt.Sprintf("xkeep-%d.conf", seq), conf.Render())
	sock := filepath.Join(n.Dir, "xkeep.sock")
	cmd := exec.Command(n.rig.Bin, "run",
		"-f", path,
		"--dataplane", o.Dataplane,
		"--xdp-mode", o.XDPMode,
		"--metrics-listen", MetricsAddr,
		"--socket", sock,
		"--pin-dir", n.PinDir(),
		"--log-format", "text",
		"--log-level", o.LogLevel,
	)
	d := n.start("xkeep", seq, cmd)
	d.Socket, d.ConfPath = sock, path
	return d
}

// PinDir is the node's bpffs directory for pinned maps and links.
func (n *Node) PinDir() string { return filepath.Join(n.rig.BPFFS, n.Name) }

// StartKeepalived runs keepalived (VRRP only: -P) in the foreground on
// the node with pid files of its own.
func (n *Node) StartKeepalived(conf Conf) *Daemon {
	t := n.rig.T
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		if testnet.InCI() {
			t.Fatalf("keepalived not installed (test/deps.sh installs it): %v", err)
		}
		t.Skipf("skipped: keepalived is not installed (%v)", err)
	}
	seq := n.nextDaemon()
	path := n.writeConf(fmt.Sprintf("keepalived-%d.conf", seq), conf.Render())
	pid := filepath.Join(n.Dir, "keepalived.pid")
	vpid := filepath.Join(n.Dir, "keepalived_vrrp.pid")
	// A killed keepalived leaves its pid files behind, and the next one
	// would refuse to start ("daemon is already running").
	_ = os.Remove(pid)
	_ = os.Remove(vpid)
	cmd := exec.Command("keepalived", "-n", "-l", "-D", "-P", "-f", path, "-p", pid, "-r", vpid)
	d := n.start("keepalived", seq, cmd)
	d.vrrpPidFile, d.ConfPath = vpid, path
	return d
}

func (n *Node) nextDaemon() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.daemons++
	return n.daemons
}

func (n *Node) writeConf(name, text string) string {
	path := filepath.Join(n.Dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		n.rig.T.Fatal(err)
	}
	return path
}

func (n *Node) start(kind string, seq int, cmd *exec.Cmd) *Daemon {
	t := n.rig.T
	logPath := filepath.Join(n.Dir, fmt.Sprintf("%s-%d.log", kind, seq))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Node: n, Kind: kind, LogPath: logPath, cmd: cmd, log: &testnet.SyncBuffer{}}
	cmd.Stdout = io.MultiWriter(d.log, f)
	cmd.Stderr = cmd.Stdout
	cmd.Dir = n.Dir
	p, err := n.NS.StartProcess(t, cmd)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	d.proc = p
	n.rig.mu.Lock()
	n.rig.procs = append(n.rig.procs, d)
	n.rig.mu.Unlock()
	t.Cleanup(func() {
		d.Kill()
		f.Close()
		if t.Failed() || os.Getenv("XKEEP_TEST_LOGS") != "" {
			t.Logf("--- %s %d log on %s ---\n%s", kind, seq, n.Name, d.log.String())
		}
	})
	return d
}

// Running reports whether the process has not exited.
func (d *Daemon) Running() bool { return d.proc.Running() }

// Done is closed once the process has exited and been reaped.
func (d *Daemon) Done() <-chan struct{} { return d.proc.Done() }

// Pid is the process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Log returns the process's output so far.
func (d *Daemon) Log() string { return d.log.String() }

// Kill SIGKILLs the process and waits until it is reaped. keepalived's
// VRRP child goes first (its parent stopped before, so it neither
// respawns the child nor tells it to resign).
func (d *Daemon) Kill() {
	if !d.Running() {
		return
	}
	if d.vrrpPidFile != "" {
		_ = d.cmd.Process.Signal(syscall.SIGSTOP)
		if pid := d.VRRPChild(); pid > 0 {
			d.vrrpPid = pid
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = d.cmd.Process.Kill()
	<-d.proc.Done()
}

// Stop sends SIGTERM and waits up to limit for the process to exit. It
// returns how long that took, or an error if it did not exit in time.
func (d *Daemon) Stop(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-d.proc.Done():
		return time.Since(start), nil
	case <-time.After(limit):
		return time.Since(start), fmt.Errorf("%s on %s did not exit within %v of SIGTERM", d.Kind, d.Node.Name, limit)
	}
}

// ExitErr is the process's Wait error once it has exited.
func (d *Daemon) ExitErr() error { return d.proc.Wait() }

// VRRPChild returns keepalived's VRRP process id (0 when not known yet).
func (d *Daemon) VRRPChild() int {
	if d.vrrpPidFile == "" {
		return 0
	}
	b, err := os.ReadFile(d.vrrpPidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// extraPIDs are processes of the daemon besides the one started (the
// leak check looks for them).
func (d *Daemon) extraPIDs() []int {
	if d.vrrpPid > 0 {
		return []int{d.vrrpPid}
	}
	if pid := d.VRRPChild(); pid > 0 {
		return []int{pid}
	}
	return nil
}

// Status runs `xkeep status --json` against the daemon's socket.
func (d *Daemon) Status(ctx context.Context) (status.Snapshot, error) {
	var snap status.Snapshot
	cmd := exec.CommandContext(ctx, d.Node.rig.Bin, "status", "--socket", d.Socket, "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return snap, fmt.Errorf("xkeep status on %s: %w: %s", d.Node.Name, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &snap); err != nil {
		return snap, fmt.Errorf("xkeep status on %s: %w", d.Node.Name, err)
	}
	return snap, nil
}

// Reload runs `xkeep reload` against the daemon's socket.
func (d *Daemon) Reload(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, d.Node.rig.Bin, "reload", "--socket", d.Socket).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xkeep reload on %s: %w: %s", d.Node.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Metrics scrapes the daemon's /metrics from inside its namespace.
func (d *Daemon) Metrics(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conn net.Conn
	err := d.Node.NS.Do(func() (err error) {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", MetricsAddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", d.Node.Name, err)
	}
	body, err := get(ctx, conn, MetricsAddr, "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", d.Node.Name, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", d.Node.Name, err)
	}
	return Metrics(fams), nil
}

// Metrics is a scrape: metric families by name.
type Metrics map[string]*dto.MetricFamily

// Sample is one series of a scrape.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Samples returns the series of a metric whose labels include match
// (label, value pairs).
func (m Metrics) Samples(name string, match ...string) []Sample {
	fam := m[name]
	if fam == nil {
		return nil
	}
	var out []Sample
	for _, mt := range fam.GetMetric() {
		labels := map[string]string{}
		for _, lp := range mt.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if labels[match[i]] != match[i+1] {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		switch {
		case mt.Counter != nil:
			v = mt.Counter.GetValue()
		case mt.Gauge != nil:
			v = mt.Gauge.GetValue()
		case mt.Untyped != nil:
			v = mt.Untyped.GetValue()
		}
		out = append(out, Sample{Labels: labels, Value: v})
	}
	return out
}

// Value returns the one series of name matching the labels.
func (m Metrics) Value(name string, match ...string) (float64, error) {
	s := m.Samples(name, match...)
	if len(s) != 1 {
		return 0, fmt.Errorf("%s%v: %d series, want 1", name, match, len(s))
	}
	return s[0].Value, nil
}

// WaitReady waits until the daemon has started: xkeep serves /metrics
// (it does so once it has loaded its configuration and dataplane, just
// before its VRRP instances start), keepalived has written its VRRP
// child's pid file. It fails when the process exits first.
func (d *Daemon) WaitReady(ctx context.Context, limit time.Duration) error {
	_, err := Await(ctx, limit, fmt.Sprintf("%s on %s ready", d.Kind, d.Node.Name), func() error {
		if !d.Running() {
			return fmt.Errorf("exited: %v\n%s", d.ExitErr(), d.Log())
		}
		if d.Kind == "keepalived" {
			if d.VRRPChild() == 0 {
				return errors.New("no VRRP child pid yet")
			}
			return nil
		}
		_, err := d.Metrics(ctx)
		return err
	})
	return err
}
