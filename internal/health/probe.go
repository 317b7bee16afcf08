package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// deps are the edges every prober talks through.
type deps struct {
	clock   Clock
	dialer  Dialer
	scripts ScriptRunner
	random  func(n int64) int64
}

// prober runs one probe of a checker. Probes of one checker never overlap;
// probes of different checkers run concurrently.
type prober interface {
	// probe checks once; url selects the URL of an HTTP checker.
	probe(ctx context.Context, url int) outcome
}

// decider is told what the policy concluded from a probe (MISC_CHECK
// remembers the exit code that failed the server).
type decider interface {
	decided(o outcome, d decision)
}

// outcome is one probe's result.
type outcome struct {
	ok  bool
	err error
	// setWeight carries a new effective weight (misc_dynamic).
	setWeight bool
	weight    int
	// exitCode is MISC_CHECK's exit status (-1: killed or not run).
	exitCode int
}

func passed() outcome                    { return outcome{ok: true, exitCode: -1} }
func failed(err error) outcome           { return outcome{err: err, exitCode: -1} }
func failedf(f string, a ...any) outcome { return failed(fmt.Errorf(f, a...)) }

var errStepTimeout = errors.New("step timed out")

// step bounds each stage of a probe (connect, send, each read) by the
// checker's connect_timeout on the injected clock, as keepalived re-arms
// its timeout for every I/O event. When the timer fires, the probe's
// context is canceled and its connection's deadline moved to the past.
type step struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  Timer
	d      time.Duration
	phase  string
}

func startStep(parent context.Context, clock Clock, d time.Duration, phase string) *step {
	ctx, cancel := context.WithCancelCause(parent)
	s := &step{ctx: ctx, cancel: cancel, d: d, phase: phase}
	s.timer = clock.AfterFunc(d, func() { cancel(errStepTimeout) })
	return s
}

// next starts the following stage with a fresh timeout.
func (s *step) next(phase string) {
	s.phase = phase
	s.timer.Reset(s.d)
}

func (s *step) stop() {
	s.timer.Stop()
	s.cancel(nil)
}

// bind makes the step's cancellation interrupt blocked I/O on c.
func (s *step) bind(c net.Conn) (unbind func() bool) {
	return context.AfterFunc(s.ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}

// timedOut reports whether the step's timer fired.
func (s *step) timedOut() bool { return errors.Is(context.Cause(s.ctx), errStepTimeout) }

// fail describes err in terms of the current stage.
func (s *step) fail(err error) error {
	if s.timedOut() {
		return fmt.Errorf("timeout %s", s.phase)
	}
	return fmt.Errorf("%s: %w", s.phase, err)
}

// tcpProber is TCP_CHECK: the connection opens.
type tcpProber struct {
	d       *deps
	ep      Endpoint
	timeout time.Duration
}

func (TCPCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	return &tcpProber{d: d, ep: c.Connect.endpoint(rs.Addr), timeout: c.Timing.ConnectTimeout},
		newRetryPolicy(c.Timing, c.Alpha, true)
}

func (p *tcpProber) probe(ctx context.Context, _ int) outcome {
	s := startStep(ctx, p.d.clock, p.timeout, "connecting to "+p.ep.Remote.String())
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "tcp", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	_ = conn.Close()
	return passed()
}

// supervised is how a supervised program ended.
type supervised struct {
	exit     Exit
	err      error
	timedOut bool // the timeout sent SIGTERM
}

// killGrace is how long a timed-out program has between SIGTERM and
// SIGKILL (keepalived: 2 s).
const killGrace = 2 * time.Second

// supervise waits for proc. When timeout passes on the clock it sends the
// process group SIGTERM, then SIGKILL killGrace later; canceling ctx kills
// at once. A group that timed out is killed after the program exits, so
// nothing it forked outlives it.
func supervise(ctx context.Context, clock Clock, proc Process, timeout time.Duration) supervised {
	type waited struct {
		exit Exit
		err  error
	}
	waitc := make(chan waited, 1)
	go func() {
		e, err := proc.Wait()
		waitc <- waited{e, err}
	}()
	var (
		mu       sync.Mutex
		termSent bool
		killT    Timer
	)
	termT := clock.AfterFunc(timeout, func() {
		mu.Lock()
		defer mu.Unlock()
		termSent = true
		_ = proc.Signal(syscall.SIGTERM)
		killT = clock.AfterFunc(killGrace, func() { _ = proc.Signal(syscall.SIGKILL) })
	})
	var w waited
	select {
	case w = <-waitc:
	case <-ctx.Done():
		_ = proc.Signal(syscall.SIGKILL)
		w = <-waitc
	}
	termT.Stop()
	mu.Lock()
	if killT != nil {
		killT.Stop()
	}
	timedOut := termSent
	mu.Unlock()
	if timedOut {
		_ = proc.Signal(syscall.SIGKILL)
	}
	return supervised{exit: w.exit, err: w.err, timedOut: timedOut}
}

// miscProber is MISC_CHECK.
type miscProber struct {
	d        *deps
	spec     MiscCheck
	timeout  time.Duration
	iweight  int
	lastExit int
}

func (m MiscCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	timeout := m.Timeout
	if timeout == 0 {
		timeout = c.Timing.DelayLoop
	}
	return &miscProber{d: d, spec: m, timeout: timeout, iweight: rs.Weight},
		newRetryPolicy(c.Timing, c.Alpha, false)
}

func (p *miscProber) probe(ctx context.Context, _ int) outcome {
	proc, err := p.d.scripts.Start(p.spec.Script)
	if err != nil {
		return failedf("run %s: %w", p.spec.Script.Args[0], err)
	}
	r := supervise(ctx, p.d.clock, proc, p.timeout)
	code := r.exit.Code
	switch {
	case code < 0 && r.timedOut:
		return failedf("%s timed out after %v", p.spec.Script.Args[0], p.timeout)
	case code < 0:
		return failedf("%s %s", p.spec.Script.Args[0], r.exit)
	case code == 0 || (p.spec.Dynamic && code >= 2 && code <= 255):
		o := passed()
		if code != p.lastExit {
			// misc_dynamic: exit status n sets the weight to n-2; exit 0
			// restores the configured weight.
			o.setWeight, o.weight = true, p.iweight
			if code >= 2 {
				o.weight = code - 2
			}
			p.lastExit = code
		}
		return o
	}
	o := failedf("%s %s", p.spec.Script.Args[0], r.exit)
	o.exitCode = code
	return o
}

func (p *miscProber) decided(o outcome, d decision) {
	if d == decideDown && o.exitCode >= 0 {
		p.lastExit = o.exitCode
	}
}
