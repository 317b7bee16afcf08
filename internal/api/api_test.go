package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xkeep/xkeep/internal/status"
)

// recordingBackend stands in for the daemon: this test is about the socket
// and its JSON, the daemon's tests cover what the answers hold.
type recordingBackend struct {
	reloads int
	result  ReloadResult
}

func (b *recordingBackend) Snapshot(context.Context) (status.Snapshot, error) {
	return status.Snapshot{Dataplane: "xdp", Instances: []status.Instance{{Name: "VI_1", State: status.StateMaster}}}, nil
}

func (b *recordingBackend) Reload(context.Context) ReloadResult {
	b.reloads++
	return b.result
}

func serve(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "xkeep.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(b, slog.New(slog.NewTextHandler(io.Discard, nil))).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(path), path
}

func TestStatusAndReloadRoundTrip(t *testing.T) {
	b := &recordingBackend{result: ReloadResult{OK: false, Errors: []string{"a.conf:3:1: unknown keyword"}}}
	c, _ := serve(t, b)
	ctx := context.Background()

	snap, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Dataplane != "xdp" || len(snap.Instances) != 1 || snap.Instances[0].State != status.StateMaster {
		t.Fatalf("Status = %+v", snap)
	}
	res, err := c.Reload(ctx)
	if err != nil {
		t.Fatalf("a rejected reload is a result, not an error: %v", err)
	}
	if res.OK || len(res.Errors) != 1 || b.reloads != 1 {
		t.Fatalf("Reload = %+v after %d reloads", res, b.reloads)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	c, _ := serve(t, &recordingBackend{})
	err := c.do(context.Background(), http.MethodGet, "/v1/nothing", &struct{}{})
	if err == nil || !strings.Contains(err.Error(), "no such endpoint GET /v1/nothing") {
		t.Fatalf("unknown endpoint: %v", err)
	}
	err = c.do(context.Background(), http.MethodGet, "/v1/reload", &struct{}{})
	if err == nil || !strings.Contains(err.Error(), "no such endpoint GET /v1/reload (want GET /v1/status, POST /v1/reload)") {
		t.Fatalf("GET on reload: %v", err)
	}
}

func TestListenRefusesARunningDaemonsSocketAndReplacesAStaleOne(t *testing.T) {
	_, path := serve(t, &recordingBackend{})
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another xkeep daemon is running") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}

	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := Listen(stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close() // a killed daemon leaves its socket file behind
	ln, err = Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestClientSaysWhenNoDaemonRuns(t *testing.T) {
	_, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is `xkeep run` running?") {
		t.Fatalf("Status without daemon: %v", err)
	}
}
