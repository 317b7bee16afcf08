package ipvs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/moby/ipvs"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/testnet"
)

// vmEnv is set by test/vm inside its VM, whose kernel has IPVS: there a
// missing IPVS is a failure, not a reason to skip.
const vmEnv = "XKEEP_VM"

// requireIPVS skips when this kernel has no IPVS (this machine's kernel
// has none; test/vm runs these tests on Debian's 6.1 kernel), and fails
// when it is missing inside the VM.
func requireIPVS(t testing.TB) {
	t.Helper()
	testnet.RequireRoot(t)
	err := probe()
	if err == nil {
		return
	}
	if os.Getenv(vmEnv) != "" {
		t.Fatalf("IPVS is missing inside the test VM (%s is set): %v", vmEnv, err)
	}
	t.Skipf("skipped: this kernel has no IPVS, these tests run inside the 6.1 VM (make test-vm): %v", err)
}

// opLog records the dataplane's log lines: one per kernel change.
type opLog struct {
	mu    sync.Mutex
	lines []string
	t     testing.TB
}

func (l *opLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *opLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Message)
	l.t.Log(r.Message)
	return nil
}
func (l *opLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *opLog) WithGroup(string) slog.Handler      { return l }

// take returns the lines logged since the last take.
func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// fixture is a Dataplane driving IPVS in a fresh namespace, and a raw
// moby/ipvs handle on the same namespace for looking at the kernel.
type fixture struct {
	dp  *Dataplane
	raw *ipvs.Handle
	ns  *testnet.Namespace
	log *opLog
}

func newFixture(t testing.TB, ns *testnet.Namespace) *fixture {
	t.Helper()
	requireIPVS(t)
	if ns == nil {
		ns = testnet.NewNamespace(t, "lb")
	}
	log := &opLog{t: t}
	dp, err := New(Config{Logger: slog.New(log), Netns: ns.Path()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	raw, err := ipvs.New(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	return &fixture{dp: dp, raw: raw, ns: ns, log: log}
}

// kernel renders the namespace's IPVS table like `ipvsadm -Ln`, sorted, so
// tests compare it as text.
func (f *fixture) kernel(t *testing.T) string {
	t.Helper()
	svcs, err := f.raw.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	m := map[svcID]kService{}
	for _, s := range svcs {
		ks, ok := fromIPVS(s)
		if !ok {
			t.Fatalf("kernel service %+v not representable", s)
		}
		dests, err := f.raw.GetDestinations(s)
		if err != nil {
			t.Fatal(err)
		}
		ks.dests = map[dataplane.BackendKey]kDest{}
		for _, d := range dests {
			k, ok := destKey(d)
			if !ok {
				t.Fatalf("destination %+v not representable", d)
			}
			ks.dests[k] = kDest{weight: d.Weight, fwd: d.ConnectionFlags & ipvs.ConnFwdMask}
		}
		m[ks.id] = ks
	}
	var b bytes.Buffer
	for _, id := range sortedIDs(m) {
		ks := m[id]
		b.WriteString(id.String() + " " + ks.attrs() + "\n")
		for _, k := range sortedDests(ks.dests) {
			b.WriteString("  -> " + k.String() + " " + ks.dests[k].String() + "\n")
		}
	}
	return b.String()
}

func wantKernel(t *testing.T, f *fixture, want string) {
	t.Helper()
	want = strings.TrimLeft(want, "\n")
	if got := f.kernel(t); got != want {
		t.Fatalf("kernel IPVS table:\n%s\nwant:\n%s", got, want)
	}
}

func TestNewReportsMissingIPVS(t *testing.T) {
	testnet.RequireRoot(t)
	dp, err := New(Config{})
	if probe() == nil {
		// This kernel has IPVS (the VM): New works.
		if err != nil {
			t.Fatalf("IPVS present, yet New: %v", err)
		}
		if err := dp.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if os.Getenv(vmEnv) != "" {
		t.Fatalf("IPVS is missing inside the test VM: %v", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New without IPVS: error %v, want one wrapping ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "--dataplane=xdp") {
		t.Fatalf("error %q does not point at --dataplane=xdp", err)
	}
	t.Logf("as expected on this kernel: %v", err)
}
