package xdp

import (
	"errors"
	"fmt"
	"time"
)

// leaseLoop renews the program's lease (Options.Lease) every third of it
// while the dataplane is open. A lease changed by SetLease takes effect at
// once and re-times the loop.
func (d *Dataplane) leaseLoop() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		lease := d.opts.Lease
		d.mu.Unlock()
		var tick <-chan time.Time
		var timer *time.Timer
		if lease > 0 {
			timer = time.NewTimer(lease / 3)
			tick = timer.C
		}
		select {
		case <-d.stop:
			return
		case <-d.leaseChanged:
		case <-tick:
			if err := d.renewLease(); err != nil {
				d.log.Warn("xdp: renew lease", "error", err)
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// SetLease changes Options.Lease (0 removes the lease) and renews it now.
// The daemon sets it from its VRRP timers, which a reload may change.
func (d *Dataplane) SetLease(lease time.Duration) error {
	if lease < 0 {
		return errors.New("xdp: lease must not be negative")
	}
	d.mu.Lock()
	changed := d.opts.Lease != lease
	d.opts.Lease = lease
	d.mu.Unlock()
	if err := d.renewLease(); err != nil {
		return err
	}
	if changed {
		select {
		case d.leaseChanged <- struct{}{}:
		default:
		}
	}
	return nil
}

func (d *Dataplane) renewLease() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	until, err := d.clock.leaseUntil(d.opts.Lease, d.cfg.Hz)
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	cfg := d.cfg
	if until != 0 {
		until += cfg.ClockOffset // 0 but in tests that move the program's time
	}
	cfg.LeaseUntil = until
	if err := d.objs.Cfg.Set(cfg); err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	d.cfg = cfg
	return nil
}
