// Package healthtest holds test doubles for package health: a fake clock
// that only moves when a test advances it.
package healthtest

import (
	"slices"
	"sync"
	"time"

	"github.com/xkeep/xkeep/internal/health"
)

// Clock is a fake health.Clock (after tailscale's tstest.Clock). Time
// stands still until Advance moves it; timers whose deadline is reached
// fire in deadline order, each seeing Now equal to its deadline. AfterFunc
// callbacks run synchronously inside Advance.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*timer
}

var _ health.Clock = (*Clock)(nil)

// NewClock returns a fake clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

type timer struct {
	c    *Clock
	when time.Time
	seq  uint64 // orders timers with equal deadlines by creation
	ch   chan time.Time
	f    func()
	live bool
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing d after the fake now.
func (c *Clock) NewTimer(d time.Duration) (health.Timer, <-chan time.Time) {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t, t.ch
}

// AfterFunc calls f (synchronously, from Advance) d after the fake now.
func (c *Clock) AfterFunc(d time.Duration, f func()) health.Timer {
	t := &timer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing every timer due on the way.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.AdvanceTo(target)
}

// AdvanceTo moves the clock to target (never backwards), firing every
// timer due on the way.
func (c *Clock) AdvanceTo(target time.Time) {
	for {
		c.mu.Lock()
		next := c.earliestLocked()
		if next == nil || next.when.After(target) {
			if target.After(c.now) {
				c.now = target
			}
			c.mu.Unlock()
			return
		}
		if next.when.After(c.now) {
			c.now = next.when
		}
		next.live = false
		c.removeLocked(next)
		now := c.now
		c.mu.Unlock()
		if next.f != nil {
			next.f()
		} else {
			select {
			case next.ch <- now:
			default:
			}
		}
	}
}

// Pending returns how long from now each pending timer has left, soonest
// first.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t.when.Sub(c.now))
	}
	slices.Sort(out)
	return out
}

// Next returns the time until the soonest pending timer, and false when
// no timer is pending.
func (c *Clock) Next() (time.Duration, bool) {
	p := c.Pending()
	if len(p) == 0 {
		return 0, false
	}
	return p[0], true
}

func (c *Clock) earliestLocked() *timer {
	var best *timer
	for _, t := range c.timers {
		if best == nil || t.when.Before(best.when) || (t.when.Equal(best.when) && t.seq < best.seq) {
			best = t
		}
	}
	return best
}

func (c *Clock) removeLocked(t *timer) {
	c.timers = slices.DeleteFunc(c.timers, func(x *timer) bool { return x == t })
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.live
	t.live = false
	t.c.removeLocked(t)
	return was
}

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.live
	if was {
		t.c.removeLocked(t)
	}
	t.c.seq++
	t.seq = t.c.seq
	t.when = t.c.now.Add(d)
	t.live = true
	t.c.timers = append(t.c.timers, t)
	return was
}
