package healthtest

import (
	"slices"
	"testing"
	"time"
)

func TestClockFiresInDeadlineOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	var order []string
	var seen []time.Duration
	c.AfterFunc(3*time.Second, func() {
		order = append(order, "c")
		seen = append(seen, c.Now().Sub(start))
		// A timer set from a callback fires within the same Advance.
		c.AfterFunc(time.Second, func() { order = append(order, "d") })
	})
	c.AfterFunc(time.Second, func() { order = append(order, "a") })
	stopped := c.AfterFunc(2*time.Second, func() { order = append(order, "never") })
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop reports pending, then not")
	}
	tm, ch := c.NewTimer(2 * time.Second)
	if got := c.Pending(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}) {
		t.Fatalf("pending %v", got)
	}
	c.Advance(5 * time.Second)
	if !slices.Equal(order, []string{"a", "c", "d"}) || seen[0] != 3*time.Second {
		t.Errorf("fired %v (c at %v), want a c d, c at 3s", order, seen)
	}
	select {
	case at := <-ch:
		if at.Sub(start) != 2*time.Second {
			t.Errorf("timer sent %v", at.Sub(start))
		}
	default:
		t.Error("timer did not fire")
	}
	if got := c.Now().Sub(start); got != 5*time.Second {
		t.Errorf("now %v, want 5s", got)
	}
	if tm.Reset(time.Second) {
		t.Error("Reset of a fired timer reports pending")
	}
	if d, ok := c.Next(); !ok || d != time.Second {
		t.Errorf("Next = %v %v", d, ok)
	}
}
