package xdp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func (d *Dataplane) sweepLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			if err := d.Sweep(); err != nil {
				d.log.Warn("xdp sweep", "error", err)
			}
		}
	}
}

// programNow is the program's clock: CLOCK_MONOTONIC_COARSE, which
// bpf_ktime_get_coarse_ns reads, plus the configured offset.
func programNow(cfg balancerConfig) uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts)
	return uint64(ts.Nano()) + cfg.ClockOffset
}

// Sweep removes expired flows and persistence entries, recounts the active
// flows of every backend (the program's counts drift: LRU evictions and
// flows that end without FIN/RST are never subtracted there), and probes
// again backends whose MAC is unknown. New runs it every SweepInterval; it
// is safe to call at any time. A flow that starts or ends while the table
// is read may be miscounted until the next sweep: lc/wlc are approximate.
func (d *Dataplane) Sweep() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("xdp: sweep after close")
	}
	cfg := d.cfg
	gens := slices.Clone(d.gens)
	persistTimeout := make(map[uint32]uint64)
	for _, st := range d.services {
		persistTimeout[st.id] = uint64(st.value.PersistTimeout) * uint64(time.Second)
	}
	pending := d.pendingNeighbours()
	d.mu.Unlock()

	now := programNow(cfg)
	expired := func(last, timeout uint64) bool {
		return timeout > 0 && now > last && now-last > timeout
	}
	var errs []error

	counts := make(map[uint32]int64)
	var (
		fk   balancerFlowKey
		fv   balancerFlow
		dead []balancerFlowKey
	)
	it := d.objs.Flows.Iterate()
	for it.Next(&fk, &fv) {
		timeout := cfg.UdpTimeout
		if fk.Proto == unix.IPPROTO_TCP {
			timeout = cfg.TcpTimeout
		}
		if expired(fv.LastSeen, timeout) {
			dead = append(dead, fk)
			continue
		}
		if fv.Flags&uint32(balancerFlowFlagsFLOW_F_CLOSING) == 0 && int(fv.Backend) < len(gens) && gens[fv.Backend] == fv.Gen {
			counts[fv.Backend]++
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read flows: %w", err))
	}
	errs = append(errs, deleteKeys(d.objs.Flows, dead))

	var (
		pk    balancerPersistKey
		pv    balancerPersist
		pdead []balancerPersistKey
	)
	it = d.objs.Persistence.Iterate()
	for it.Next(&pk, &pv) {
		if t, ok := persistTimeout[pk.Service]; !ok || expired(pv.LastSeen, t) {
			pdead = append(pdead, pk)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read persistence: %w", err))
	}
	errs = append(errs, deleteKeys(d.objs.Persistence, pdead))

	var found map[neighKey]net.HardwareAddr
	if len(pending) > 0 {
		found = d.probe(pending)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.Join(errs...)
	}
	var (
		ids  []uint32
		vals []int64
	)
	for _, st := range d.services {
		for _, b := range st.backends {
			ids = append(ids, b.id)
			vals = append(vals, counts[b.id])
		}
	}
	if err := putBatch(d.objs.BackendConns, ids, vals); err != nil {
		errs = append(errs, fmt.Errorf("write active flow counts: %w", err))
	}
	if len(found) > 0 {
		for k, mac := range found {
			d.neigh[k] = mac
		}
		if d.last.Services != nil {
			errs = append(errs, d.apply(d.last, false))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp sweep: %w", err)
	}
	return nil
}

func deleteKeys[K any](m *ebpf.Map, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchDelete(keys, nil)
	if err == nil {
		return nil
	}
	var errs []error
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pendingNeighbours lists the backends that have a route but no MAC yet.
func (d *Dataplane) pendingNeighbours() []neighKey {
	var out []neighKey
	seen := make(map[neighKey]bool)
	for _, st := range d.services {
		for k := range st.backends {
			r := d.routes[k.Addr]
			if r == nil || r.err != nil || r.local {
				continue
			}
			nk := neighKey{r.via.index, k.Addr}
			if _, ok := d.neigh[nk]; !ok && !seen[nk] {
				seen[nk] = true
				out = append(out, nk)
			}
		}
	}
	return out
}

// neighbourChanged follows the kernel's neighbour table: a backend whose
// MAC changed (or became known) gets its entry rewritten at once.
func (d *Dataplane) neighbourChanged(k neighKey, mac net.HardwareAddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	r := d.routes[k.addr]
	if r == nil || r.err != nil || r.local || r.via.index != k.link {
		return // not a backend's
	}
	if old, ok := d.neigh[k]; ok && bytes.Equal(old, mac) {
		return
	}
	d.neigh[k] = slices.Clone(mac)
	d.log.Info("backend MAC address changed", "backend", k.addr, "mac", mac.String())
	if d.last.Services == nil {
		return // nothing applied yet: the first Apply uses it
	}
	if err := d.apply(d.last, false); err != nil {
		d.log.Warn("re-apply after neighbour change", "error", err)
	}
}

func (d *Dataplane) neighbourError(err error) {
	select {
	case <-d.stop:
		return // the subscription's socket was closed by Close/Release
	default:
	}
	d.log.Warn("neighbour subscription", "error", err)
}
