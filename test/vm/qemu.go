package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// vmConfig is how qemu boots the VM.
type vmConfig struct {
	Qemu    string
	Accel   string // tcg (KVM hung on this machine's CI)
	CPUs    int
	MemMB   int
	Kernel  string
	Initrd  string
	Console string // file receiving ttyS0 (kernel messages)
	Timeout time.Duration
}

// pkgResult is what the VM reported for one test binary.
type pkgResult struct {
	Name     string
	Pkg      string
	Status   int // exit status; -1 when the binary never finished
	Duration time.Duration
	Output   []string
}

// vmReport is everything the host learnt from a VM run.
type vmReport struct {
	Booted        bool
	BootHost      time.Duration // qemu start to the init's first line
	BootGuest     string        // guest uptime at that line
	Release       string
	ModulesFailed bool
	Done          bool
	TimedOut      bool
	Results       []*pkgResult
	Wall          time.Duration
}

// runVM boots qemu, streams the results console to out (each line
// prefixed) and returns what the init script reported. qemu is killed when
// ctx ends or the timeout passes.
func runVM(ctx context.Context, cfg vmConfig, out io.Writer) (*vmReport, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	args := []string{
		"-accel", cfg.Accel,
		"-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemMB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", cfg.Kernel,
		"-initrd", cfg.Initrd,
		// panic=-1 reboots at once on a panic, and -no-reboot turns that
		// into qemu exiting: a broken init never waits for the timeout.
		"-append", "console=ttyS0 rdinit=/init panic=-1 oops=panic quiet loglevel=4 mitigations=off",
		"-chardev", "file,id=console,path=" + cfg.Console,
		"-serial", "chardev:console",
		"-chardev", "stdio,id=results,signal=off",
		"-serial", "chardev:results",
	}
	cmd := exec.CommandContext(ctx, cfg.Qemu, args...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	// qemu dies with this process even if it is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Qemu, err)
	}

	rep := readResults(stdout, out, start)
	werr := cmd.Wait()
	rep.Wall = time.Since(start)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		rep.TimedOut = true
	}
	if ctx.Err() == nil && werr != nil && !rep.Done {
		return rep, fmt.Errorf("qemu: %w", werr)
	}
	return rep, nil
}

// readResults reads the results console until it closes: test output is
// copied to out (prefixed), markers fill the report. start is when qemu
// started, for the boot time.
func readResults(r io.Reader, out io.Writer, start time.Time) *vmReport {
	rep := &vmReport{}
	var cur *pkgResult
	var curStart time.Time
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			break
		}
		line = strings.TrimRight(line, "\r\n")
		// A marker can follow output that did not end its line.
		i := strings.Index(line, markerPrefix)
		if i != 0 {
			text := line
			if i > 0 {
				text = line[:i]
			}
			fmt.Fprintf(out, "  vm| %s\n", text)
			if cur != nil {
				cur.Output = append(cur.Output, text)
			}
			if i < 0 {
				continue
			}
		}
		f := strings.Fields(line[i+len(markerPrefix):])
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case markBooted:
			rep.Booted = true
			rep.BootHost = time.Since(start)
			if len(f) > 1 {
				rep.BootGuest = f[1]
			}
			if len(f) > 2 {
				rep.Release = f[2]
			}
			fmt.Fprintf(out, "vm: booted %s in %.1fs (guest uptime %ss)\n", rep.Release, rep.BootHost.Seconds(), rep.BootGuest)
		case markModules:
			if len(f) > 1 && f[1] != "ok" {
				rep.ModulesFailed = true
				fmt.Fprintf(out, "vm: loading kernel modules FAILED (see the modprobe lines above)\n")
			}
		case markRun:
			cur = &pkgResult{Status: -1}
			if len(f) > 1 {
				cur.Name = f[1]
			}
			if len(f) > 2 {
				cur.Pkg = f[2]
			}
			curStart = time.Now()
			rep.Results = append(rep.Results, cur)
			fmt.Fprintf(out, "vm: running %s\n", runLabel(cur.Name, cur.Pkg))
		case markResult:
			if cur == nil || len(f) < 3 {
				continue
			}
			cur.Status, _ = strconv.Atoi(f[2])
			cur.Duration = time.Since(curStart)
			fmt.Fprintf(out, "vm: %s %s (%.1fs)\n", statusWord(cur.Status), runLabel(cur.Name, cur.Pkg), cur.Duration.Seconds())
			cur = nil
		case markDone:
			rep.Done = true
		}
	}
	return rep
}

// runLabel names a run in the report: the package, and the round when a
// binary runs several times (ID name#round).
func runLabel(id, pkg string) string {
	if _, round, ok := strings.Cut(id, "#"); ok {
		return pkg + " (round " + round + ")"
	}
	return pkg
}

func statusWord(status int) string {
	switch status {
	case 0:
		return "ok  "
	case -1:
		return "DID NOT FINISH"
	}
	return "FAIL"
}

// tailFile returns the last n lines of a file, for showing the kernel
// console when the VM failed.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
