package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/internal/health"
)

// GuardOptions start the crash guard (guard.go) beside the daemon.
type GuardOptions struct {
	// Command returns the guard process, not yet started: cmd/xkeep
	// re-executes its own binary as `xkeep guard`. The daemon sets its
	// stdin (the report pipe), puts it in a session of its own and hands
	// it the lock. nil runs no guard (tests, programs embedding the
	// daemon).
	Command func() *exec.Cmd
	// LockPath is the file a guard holds locked while it lives (beside
	// the control socket): a daemon started right after a killed one
	// waits for that one's guard to finish removing things before it adds
	// its own. Empty: no lock.
	LockPath string
}

// Bounds of the guard link. The daemon never waits longer than these
// for its guard: a guard that is stuck costs protection, not service.
const (
	// guardLockWait bounds the wait for a previous daemon's guard.
	guardLockWait = 5 * time.Second
	// guardWriteTimeout bounds one report; a guard that takes no report
	// for this long (stopped, wedged) is killed and started again.
	guardWriteTimeout = 2 * time.Second
	// guardSyncWait bounds how long the owner loop waits for the guard to
	// have an IPVS change reported before making it.
	guardSyncWait = time.Second
	// guardExitWait bounds the wait for the guard to exit after goodbye.
	guardExitWait = time.Second
	// Restarts of a guard that died back off from 1 s to 1 min.
	guardMinRestart = time.Second
	guardMaxRestart = time.Minute
)

// guardLink is the daemon's end: it keeps one guard process told of
// held, restarts it if it dies, and says goodbye at stop.
type guardLink struct {
	opts  GuardOptions
	log   *slog.Logger
	clock health.Clock
	held  *held
	lock  *os.File // nil without LockPath

	kick chan struct{} // held changed
	stop chan struct{} // say goodbye
	done chan struct{} // run returned

	mu    sync.Mutex
	proc  *guardProc    // the guard running and taking reports; nil if none
	sent  uint64        // held's sequence number it was last sent
	sentC chan struct{} // closed (and replaced) when proc or sent change
}

// guardProc is one guard process.
type guardProc struct {
	cmd    *exec.Cmd
	w      *os.File // the report pipe's write end
	exited chan error
}

// startGuard waits for a previous daemon's guard to finish (the lock),
// then starts this daemon's guard. It returns nil when opts start none
// or ctx ends first; a guard that fails to start is logged and retried
// in the background: the daemon runs regardless.
func startGuard(ctx context.Context, opts GuardOptions, h *held, log *slog.Logger, clock health.Clock) *guardLink {
	if opts.Command == nil {
		return nil
	}
	l := &guardLink{
		opts: opts, log: log, clock: clock, held: h,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		sentC: make(chan struct{}),
	}
	if opts.LockPath != "" {
		lock, err := l.takeLock(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("crash guard lock", "err", err)
		}
		l.lock = lock
	}
	h.mu.Lock()
	h.changed = l.changed
	h.mu.Unlock()
	p := l.spawn()
	go l.run(p)
	return l
}

// takeLock locks LockPath, waiting up to guardLockWait while another
// guard (a killed daemon's, cleaning up) holds it. After the wait it
// gives up on the lock, not on the file: the guard still gets it.
func (l *guardLink) takeLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(l.opts.LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (a new daemon will not wait for this one's guard)", l.opts.LockPath, err)
	}
	start := time.Now()
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if told {
				l.log.Info("the previous daemon's crash guard has finished", "waited", time.Since(start).Round(time.Millisecond))
			}
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return f, fmt.Errorf("lock %s: %w", l.opts.LockPath, err)
		}
		if time.Since(start) > guardLockWait {
			return f, fmt.Errorf("%s still locked after %v: the previous daemon's crash guard has not finished; starting anyway", l.opts.LockPath, guardLockWait)
		}
		if !told {
			told = true
			l.log.Info("waiting for the previous daemon's crash guard to finish removing what that daemon held", "lock", l.opts.LockPath)
		}
		// Only at startup, and only while a dead daemon's guard works.
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// spawn starts a guard process and queues the current state for it; nil
// when it could not start.
func (l *guardLink) spawn() *guardProc {
	cmd := l.opts.Command()
	r, w, err := os.Pipe()
	if err != nil {
		l.log.Error("crash guard: report pipe", "err", err)
		return nil
	}
	cmd.Stdin = r
	if l.lock != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, l.lock) // fd 3: held until the guard exits
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own session: a signal to the daemon's process group (Ctrl-C)
	// does not reach it.
	cmd.SysProcAttr.Setsid = true
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = nil
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") { // systemd hears the daemon only
			cmd.Env = append(cmd.Env, kv)
		}
	}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		l.log.Error("crash guard did not start: if this daemon is killed, its VIPs (and IPVS services) stay until the next start", "err", err)
		return nil
	}
	p := &guardProc{cmd: cmd, w: w, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	l.log.Debug("crash guard started", "pid", cmd.Process.Pid)
	l.setProc(p)
	l.changed()
	return p
}

