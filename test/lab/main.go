// Command lab is xkeep's demo (`make demo`): the seed's two-node
// keepalived + LVS direct-routing setup (/work/shared/seed), run on xkeep
// in network namespaces on this machine, told as a live timeline.
//
// A client and two load balancers, lb1 and lb2, share one bridge; the
// load balancers are also the two real servers, each with a web server
// that names it. lb1 (MASTER, priority 100, a vrrp_script with weight -20
// checking its web server) and lb2 (BACKUP, 90) run `xkeep run` with
// configurations in the seed's shape: rr, DR, persistence_timeout 50,
// TCP_CHECK. The client sends requests over new connections from four
// source addresses while the lab stops lb1's web server (lb2 takes the
// VIP), starts it again (lb1 preempts) and kills lb1's xkeep (lb2 takes
// over), then prints the per-real-server counters from /metrics and
// stops lb2 gracefully.
//
// It ends by itself within three minutes and exits 0 only when every
// step happened as it should; otherwise it names the step that failed,
// shows the end of the daemons' logs and exits 1. Everything it creates
// (namespaces, processes, bpf pins, files) is removed at the end, also
// on failure and on Ctrl-C.
//
// Usage, as root from the repository root (`make demo` builds xkeep and
// uses sudo):
//
//	go run ./test/lab [-xkeep bin/xkeep] [-seed-timers]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/test/lab/rig"
)

// Exit statuses.
const (
	exitOK          = 0
	exitStepFailed  = 1
	exitSetupFailed = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run())
}

func run() int {
	bin := flag.String("xkeep", "", "xkeep binary to run (default: $"+rig.BinEnv+", else build one from this checkout)")
	seedTimers := flag.Bool("seed-timers", false, "use the seed's health-check timers (delay_loop 6, connect_timeout 3, retry 3, delay_before_retry 3): slower")
	dataplane := flag.String("dataplane", "xdp", "xkeep's dataplane: xdp, or ipvs where the kernel has IPVS")
	limit := flag.Duration("timeout", 170*time.Second, "give up on the story after this long")
	flag.Parse()

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab: needs root for network namespaces and BPF: run `make demo` (it uses sudo)")
		return exitSetupFailed
	}
	// Interrupts end the story and go on to the cleanup; more of them
	// while it cleans up are ignored, so nothing is left behind.
	sigctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(sigctx, *limit)
	defer cancel()

	scope := testnet.NewScope("lab", os.Stderr)
	defer scope.Close()
	if *bin == "" {
		fmt.Println("lab: building xkeep")
		var err error
		*bin, err = rig.BuildXkeep(scope.TempDir())
		if err != nil {
			fmt.Fprintf(os.Stderr, "lab: %v\n", err)
			return exitSetupFailed
		}
	} else if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "lab: -xkeep %s: %v (run `make build` first)\n", *bin, err)
		return exitSetupFailed
	}

	fmt.Println("xkeep demo: the seed's two-node keepalived + LVS (DR) setup, on xkeep, in network namespaces")
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		var storyErr error
		setupErr := scope.Run(func() {
			storyErr = story(ctx, scope, options{bin: *bin, out: os.Stdout, seedTimers: *seedTimers, dataplane: *dataplane})
		})
		done <- errors.Join(setupErr, storyErr)
	}()
	var err error
	interrupted := false
	select {
	case err = <-done:
	case <-sigctx.Done():
		interrupted = true
		fmt.Println("\nlab: interrupted")
		// The story's waits end with ctx; give it a moment to unwind.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	fmt.Println("lab: cleaning up: processes, namespaces, bpf pins, files")
	scope.Close()
	leaked := scope.Failed() && !interrupted && err == nil

	switch {
	case interrupted:
		fmt.Println("lab: interrupted; everything it created is removed")
		return exitInterrupted
	case err != nil:
		var se *stepError
		fmt.Printf("lab: FAIL after %.1fs: %v\n", time.Since(start).Seconds(), err)
		if errors.As(err, &se) {
			return exitStepFailed
		}
		return exitSetupFailed
	case leaked:
		fmt.Println("lab: FAIL: the cleanup left something behind (see above)")
		return exitStepFailed
	}
	fmt.Printf("lab: PASS: every step happened as it should, in %.1fs; nothing left behind\n", time.Since(start).Seconds())
	return exitOK
}
