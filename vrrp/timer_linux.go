package vrrp

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fdTimer is a timer on a timerfd (CLOCK_MONOTONIC) waited on through the
// runtime's poller. Go's own timers, when the process is idle, sleep in
// epoll_wait with a millisecond timeout and can fire up to a millisecond
// late; a timerfd wakes epoll on the expiry itself, so a 36 ms
// Master_Down_Interval is kept to tens of microseconds.
type fdTimer struct {
	f    *os.File
	ch   chan time.Time
	once sync.Once
}

func newFDTimer(d time.Duration) (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	t := &fdTimer{f: os.NewFile(uintptr(fd), "vrrp-timer"), ch: make(chan time.Time, 1)}
	t.Reset(d)
	go t.wait()
	return t, nil
}

func (t *fdTimer) wait() {
	var buf [8]byte
	for {
		// Blocks in the poller until the timer expires or is closed.
		if _, err := t.f.Read(buf[:]); err != nil {
			return
		}
		select {
		case t.ch <- time.Now():
		default:
		}
	}
}

func (t *fdTimer) Chan() <-chan time.Time { return t.ch }

// Reset re-arms the timer; an expiry not yet delivered is dropped.
func (t *fdTimer) Reset(d time.Duration) {
	select {
	case <-t.ch:
	default:
	}
	if d <= 0 {
		d = time.Nanosecond // zero would disarm
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if sc, err := t.f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _ = unix.TimerfdSettime(int(fd), 0, &spec, nil) })
	}
}

// Stop releases the timer; it cannot be reset afterwards.
func (t *fdTimer) Stop() { t.once.Do(func() { t.f.Close() }) }
