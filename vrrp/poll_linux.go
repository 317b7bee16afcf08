package vrrp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// The epoll loop: with the real clock and sockets the router waits like
// keepalived does, in one epoll set holding a timerfd, the VRRP sockets
// and an eventfd that other goroutines (scripts, link changes, reloads,
// stop) ring. That epoll fd is itself waited on through Go's poller, so
// one goroutine parks until something is ready, with no blocking syscall
// and no handoff between goroutines per advert; and the timerfd fires on
// time (Go's timers, sleeping in epoll_wait with a millisecond timeout,
// can be up to a millisecond late).

// pollConn is a Conn whose socket the router can wait on itself.
type pollConn interface {
	Conn
	// sysfd is the socket, owned by the Conn.
	sysfd() int
	// tryRead reads one packet without blocking; errWouldBlock when
	// none is queued.
	tryRead() (*packet.Packet, time.Duration, error)
	// urgentfd is a socket on the same interface that queues only
	// priority 0 adverts (owned by the Conn).
	urgentfd() int
}

var errWouldBlock = errors.New("would block")

// pollableNetwork marks a Network whose Conns are pollConns.
type pollableNetwork interface{ pollable() }

func (LinuxNetwork) pollable() {}

func (r *Router) pollable() bool {
	_, realTime := r.deps.Clock.(realClock)
	_, ok := r.deps.Network.(pollableNetwork)
	return realTime && ok
}

type poller struct {
	epfd, tfd, efd int
	// ep is epfd as a file in Go's poller; it owns epfd.
	ep    *os.File
	rc    syscall.RawConn
	conns map[int]*conn
	// wakefd is efd for wake, which other goroutines call; -1 once closed.
	wakefd atomic.Int32
	// urgent maps urgent sockets to their conn.
	urgent map[int]*conn
	// lazy holds the conns whose main socket is not watched (every
	// instance on it is a backup): read at timer expiry or on an urgent
	// packet.
	lazy map[*conn]bool
}

func newPoller() (*poller, error) {
	p := &poller{epfd: -1, tfd: -1, efd: -1, conns: map[int]*conn{}, urgent: map[int]*conn{}, lazy: map[*conn]bool{}}
	p.wakefd.Store(-1)
	var err error
	if p.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if p.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		p.close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	if p.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		p.close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p.wakefd.Store(int32(p.efd))
	for _, fd := range []int{p.tfd, p.efd} {
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			p.close()
			return nil, fmt.Errorf("epoll add: %w", err)
		}
	}
	if err := unix.SetNonblock(p.epfd, true); err != nil {
		p.close()
		return nil, err
	}
	p.ep = os.NewFile(uintptr(p.epfd), "vrrp-epoll")
	if p.rc, err = p.ep.SyscallConn(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *poller) add(c *conn) error {
	pc, ok := c.c.(pollConn)
	if !ok {
		return errors.New("socket cannot be polled")
	}
	fd, ufd := pc.sysfd(), pc.urgentfd()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		return err
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, ufd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ufd)}); err != nil {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		return err
	}
	p.conns[fd] = c
	p.urgent[ufd] = c
	return nil
}

func (p *poller) remove(c *conn) {
	for fd, x := range p.conns {
		if x == c {
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			delete(p.conns, fd)
		}
	}
	for fd, x := range p.urgent {
		if x == c {
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			delete(p.urgent, fd)
		}
	}
	delete(p.lazy, c)
}

// setLazy stops or resumes watching a conn's main socket.
func (p *poller) setLazy(c *conn, lazy bool) {
	if p.lazy[c] == lazy {
		return
	}
	var ev uint32
	if !lazy {
		ev = unix.EPOLLIN
	}
	fd := c.c.(pollConn).sysfd()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)}); err != nil {
		return
	}
	if lazy {
		p.lazy[c] = true
	} else {
		delete(p.lazy, c)
	}
}

