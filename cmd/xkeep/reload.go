package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/xkeep/xkeep/internal/api"
)

// runReload is `xkeep reload`, the control-socket twin of SIGHUP that also
// reports whether the new configuration was taken.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xkeep reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", defaultSocket(), "control socket of the running daemon")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res, err := api.NewClient(*socket).Reload(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "xkeep reload: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if !res.OK {
		for _, e := range res.Errors {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintln(stderr, "xkeep reload: configuration rejected; the daemon keeps running the previous one")
		return 1
	}
	fmt.Fprintln(stdout, "configuration reloaded")
	return 0
}
