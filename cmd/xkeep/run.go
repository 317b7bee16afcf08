package main

import (
	"context"
	"fmt"
	"io"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "xkeep run: not built yet")
	return 2
}
