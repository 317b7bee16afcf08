package vrrp

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// defaultRTTimeLimit is keepalived's vrrp_rlimit_rttime default.
const defaultRTTimeLimit = 10 * time.Millisecond

// placeThread applies t to the calling OS thread, which the caller has
// locked for good (the thread ends with its goroutine, so no other
// goroutine ever runs with these settings). Like keepalived, a realtime
// thread gets SCHED_RR with SCHED_RESET_ON_FORK (so scripts start with
// normal scheduling) and an RLIMIT_RTTIME whose soft half warns and
// whose whole kills; without realtime, Nice applies. Every setting is
// tried: the error lists those the kernel refused.
func placeThread(t ThreadConfig) error {
	var errs []error
	if len(t.CPUs) > 0 {
		var set unix.CPUSet
		for _, cpu := range t.CPUs {
			set.Set(cpu)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errs = append(errs, fmt.Errorf("vrrp_cpu_affinity %v: %w", t.CPUs, err))
		}
	}
	attr := unix.SchedAttr{Policy: unix.SCHED_NORMAL, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if t.RealtimePriority > 0 {
		limit := t.RTTimeLimit
		if limit <= 0 {
			limit = defaultRTTimeLimit
		}
		us := uint64(limit / time.Microsecond)
		if err := unix.Setrlimit(unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: us / 2, Max: us}); err != nil {
			errs = append(errs, fmt.Errorf("vrrp_rlimit_rttime %v: %w", limit, err))
		}
		attr.Policy, attr.Priority = unix.SCHED_RR, uint32(t.RealtimePriority)
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			errs = append(errs, fmt.Errorf("vrrp_rt_priority %d: %w", t.RealtimePriority, err))
		}
	} else if t.Nice != 0 {
		attr.Nice = int32(t.Nice)
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			errs = append(errs, fmt.Errorf("vrrp_priority %d: %w", t.Nice, err))
		}
	}
	return errors.Join(errs...)
}
