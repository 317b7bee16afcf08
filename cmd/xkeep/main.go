// Command xkeep is a keepalived replacement: VRRP failover of virtual IPs
// and an XDP (or IPVS) direct-routing load balancer, configured with
// keepalived.conf files.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and returns
// the process exit status.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"check":  {"validate a keepalived.conf and summarise it (like keepalived -t)", runCheck},
		"run":    {"run VRRP instances, health checks and the dataplane", runRun},
		"status": {"show instances, services and backends of a running daemon", runStatus},
		"reload": {"make a running daemon re-read its configuration", runReload},
		// Hidden: `xkeep run` starts it (guard.go).
		"guard": {"remove what a killed daemon left (started by xkeep run)", runGuard},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		return 2
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "xkeep: unknown command %q (want check, run, status, reload)\n", args[0])
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: xkeep <command> [flags]")
	fmt.Fprintln(w)
	for _, name := range []string{"check", "run", "status", "reload"} {
		fmt.Fprintf(w, "  %-7s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintln(w, "\nrun 'xkeep <command> -h' for its flags")
}
