package health

import "time"

// Clock is the time source of every checker: the delays between checks,
// warmup, retries and every timeout (connect, read, misc_timeout) run on it,
// so a test can drive them with a fake that advances (healthtest.Clock).
// It follows tailscale's tstime.Clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that sends the time on the channel once d
	// has passed.
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
	// AfterFunc calls f in its own goroutine (or synchronously, for fakes)
	// once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer controls a timer made by a Clock.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it was
	// still pending.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether it was
	// still pending.
	Reset(d time.Duration) bool
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (SystemClock) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
