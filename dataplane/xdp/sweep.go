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
		persistTimeout[st.id] = uint64(st.value.PersistTimeout) * cfg.Hz
	}
	pending := d.pendingNeighbours()
	d.mu.Unlock()

	jiffies, _, err := d.clock.read()
	if err != nil {
		return fmt.Errorf("xdp sweep: %w", err)
	}
	now := jiffies + cfg.ClockOffset
	expired := func(last, timeout uint64) bool {
		return timeout > 0 && now > last && now-last > timeout
	}
	var errs []error

	counts := make(map[uint32]int64)
	count := func(proto uint8, fv balancerFlow) bool {
		timeout := cfg.UdpTimeout
		if proto == unix.IPPROTO_TCP {
			timeout = cfg.TcpTimeout
		}
		if expired(fv.LastSeen, timeout) {
			return false
		}
		if fv.Flags&uint32(balancerFlowFlagsFLOW_F_CLOSING) == 0 && int(fv.Backend) < len(gens) && gens[fv.Backend] == fv.Gen {
			counts[fv.Backend]++
		}
		return true
	}
	errs = append(errs,
		sweepFlows(d.objs.Flows4, func(k balancerFlowKey4) uint8 { return k.Proto }, count),
		sweepFlows(d.objs.Flows6, func(k balancerFlowKey) uint8 { return k.Proto }, count))

	var (
		pk    balancerPersistKey
		pv    balancerPersist
		pdead []balancerPersistKey
	)
	it := d.objs.Persistence.Iterate()
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

// sweepFlows deletes the flows keep rejects.
func sweepFlows[K any](m *ebpf.Map, proto func(K) uint8, keep func(uint8, balancerFlow) bool) error {
	var (
		k    K
		v    balancerFlow
		dead []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !keep(proto(k), v) {
			dead = append(dead, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read flows: %w", err)
	}
	return deleteKeys(m, dead)
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
	d.log.Warn("neighbour subscription failed; subscribing again", "error", err, "in", neighbourResubscribeDelay)
}
