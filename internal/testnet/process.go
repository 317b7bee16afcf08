package testnet

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
)

// Process is a long-running process started inside a namespace with
// StartProcess.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts cmd inside the namespace and keeps it running until
// it exits or the test ends (then it is killed). The thread that forks the
// child stays alive while the child runs: the child's parent-death signal
// (SIGKILL, so it dies with a killed test binary) is tied to that thread,
// and a thread thrown away after the fork would fire it at once.
func (ns *Namespace) StartProcess(t testing.TB, cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with the goroutine, after the
		// child is gone.
		defer close(p.done)
		if err := netns.Set(ns.handle); err != nil {
			started <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s in %s: %w", cmd.Path, ns.Name, err)
			return
		}
		started <- nil
		p.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-p.done
		return nil, err
	}
	t.Cleanup(func() {
		if p.Running() {
			_ = cmd.Process.Kill()
		}
		<-p.done
	})
	return p, nil
}

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits for the process to exit and returns its Wait error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}
