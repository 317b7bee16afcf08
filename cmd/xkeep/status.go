package main

import (
	"context"
	"fmt"
	"io"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "xkeep status: not built yet")
	return 2
}
