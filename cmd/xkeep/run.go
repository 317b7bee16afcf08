package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/dataplane/xdp"
	"github.com/xkeep/xkeep/internal/api"
	"github.com/xkeep/xkeep/internal/daemon"
	"github.com/xkeep/xkeep/internal/metrics"
	"github.com/xkeep/xkeep/internal/sdnotify"
	"github.com/xkeep/xkeep/internal/status"
)

// Defaults of `xkeep run`. In a named network namespace (ip netns exec
// NAME xkeep run), the socket and pin directory get the namespace's name
// (xkeep@NAME.sock, xkeep@NAME), as keepalived names its pid files, so
// one daemon per namespace can run on a host and `ip netns exec NAME
// xkeep status` finds its own.
const (
	defaultSocketDir     = "/run/xkeep"
	defaultPinBase       = "/sys/fs/bpf"
	defaultMetricsListen = "127.0.0.1:9650"
)

// runRun runs the configuration until SIGINT or SIGTERM (then masters send
// priority 0 and release their addresses, the dataplane detaches and
// notify_stop runs, within 2 s); SIGHUP or `xkeep reload` reloads it.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	const defaultConf = "/etc/keepalived/keepalived.conf"
	var file string
	fs.StringVar(&file, "f", defaultConf, "keepalived.conf to run")
	fs.StringVar(&file, "use-file", defaultConf, "same as -f")
	configID := fs.String("config-id", defaultConfigID(), "match @ID lines of the configuration (keepalived's -i)")
	dataplaneKind := fs.String("dataplane", daemon.DataplaneXDP, "packet forwarder: xdp or ipvs")
	metricsListen := fs.String("metrics-listen", defaultMetricsListen, "address to serve Prometheus /metrics on; empty disables")
	socket := fs.String("socket", defaultSocket(), "control socket for xkeep status and xkeep reload (xkeep@NETNS.sock in a named network namespace)")
	pinDir := fs.String("pin-dir", defaultPinDir(), "bpffs directory for the XDP dataplane's pinned maps and links, adopted by the next run (xkeep@NETNS in a named network namespace; bpffs is mounted at /sys/fs/bpf if nothing is)")
	xdpMode := fs.String("xdp-mode", string(xdp.ModeAuto), "XDP attach mode: auto, native or generic")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	allowInsecure := fs.Bool("allow-insecure-scripts", false, "run notify, track and check scripts even when anyone can change them (refused by default; enable_script_security also refuses those other non-root users can change)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xkeep run: unexpected argument %q (the configuration file goes after -f)\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "xkeep run: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	if *dataplaneKind != daemon.DataplaneXDP && *dataplaneKind != daemon.DataplaneIPVS {
		fmt.Fprintf(stderr, "xkeep run: --dataplane %q: want xdp or ipvs\n", *dataplaneKind)
		return 2
	}
	mode, err := xdp.ParseMode(*xdpMode)
	if err != nil {
		fmt.Fprintf(stderr, "xkeep run: --xdp-mode: %v\n", err)
		return 2
	}
	log, err := newLogger(*logFormat, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "xkeep run: --log-format: %v\n", err)
		return 2
	}

	// The control socket first: it refuses to start a second daemon
	// before that one could touch the first one's pinned XDP state.
	// Listeners open before READY, so a unit that is up answers.
	ln, err := api.Listen(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "xkeep run: %v\n", err)
		return 1
	}
	defer ln.Close()
	var mln net.Listener
	if *metricsListen != "" {
		if mln, err = net.Listen("tcp", *metricsListen); err != nil {
			fmt.Fprintf(stderr, "xkeep run: metrics listener: %v (pass --metrics-listen ADDR, or \"\" to disable)\n", err)
			return 1
		}
		defer mln.Close()
	}

	// A failure from here to Run leaves the dataplane as a previous run
	// left it (a killed daemon's pinned XDP program keeps forwarding).
	d, err := daemon.New(daemon.Options{
		ConfigPath: file,
		Load:       config.LoadOptions{ConfigID: *configID, Dataplane: config.Dataplane(*dataplaneKind)},
		Logger:     log,
		Dataplane:  daemon.DataplaneOptions{Kind: *dataplaneKind, PinDir: *pinDir, XDPMode: mode},

		AllowInsecureScripts: *allowInsecure,
		Guard:                guardOptions(*socket, *logFormat, *logLevel, stderr),
	})
	if err != nil {
		for _, line := range daemon.ConfigErrors(err) {
			fmt.Fprintf(stderr, "xkeep run: %s\n", line)
		}
		return 1
	}

	ctl := &controller{d: d, log: log}
	srvCtx, stopServers := context.WithCancel(context.WithoutCancel(ctx))
	servers := make(chan error, 2)
	go func() { servers <- api.NewServer(ctl, log.With("part", "api")).Serve(srvCtx, ln) }()
	nServers := 1
	if mln != nil {
		h, err := metrics.Handler(metrics.NewCollector(d, log.With("part", "metrics")))
		if err != nil {
			fmt.Fprintf(stderr, "xkeep run: metrics: %v\n", err)
			stopServers()
			<-servers
			return 1
		}
		nServers++
		go func() { servers <- serveMetrics(srvCtx, mln, h, log) }()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGXCPU: the realtime VRRP thread used half its vrrp_rlimit_rttime
	// without blocking (Go would otherwise ignore the warning).
	xcpu := make(chan os.Signal, 1)
	signal.Notify(xcpu, syscall.SIGXCPU)
	defer signal.Stop(xcpu)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				ctl.reload(ctx)
			case <-xcpu:
				log.Warn("the realtime VRRP thread ran half its vrrp_rlimit_rttime without blocking; at all of it the kernel kills xkeep")
			}
		}
	}()
	go func() {
		<-ctx.Done()
		notify(log, sdnotify.Stopping)
	}()

	notify(log, sdnotify.Ready)
	runErr := d.Run(ctx)
	stopServers()
	for range nServers {
		if err := <-servers; err != nil {
			log.Error("server", "err", err)
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "xkeep run: %v\n", runErr)
		return 1
	}
	return 0
}

