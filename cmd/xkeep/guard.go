package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/xkeep/xkeep/internal/daemon"
)

// runGuard is `xkeep guard`, the crash guard `xkeep run` starts beside
// itself (internal/daemon/guard.go); it is left out of the usage, as
// nobody else runs it. It reads the daemon's reports on stdin until the
// daemon says goodbye, or dies: then it removes the VIPs and IPVS
// services the daemon held, logs that, and exits.
func runGuard(_ context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep guard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "xkeep guard: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	log, err := newLogger(*logFormat, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "xkeep guard: --log-format: %v\n", err)
		return 2
	}
	// Only the pipe ends the guard. Signals meant for the daemon (Ctrl-C
	// to its process group, systemd's SIGTERM to the unit's cgroup) must
	// not, nor a log reader gone before the cleanup (SIGPIPE).
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	log = log.With("part", "guard", "daemon_pid", os.Getppid())
	if err := daemon.RunGuard(os.Stdin, daemon.NewGuardCleaner(log), log); err != nil {
		return 1
	}
	return 0
}

// guardOptions start `xkeep guard` from this very binary (/proc/self/exe
// still names it after a package upgrade replaced the file), logging
// like the daemon to the same place, with its lock beside the control
// socket.
func guardOptions(socket, logFormat, logLevel string, stderr io.Writer) daemon.GuardOptions {
	return daemon.GuardOptions{
		Command: func() *exec.Cmd {
			exe := "/proc/self/exe"
			if _, err := os.Stat(exe); err != nil {
				if exe, err = os.Executable(); err != nil {
					exe = os.Args[0]
				}
			}
			cmd := exec.Command(exe, "guard", "--log-format", logFormat, "--log-level", logLevel)
			cmd.Args[0] = os.Args[0]
			cmd.Stderr = stderr
			return cmd
		},
		LockPath: strings.TrimSuffix(socket, ".sock") + ".guard.lock",
	}
}
