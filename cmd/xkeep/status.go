package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/xkeep/xkeep/internal/api"
	"github.com/xkeep/xkeep/internal/status"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", defaultSocket(), "control socket of the running daemon")
	asJSON := fs.Bool("json", false, "print the snapshot as JSON")
	watch := fs.Bool("watch", false, "refresh until interrupted")
	every := fs.Duration("interval", 2*time.Second, "refresh interval with --watch")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *every <= 0 {
		fmt.Fprintf(stderr, "xkeep status: --interval %v must be positive\n", *every)
		return 2
	}
	client := api.NewClient(*socket)
	show := func() error {
		snap, err := client.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(snap)
		}
		return status.Render(stdout, snap)
	}
	if !*watch {
		if err := show(); err != nil {
			fmt.Fprintf(stderr, "xkeep status: %v\n", err)
			return 1
		}
		return 0
	}
	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	for {
		if !*asJSON {
			fmt.Fprint(stdout, "\033[H\033[2J") // home and clear, like watch(1)
		}
		if err := show(); err != nil {
			fmt.Fprintf(stderr, "xkeep status: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
		}
	}
}
