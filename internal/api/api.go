// Package api is the daemon's local control socket: JSON over HTTP on a
// unix socket that only root (and the daemon's own user) may use. `xkeep
// status` and `xkeep reload` are its clients.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/internal/status"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/xkeep/xkeep.sock"

// Backend is what the socket exposes.
type Backend interface {
	Snapshot(ctx context.Context) (status.Snapshot, error)
	// Reload re-reads the configuration; on any error the running one stays.
	Reload(ctx context.Context) ReloadResult
}

// ReloadResult tells whether a reload took effect, with every error and
// warning as file:line:col messages.
type ReloadResult struct {
	OK       bool     `json:"ok"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

type errorBody struct {
	Error string `json:"error"`
}

// Listen opens the control socket at path: its directory is created 0700,
// a stale socket left by a killed daemon is replaced, and the socket itself
// is 0600. It refuses to replace a socket another daemon still answers on.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another xkeep daemon is running (stop it, or pass a different --socket)", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Server serves the API on a listener.
type Server struct {
	backend Backend
	log     *slog.Logger
	srv     *http.Server
}

// NewServer returns a server for backend.
func NewServer(backend Backend, log *slog.Logger) *Server {
	s := &Server{backend: backend, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("POST /v1/reload", s.handleReload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{fmt.Sprintf("no such endpoint %s %s (want GET /v1/status, POST /v1/reload)", r.Method, r.URL.Path)})
	})
	s.srv = &http.Server{
		Handler:           peerCheck(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers requests on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutdownCtx)
	}()
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	snap, err := s.backend.Snapshot(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	res := s.backend.Reload(r.Context())
	code := http.StatusOK
	if !res.OK {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

type connKey struct{}

// peerCheck admits root and the daemon's own user only; the socket's mode
// already says so, this holds if someone loosens the mode by hand.
func peerCheck(next http.Handler) http.Handler {
	self := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uc, ok := r.Context().Value(connKey{}).(*net.UnixConn)
		if ok {
			if uid, err := peerUID(uc); err != nil || (uid != 0 && uid != self) {
				writeJSON(w, http.StatusForbidden, errorBody{"the control socket is for root only"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Client talks to a daemon's control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{socket: path, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// Status fetches the daemon's snapshot.
func (c *Client) Status(ctx context.Context) (status.Snapshot, error) {
	var snap status.Snapshot
	err := c.do(ctx, http.MethodGet, "/v1/status", &snap)
	return snap, err
}

// Reload asks the daemon to re-read its configuration. A rejected reload
// is a ReloadResult with OK false, not an error.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", &res)
	return res, err
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://xkeep"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("xkeep daemon at %s: %w (is `xkeep run` running?)", c.socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("xkeep daemon at %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity {
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			return fmt.Errorf("xkeep daemon: %s", eb.Error)
		}
		return fmt.Errorf("xkeep daemon: %s", resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("xkeep daemon sent a bad reply: %w", err)
	}
	return nil
}