// changed is held's hook: the state changed.
func (l *guardLink) changed() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *guardLink) setProc(p *guardProc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proc, l.sent = p, 0
	close(l.sentC)
	l.sentC = make(chan struct{})
}

func (l *guardLink) markSent(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = seq
	close(l.sentC)
	l.sentC = make(chan struct{})
}

// run owns the guard process: it writes reports, restarts a guard that
// died, and says goodbye when told to stop.
func (l *guardLink) run(p *guardProc) {
	defer close(l.done)
	backoff := guardMinRestart
	for {
		if p == nil {
			t, c := l.clock.NewTimer(backoff)
			select {
			case <-c:
			case <-l.stop:
				t.Stop()
				return
			}
			backoff = min(2*backoff, guardMaxRestart)
			p = l.spawn()
			continue
		}
		select {
		case <-l.kick:
			if err := l.report(p, guardMessage{}); err != nil {
				l.log.Error("crash guard takes no reports: killing it and starting another", "pid", p.cmd.Process.Pid, "err", err)
				l.setProc(nil)
				_ = p.cmd.Process.Kill()
				p.w.Close()
				<-p.exited
				p = nil
			}
		case err := <-p.exited:
			l.log.Error("crash guard exited while the daemon runs: starting another", "pid", p.cmd.Process.Pid, "err", err, "in", backoff)
			l.setProc(nil)
			p.w.Close()
			p = nil
		case <-l.stop:
			l.goodbye(p)
			return
		}
	}
}

// report writes the current state (with m's Goodbye) to the guard.
func (l *guardLink) report(p *guardProc, m guardMessage) error {
	var seq uint64
	m.guardState, seq = l.held.snapshot()
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_ = p.w.SetWriteDeadline(time.Now().Add(guardWriteTimeout))
	if _, err := p.w.Write(append(line, '\n')); err != nil {
		return err
	}
	l.markSent(seq)
	return nil
}

// goodbye tells the guard the daemon stopped cleanly (after it removed
// what it held), closes the pipe and waits for the guard to exit.
func (l *guardLink) goodbye(p *guardProc) {
	l.setProc(nil)
	err := l.report(p, guardMessage{Goodbye: true})
	p.w.Close()
	if err != nil {
		l.log.Warn("crash guard: goodbye not delivered; it removes what is left of the last report", "err", err)
	}
	t := time.NewTimer(guardExitWait)
	defer t.Stop()
	select {
	case err := <-p.exited:
		if err != nil {
			l.log.Warn("crash guard exit", "err", err)
		}
	case <-t.C:
		l.log.Warn("crash guard still running after goodbye", "pid", p.cmd.Process.Pid, "waited", guardExitWait)
	}
}

// sync waits (up to guardSyncWait) until the guard has been sent held's
// state seq, so that what the daemon is about to add is known to the
// guard before it exists. It returns at once when no guard runs.
func (l *guardLink) sync(seq uint64) {
	if l == nil {
		return
	}
	t := time.NewTimer(guardSyncWait)
	defer t.Stop()
	for {
		l.mu.Lock()
		ok, c := l.proc == nil || l.sent >= seq, l.sentC
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c:
		case <-t.C:
			l.log.Warn("crash guard slow to take a report; going on", "waited", guardSyncWait)
			return
		}
	}
}

// close says goodbye (the daemon has removed what it held) and releases
// the lock once the guard has exited.
func (l *guardLink) close() {
	if l == nil {
		return
	}
	l.held.mu.Lock()
	l.held.changed = nil
	l.held.mu.Unlock()
	close(l.stop)
	<-l.done
	if l.lock != nil {
		l.lock.Close()
	}
}
