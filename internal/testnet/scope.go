package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"testing"
)

// Scope lets a program that is not a test (the demo lab, `go run
// ./test/lab`) build networks with testnet and with helpers written for
// tests. It implements the part of testing.TB those helpers call:
// Cleanup, Helper, Log, Error, Fatal, Skip, TempDir, Context, Name.
//
// Cleanups run last-first when Close is called, also after a failure, so
// a program defers Close and calls it from its signal handler too.
// Fatal (and Skip, which a program cannot honour) end the work started by
// Run: they panic with a value Run recovers, the way testing ends a test
// goroutine with runtime.Goexit. Call them only from inside Run.
type Scope struct {
	// testing.TB is embedded only for the interface's unexported method;
	// it is nil, so a TB method Scope does not implement panics rather
	// than doing something wrong silently.
	testing.TB

	name   string
	log    io.Writer
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
	tmpdirs  []string
}

// scopeAbort is the panic value Fatal and Skip use to unwind to Run.
type scopeAbort struct{ msg string }

// NewScope returns a scope named name whose log lines go to log.
func NewScope(name string, log io.Writer) *Scope {
	ctx, cancel := context.WithCancel(context.Background())
	return &Scope{name: name, log: log, ctx: ctx, cancel: cancel}
}

// Run runs fn and returns the message of a Fatal or Skip that ended it
// as an error (nil when fn returned normally). Other panics propagate.
func (s *Scope) Run(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(scopeAbort)
			if !ok {
				panic(fmt.Sprintf("%v\n%s", r, debug.Stack()))
			}
			err = errors.New(a.msg)
		}
	}()
	fn()
	return nil
}

// Close cancels Context and runs the cleanups, last registered first.
// It is safe to call more than once and from several goroutines: later
// calls return at once.
func (s *Scope) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		fn := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		s.runCleanup(fn)
	}
	s.mu.Lock()
	dirs := s.tmpdirs
	s.tmpdirs = nil
	s.mu.Unlock()
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

func (s *Scope) runCleanup(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(scopeAbort); ok {
				s.logLine("cleanup failed: " + a.msg)
				return
			}
			s.logLine(fmt.Sprintf("cleanup panicked: %v\n%s", r, debug.Stack()))
		}
	}()
	fn()
}

func (s *Scope) logLine(msg string) {
	if s.log != nil {
		fmt.Fprintln(s.log, msg)
	}
}

// Cleanup registers fn to run on Close. After Close it runs at once.
func (s *Scope) Cleanup(fn func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.runCleanup(fn)
		return
	}
	s.cleanups = append(s.cleanups, fn)
	s.mu.Unlock()
}

// Helper does nothing: there are no test lines to attribute.
func (s *Scope) Helper() {}

// Name returns the scope's name.
func (s *Scope) Name() string { return s.name }

// Context is cancelled when Close starts, before the cleanups run.
func (s *Scope) Context() context.Context { return s.ctx }

// Log writes a line to the scope's log.
func (s *Scope) Log(args ...any) { s.logLine(fmt.Sprint(args...)) }

// Logf writes a formatted line to the scope's log.
func (s *Scope) Logf(format string, args ...any) { s.logLine(fmt.Sprintf(format, args...)) }

// Fail marks the scope failed.
func (s *Scope) Fail() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

// Failed reports whether Fail, Error or Fatal was called.
func (s *Scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Error logs and marks the scope failed.
func (s *Scope) Error(args ...any) { s.Log(args...); s.Fail() }

// Errorf logs and marks the scope failed.
func (s *Scope) Errorf(format string, args ...any) { s.Logf(format, args...); s.Fail() }

// FailNow marks the scope failed and unwinds to Run.
func (s *Scope) FailNow() { s.abort("failed") }

// Fatal marks the scope failed and unwinds to Run with the message.
func (s *Scope) Fatal(args ...any) { s.abort(fmt.Sprint(args...)) }

// Fatalf marks the scope failed and unwinds to Run with the message.
func (s *Scope) Fatalf(format string, args ...any) { s.abort(fmt.Sprintf(format, args...)) }

// Skip cannot skip a program: it fails like Fatal, with the reason.
func (s *Scope) Skip(args ...any) { s.abort(fmt.Sprint(args...)) }

// Skipf fails like Fatalf (see Skip).
func (s *Scope) Skipf(format string, args ...any) { s.abort(fmt.Sprintf(format, args...)) }

// SkipNow fails like FailNow (see Skip).
func (s *Scope) SkipNow() { s.abort("skipped") }

// Skipped is always false: a scope never skips.
func (s *Scope) Skipped() bool { return false }

func (s *Scope) abort(msg string) {
	s.Fail()
	panic(scopeAbort{msg: msg})
}

// TempDir returns a new directory removed by Close.
func (s *Scope) TempDir() string {
	dir, err := os.MkdirTemp("", "xkeep-"+s.name+"-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.mu.Lock()
	s.tmpdirs = append(s.tmpdirs, dir)
	s.mu.Unlock()
	return dir
}
