package daemon

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/internal/health"
)

// Apply retries back off from minRetry to maxRetry.
const (
	minRetry = 200 * time.Millisecond
	maxRetry = 30 * time.Second
)

// applyStats describe the owner loop's work, for status.
type applyStats struct {
	// last is the desired state last handed to the dataplane.
	last          desired
	haveLast      bool
	count, failed uint64
	lastAt        time.Time
	lastErr       string
}

// reconcile is the dataplane's owner: the only goroutine that calls
// Apply. It recomputes the desired state whenever VRRP, the health
// checker, the configuration (reload) or local addresses change, applies
// it when it differs from the last one applied, and retries failed
// applies with backoff. hold > 0 keeps unsettled instances serving for
// that long (after a restart that adopted a forwarding dataplane).
func (d *Daemon) reconcile(ctx context.Context, hold time.Duration) {
	var (
		retry      health.Timer
		retryC     <-chan time.Time
		holdC      <-chan time.Time
		backoff    = minRetry
		lastErrMsg string
		lastOK     bool
		retrying   bool // a retry of the last, failed, state is scheduled
		warned     = map[netip.Addr]bool{}
		warnedPlan *loaded
		leasedPlan *loaded
	)
	if hold > 0 {
		t, c := d.clock.NewTimer(hold)
		defer t.Stop()
		holdC = c
	}
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	scheduleRetry := func() {
		if retry == nil {
			retry, retryC = d.clock.NewTimer(backoff)
		} else {
			retry.Reset(backoff)
		}
		backoff = min(2*backoff, maxRetry)
		retrying = true
	}

	step := func() {
		d.mu.Lock()
		cur, dp := d.cur, d.dp
		last, haveLast := d.apply.last, d.apply.haveLast
		d.mu.Unlock()
		if dp == nil {
			if len(cur.plan.Services) == 0 {
				return
			}
			if err := d.openDataplane(); err != nil {
				d.log.Error("open dataplane; retrying", "err", err, "in", backoff)
				scheduleRetry()
				return
			}
			d.mu.Lock()
			dp = d.dp
			d.mu.Unlock()
		}
		if warnedPlan != cur {
			clear(warned)
			warnedPlan = cur
		}
		if l, ok := dp.(leaser); ok && leasedPlan != cur {
			// A reload may have changed the advert intervals.
			if err := l.SetLease(interceptLease(cur.vrrp)); err != nil {
				d.log.Warn("set the dataplane's interception lease", "err", err)
			} else {
				leasedPlan = cur
			}
		}

		view := runningView{
			Instances:     map[string]instanceView{},
			Health:        d.checks.Snapshot(),
			HoldUnsettled: holdC != nil,
		}
		for _, st := range d.router.Status() {
			view.Instances[st.Name] = viewOf(st)
		}
		if addrs := unmanagedAddrs(cur.plan); len(addrs) > 0 {
			local, err := d.opts.Addresses.Local(addrs)
			if err != nil {
				d.log.Warn("look up unmanaged VIPs", "err", err)
			}
			view.Local = local
			if d.caps.AttachByInterface {
				for _, a := range addrs {
					if _, ok := local[a]; !ok && !warned[a] {
						warned[a] = true
						d.log.Warn("virtual server address is managed by no vrrp_instance and is on no (non-loopback) interface: not served until it is (add it to a vrrp_instance's virtual_ipaddress, or to the interface its traffic arrives on)", "vip", a)
					}
				}
			}
		}
		want := desiredState(cur.plan, view, d.caps)
		// The same state again: done if it was applied; if it failed, the
		// scheduled retry applies it (events do not hammer a failing
		// dataplane).
		if haveLast && (lastOK || retrying) && reflect.DeepEqual(want.State, last.State) {
			return
		}
		owner, _ := dp.(serviceOwner)
		if owner != nil {
			// The guard hears of the services before they exist.
			d.guard.sync(d.held.setServices(unionKeys(owner.Owned(), want.State.Services)))
		}
		err := dp.Apply(want.State)
		if owner != nil {
			d.held.setServices(owner.Owned())
		}
		now := d.clock.Now()
		d.mu.Lock()
		d.apply.last, d.apply.haveLast = want, true
		d.apply.count++
		d.apply.lastAt = now
		d.apply.lastErr = ""
		if err != nil {
			d.apply.failed++
			d.apply.lastErr = err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			lastOK = false
			if msg := err.Error(); msg != lastErrMsg {
				lastErrMsg = msg
				d.log.Error("dataplane apply failed; retrying with backoff", "err", err, "in", backoff)
			} else {
				d.log.Debug("dataplane apply failed again", "in", backoff)
			}
			scheduleRetry()
			return
		}
		if !lastOK && lastErrMsg != "" {
			d.log.Info("dataplane apply succeeded again")
		}
		lastOK, lastErrMsg, backoff = true, "", minRetry
		logServedChanges(d, last.State.Served, want.State.Served, haveLast)
	}

	for {
		step()
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-d.checks.Changes():
		case <-retryC:
			retrying = false
		case <-holdC:
			holdC = nil
			d.log.Debug("startup hold over: unsettled VRRP instances stop serving")
		}
	}
}

// logServedChanges logs the VIPs the dataplane started and stopped
// serving.
func logServedChanges(d *Daemon, before, after []dataplane.ServedVIP, haveBefore bool) {
	for _, v := range after {
		if !haveBefore || !slices.Contains(before, v) {
			d.log.Info("dataplane serving", "vip", v.Addr, "interface", v.Interface)
		}
	}
	for _, v := range before {
		if !slices.Contains(after, v) {
			d.log.Info("dataplane no longer serving", "vip", v.Addr, "interface", v.Interface)
		}
	}
}

// serviceOwner is a dataplane that leaves services in the kernel when
// its process dies (IPVS): the crash guard is told which it owns.
type serviceOwner interface {
	Owned() []dataplane.ServiceKey
}

// unionKeys is owned plus the keys of services, each once, sorted: what
// the dataplane owns once it applied services.
func unionKeys(owned []dataplane.ServiceKey, services []dataplane.Service) []dataplane.ServiceKey {
	out := slices.Clone(owned)
	for _, s := range services {
		if !slices.Contains(out, s.Key) {
			out = append(out, s.Key)
		}
	}
	sortKeys(out)
	return out
}
