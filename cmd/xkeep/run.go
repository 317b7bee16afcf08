package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/internal/daemon"
)

// runRun runs the configuration's VRRP instances until SIGINT or SIGTERM
// (then masters send priority 0, release their addresses and notify_stop
// runs, within 2 s); SIGHUP reloads the configuration.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	const defaultConf = "/etc/keepalived/keepalived.conf"
	var file string
	fs.StringVar(&file, "f", defaultConf, "keepalived.conf to run")
	fs.StringVar(&file, "use-file", defaultConf, "same as -f")
	configID := fs.String("config-id", defaultConfigID(), "match @ID lines of the configuration (keepalived's -i)")
	dataplane := fs.String("dataplane", "xdp", "packet forwarder: xdp or ipvs")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "xkeep run: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	if *dataplane != "xdp" && *dataplane != "ipvs" {
		fmt.Fprintf(stderr, "xkeep run: --dataplane %q: want xdp or ipvs\n", *dataplane)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(daemon.Options{
		ConfigPath: file,
		Load:       config.LoadOptions{ConfigID: *configID, Dataplane: config.Dataplane(*dataplane)},
		Logger:     log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "xkeep run: %v\n", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := d.Reload(ctx); err != nil {
				log.Error("reload", "err", err)
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "xkeep run: %v\n", err)
		return 1
	}
	return 0
}