// wake rings the loop from another goroutine.
func (p *poller) wake() {
	var one = [8]byte{1}
	if fd := p.wakefd.Load(); fd >= 0 {
		_, _ = unix.Write(int(fd), one[:])
	}
}

// arm sets the timer to fire d from now; disarm with armed false.
func (p *poller) arm(d time.Duration, armed bool) {
	var spec unix.ItimerSpec
	if armed {
		spec.Value = unix.NsecToTimespec(int64(max(d, time.Nanosecond)))
	}
	_ = rawTimerfdSettime(p.tfd, &spec)
}

func (p *poller) close() {
	p.wakefd.Store(-1)
	if p.ep != nil {
		p.ep.Close()
		p.epfd = -1
	}
	for _, fd := range []int{p.epfd, p.tfd, p.efd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	p.epfd, p.tfd, p.efd = -1, -1, -1
}

// wait parks the goroutine in Go's poller until the epoll set has
// events, then collects them.
func (p *poller) wait(events []unix.EpollEvent) (int, error) {
	var n int
	var werr error
	err := p.rc.Read(func(fd uintptr) bool {
		n, werr = rawEpollWait0(int(fd), events)
		if werr == unix.EINTR {
			werr = nil
		}
		return n > 0 || werr != nil
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// runPolled is Run's loop on the poller.
func (r *Router) runPolled(ctx context.Context, notesDone chan struct{}) error {
	stopWake := context.AfterFunc(ctx, r.poll.wake)
	defer stopWake()
	clock := r.deps.Clock
	events := make([]unix.EpollEvent, 16)
	var buf [8]byte
	var armedAt time.Time
	for {
		if ctx.Err() != nil {
			r.shutdown(notesDone)
			return nil
		}
		r.mu.Lock()
		next, armed := r.m.NextDeadline()
		if down, ok := r.m.NextMasterDown(); ok && down.Equal(next) {
			next = next.Add(-takeoverLead) // see spinToTakeover
		}
		r.mu.Unlock()
		if !armed {
			if !armedAt.IsZero() {
				r.poll.arm(0, false)
				armedAt = time.Time{}
			}
		} else if !next.Equal(armedAt) {
			r.poll.arm(next.Sub(clock.Now()), true)
			armedAt = next
		}
		n, err := r.poll.wait(events)
		if err != nil {
			r.log.Error("epoll_wait failed; stopping", "err", err)
			r.shutdown(notesDone)
			return fmt.Errorf("vrrp: epoll_wait: %w", err)
		}
		fired := false
		r.mu.Lock()
		for _, e := range events[:n] {
			switch fd := int(e.Fd); fd {
			case r.poll.tfd:
				_, _ = rawRead(fd, buf[:])
				fired = true
			case r.poll.efd:
				_, _ = rawRead(fd, buf[:])
			default:
				if c, ok := r.poll.conns[fd]; ok {
					r.readAll(c)
				} else if c, ok := r.poll.urgent[fd]; ok {
					// The copy only woke us: the advert itself is read
					// from the main socket, in order.
					for range 64 {
						if _, err := rawRead(fd, buf[:]); err != nil {
							break
						}
					}
					r.readAll(c)
				}
			}
		}
		// Adverts go in before the timer, with their arrival times: a
		// backup (kept off the CPU, or reading lazily) must not take
		// over from a master whose advert came in time.
		r.drainEvents()
		if !fired {
			// An advert may have brought a deadline forward into the
			// past (priority 0 with a small skew): no need to wait for
			// the timer to say so.
			next, ok := r.m.NextDeadline()
			fired = ok && !clock.Now().Before(next)
		}
		if fired {
			for c := range r.poll.lazy {
				r.readAll(c)
			}
			armedAt = time.Time{}
			r.spinToTakeover()
			r.m.Advance(clock.Now())
			r.do(r.m.Ready())
		}
		r.updateLazy()
		r.mu.Unlock()
	}
}

// takeoverLead is how early the loop wakes for a Master_Down_Timer.
// Waking from epoll takes 40-80 µs on an idle machine (the timer
// interrupt, the scheduler, Go's poller handing the goroutine over), and
// more on a busy one: at advert_int 0.01 with priority 100 the backup
// would take over 1% after its skew time (6.09 ms) before doing
// anything. So the loop wakes this much earlier, reads what arrived, and
// when no advert moved the deadline (the master is gone: only then)
// waits the rest on the CPU. While the master is alive the early wakeup
// finds its adverts and sleeps again, so the spin costs nothing then.
// 2 ms, not 1: on a realtime thread (runOnOwnThread) the wakeup is two
// (Go's poller, then the thread), and at 1 ms the priority 0 handover
// at advert_int 0.01 came 0.2-0.6 ms late.
const takeoverLead = 2 * time.Millisecond

// spinToTakeover waits on the CPU for a Master_Down_Timer due within
// takeoverLead, then reads the sockets once more: an advert that arrived
// meanwhile still counts, by its kernel arrival time. r.mu is held.
func (r *Router) spinToTakeover() {
	clock := r.deps.Clock
	down, ok := r.m.NextMasterDown()
	if next, _ := r.m.NextDeadline(); !ok || !down.Equal(next) {
		return
	}
	if d := down.Sub(clock.Now()); d <= 0 || d > takeoverLead {
		return
	}
	for clock.Now().Before(down) {
		// Spin: a sleep would wake late again.
	}
	for _, c := range r.conns {
		r.readAll(c)
	}
}

// updateLazy reads a socket lazily while every instance on it is a
// backup; r.mu is held.
func (r *Router) updateLazy() {
	for key, c := range r.conns {
		lazy := true
		for name, ri := range r.insts {
			if ri.key == key && r.m.State(name) != StateBackup {
				lazy = false
				break
			}
		}
		if lazy {
			// Nothing queued may wait past the next wakeup unread.
			r.readAll(c)
		}
		r.poll.setLazy(c, lazy)
	}
}

// readAll handles every packet queued on a socket; r.mu is held.
func (r *Router) readAll(c *conn) {
	pc := c.c.(pollConn)
	for range 64 { // bounded, so the timer is never starved
		p, age, err := pc.tryRead()
		at := r.deps.Clock.Now()
		if age > 0 && age < maxPacketAge {
			at = at.Add(-age)
		}
		switch {
		case errors.Is(err, errWouldBlock):
			return
		case err != nil:
			var de *packet.DecodeError
			if errors.As(err, &de) {
				r.handle(event{at: at, key: c.key, reason: de.Reason})
				continue
			}
			r.log.Warn("VRRP socket read", "interface", c.key.ifname, "err", err)
			return
		default:
			r.handle(event{at: at, key: c.key, pkt: p})
		}
	}
}

// runOnOwnThread runs the loop on an OS thread of its own, placed as
// r.cfg.Thread says. The goroutine still waits in Go's poller, which
// hands it back to this thread when something is ready: waiting in
// epoll_wait on the thread itself made Go's sysmon wake every 20 µs
// (about 50 ms of CPU a second at advert_int 0.01). The thread is never
// unlocked: it ends with the goroutine, so its settings never reach
// another goroutine.
func (r *Router) runOnOwnThread(ctx context.Context, notesDone chan struct{}) error {
	t := r.cfg.Thread // read before the loop, the only writer, runs
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := placeThread(t); err != nil {
			// keepalived logs and goes on too: the protocol still runs,
			// with less protection from load.
			r.log.Warn("VRRP thread settings not applied", "err", err)
		} else {
			r.log.Info("VRRP thread placed", "rt_priority", t.RealtimePriority, "nice", t.Nice, "cpus", t.CPUs)
		}
		done <- r.runPolled(ctx, notesDone)
	}()
	return <-done
}
