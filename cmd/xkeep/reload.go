package main

import (
	"context"
	"fmt"
	"io"
)

func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "xkeep reload: not built yet")
	return 2
}
