package health_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

// miscServer is a real server checked only by a script, so it needs no
// network.
var miscRS = netip.MustParseAddrPort("10.77.0.2:80")

// exitScript returns a script that records its arguments and exits with
// the code in a file the test sets.
func exitScript(s *scriptDir) (path string, setCode func(int)) {
	code := filepath.Join(s.dir, "code")
	path = s.write("check.sh", `echo "$@" > "`+s.dir+`/args"; exit $(cat "`+code+`")`)
	return path, func(c int) {
		if err := os.WriteFile(code, []byte(strconv.Itoa(c)), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

func miscConfig(spec health.MiscCheck, tm health.Timing, weight int) health.Config {
	return oneServer(health.RealServer{Addr: miscRS, Weight: weight, Checks: []health.Check{{Spec: spec, Timing: tm}}})
}

func TestMiscCheckExitCodes(t *testing.T) {
	s := newScriptDir(t)
	path, setCode := exitScript(s)
	setCode(0)
	tm := timing(5*time.Second, time.Second, 0) // MISC_CHECK's default retry is 0
	h := start(t, nil, miscConfig(health.MiscCheck{Script: health.Script{Args: []string{path, "arg1", "arg two"}}}, tm, 1), health.Options{})
	st := h.probe(miscRS, 0, time.Second)
	if !st.OK || st.Target != path+" arg1 arg two" {
		t.Fatalf("exit 0: %+v", st)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "args")); string(b) != "arg1 arg two\n" {
		t.Errorf("script got arguments %q", b)
	}
	for _, tc := range []struct {
		code int
		ok   bool
	}{{1, false}, {0, true}, {3, false}, {255, false}, {0, true}} {
		setCode(tc.code)
		st = h.probe(miscRS, 0, 5*time.Second)
		if st.OK != tc.ok {
			t.Fatalf("exit %d: %+v, want ok %v", tc.code, st, tc.ok)
		}
		if !tc.ok && !strings.Contains(st.Error, fmt.Sprintf("exit status %d", tc.code)) {
			t.Errorf("exit %d: error %q", tc.code, st.Error)
		}
		want := health.StateUp
		if !tc.ok {
			want = health.StateDown
		}
		if b := h.backend(miscRS); b.State != want {
			t.Errorf("exit %d: backend %s, want %s", tc.code, b.State, want)
		}
	}
}

// TestMiscDynamicWeights: with misc_dynamic, exit 2..255 passes and sets
// the weight to exit-2, exit 0 restores the configured weight, exit 1
// fails.
func TestMiscDynamicWeights(t *testing.T) {
	s := newScriptDir(t)
	path, setCode := exitScript(s)
	tm := timing(5*time.Second, time.Second, 0)
	h := start(t, nil, miscConfig(health.MiscCheck{Script: health.Script{Args: []string{path}}, Dynamic: true}, tm, 5), health.Options{})
	d := time.Second
	for _, tc := range []struct {
		code   int
		state  health.State
		weight int
	}{
		{12, health.StateUp, 10},
		{0, health.StateUp, 5},
		{2, health.StateUp, 0},
		{255, health.StateUp, 253},
		{1, health.StateDown, 0},
		{0, health.StateUp, 5},
	} {
		setCode(tc.code)
		h.probe(miscRS, 0, d)
		d = 5 * time.Second
		b := h.backend(miscRS)
		if b.State != tc.state || b.Weight != tc.weight {
			t.Errorf("exit %d: %s/%d, want %s/%d", tc.code, b.State, b.Weight, tc.state, tc.weight)
		}
	}
	if vs := h.m.Snapshot().VirtualServers[0]; vs.AliveWeight != 5 {
		t.Errorf("alive weight %d, want 5", vs.AliveWeight)
	}
}

// procAlive reports whether pid runs (zombies count as gone).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testnet.Eventually(t, 10*time.Second, "pid in "+path, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return pid
}

// TestMiscTimeout: misc_timeout sends the script's process group SIGTERM,
// and SIGKILL two seconds later if it is still there; the delay loop is
// timed from the start of the run.
func TestMiscTimeout(t *testing.T) {
	s := newScriptDir(t)
	mode := filepath.Join(s.dir, "mode")
	path := s.write("slow.sh", `
if [ "$(cat "`+mode+`")" = stubborn ]; then trap '' TERM; fi
sleep 600 &
echo $! > "`+s.dir+`/child"
echo $$ > "`+s.dir+`/pid"
wait`)
	os.WriteFile(mode, []byte("polite"), 0o644)
	tm := timing(10*time.Second, time.Second, 0)
	h := start(t, nil, miscConfig(health.MiscCheck{Script: health.Script{Args: []string{path}}, Timeout: 3 * time.Second}, tm, 1), health.Options{})

	h.clk.Advance(time.Second)
	pid, child := readPID(t, filepath.Join(s.dir, "pid")), readPID(t, filepath.Join(s.dir, "child"))
	h.waitPending(3 * time.Second)
	h.clk.Advance(3 * time.Second)
	st := h.waitProbes(miscRS, 0, 1)
	if st.OK || !strings.Contains(st.Error, "timed out after 3s") {
		t.Fatalf("slow script: %+v", st)
	}
	h.waitState(miscRS, health.StateDown, 0)
	for _, p := range []int{pid, child} {
		testnet.Eventually(t, 10*time.Second, fmt.Sprintf("pid %d gone", p), func() error {
			if procAlive(p) {
				return fmt.Errorf("still running")
			}
			return nil
		})
	}
	// keepalived schedules the next run a delay loop after the last
	// started: 10 s - 3 s.
	h.next(7 * time.Second)

	// A script that ignores SIGTERM gets SIGKILL two seconds later.
	os.Remove(filepath.Join(s.dir, "pid"))
	os.Remove(filepath.Join(s.dir, "child"))
	os.WriteFile(mode, []byte("stubborn"), 0o644)
	h.clk.Advance(7 * time.Second)
	pid, child = readPID(t, filepath.Join(s.dir, "pid")), readPID(t, filepath.Join(s.dir, "child"))
	h.waitPending(3 * time.Second)
	h.clk.Advance(3 * time.Second)
	h.waitPending(2 * time.Second) // SIGTERM sent, SIGKILL scheduled
	if !procAlive(pid) {
		t.Fatal("the stubborn script died of SIGTERM")
	}
	h.clk.Advance(2 * time.Second)
	st = h.waitProbes(miscRS, 0, 2)
	if st.OK || !strings.Contains(st.Error, "timed out") {
		t.Fatalf("stubborn script: %+v", st)
	}
	for _, p := range []int{pid, child} {
		testnet.Eventually(t, 10*time.Second, fmt.Sprintf("pid %d gone", p), func() error {
			if procAlive(p) {
				return fmt.Errorf("still running")
			}
			return nil
		})
	}
	h.next(5 * time.Second)
}

func TestMiscMissingProgram(t *testing.T) {
	tm := timing(5*time.Second, time.Second, 0)
	h := start(t, nil, miscConfig(health.MiscCheck{Script: health.Script{Args: []string{"/nonexistent/check"}}}, tm, 1), health.Options{})
	st := h.probe(miscRS, 0, time.Second)
	if st.OK || !strings.Contains(st.Error, "/nonexistent/check") {
		t.Fatalf("missing program: %+v", st)
	}
}