// controller is the control socket's view of the daemon.
type controller struct {
	d   *daemon.Daemon
	log *slog.Logger
}

func (c *controller) Snapshot(ctx context.Context) (status.Snapshot, error) {
	return c.d.Snapshot(ctx)
}

func (c *controller) Reload(ctx context.Context) api.ReloadResult {
	return c.reload(ctx)
}

// reload serves SIGHUP and `xkeep reload` alike, telling systemd.
func (c *controller) reload(ctx context.Context) api.ReloadResult {
	notify(c.log, sdnotify.Reloading, "MONOTONIC_USEC="+strconv.FormatInt(monotonicMicros(), 10))
	defer notify(c.log, sdnotify.Ready)
	warns, err := c.d.Reload(ctx)
	return api.ReloadResult{OK: err == nil, Errors: daemon.ConfigErrors(err), Warnings: warns}
}

func notify(log *slog.Logger, states ...string) {
	msg := ""
	for i, s := range states {
		if i > 0 {
			msg += "\n"
		}
		msg += s
	}
	if _, err := sdnotify.Notify(msg); err != nil {
		log.Warn("systemd notification", "err", err)
	}
}

// monotonicMicros is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicMicros() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func serveMetrics(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "xkeep: metrics at /metrics\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func newLogger(format string, level slog.Level, w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%q: want text or json", format)
}

// defaultSocket is /run/xkeep/xkeep.sock, or xkeep@NETNS.sock in a named
// network namespace.
func defaultSocket() string {
	return filepath.Join(defaultSocketDir, "xkeep"+netnsSuffix()+".sock")
}

// defaultPinDir is /sys/fs/bpf/xkeep, or xkeep@NETNS in a named network
// namespace.
func defaultPinDir() string {
	return filepath.Join(defaultPinBase, "xkeep"+netnsSuffix())
}

// netnsSuffix is "@NAME" when the process runs in a network namespace
// named in /var/run/netns (ip netns exec NAME ...), else "" (the host's
// namespace, or a container's own).
func netnsSuffix() string {
	var self unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &self) != nil {
		return ""
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/var/run/netns", e.Name()), &st) == nil && st.Dev == self.Dev && st.Ino == self.Ino {
			return "@" + e.Name()
		}
	}
	return ""
}
