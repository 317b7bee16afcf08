package health

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
)

// Update switches to a new configuration (SIGHUP reload) and applies only
// the difference, like keepalived's clear_diff_services:
//
//   - a virtual server keeps its quorum state, matched by Name;
//   - a real server keeps its alive state and its dynamic weight offset,
//     matched by address within its virtual server;
//   - an unchanged checker keeps running on its schedule with its state;
//     a new or changed one starts afresh (bootstrap and warmup first);
//   - removed real servers that were alive run notify_down, removed
//     virtual servers lose quorum; quorum is re-evaluated with the new
//     settings, running quorum_up/quorum_down and moving the sorry server
//     as needed.
//
// An invalid configuration changes nothing and returns every problem.
// Update may be called before Run (the change applies at start) or while
// it runs; not after.
func (m *Manager) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("health config: %w", err)
	}
	cfg = adjustQuorum(cfg, m.opts.Logger)

	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return errors.New("health: manager stopped")
	}
	running := m.runCtx != nil
	runOf := make(map[*checkState]*checkerRun, len(m.runs))
	for _, r := range m.runs {
		runOf[r.state] = r
	}
	oldVS := make(map[string]*vsState, len(m.pool.vss))
	for _, vs := range m.pool.vss {
		oldVS[vs.cfg.Name] = vs
	}

	var (
		acts    []action
		runs    []*checkerRun
		fresh   []*checkerRun
		kept    = map[*checkerRun]bool{}
		newPool = &pool{}
	)
	for _, vcfg := range cfg.VirtualServers {
		old := oldVS[vcfg.Name]
		delete(oldVS, vcfg.Name)
		vs, initActs := newVSState(vcfg)
		newPool.vss = append(newPool.vss, vs)
		if old == nil {
			acts = append(acts, initActs...)
			for _, rs := range vs.rss {
				for _, c := range rs.checks {
					r := m.newRun(c)
					runs, fresh = append(runs, r), append(fresh, r)
				}
			}
			continue
		}
		vs.quorumUp = old.quorumUp
		vs.sorryAlive = old.sorryAlive && vcfg.Sorry != nil && old.cfg.Sorry != nil && vcfg.Sorry.Addr == old.cfg.Sorry.Addr
		oldRS := make(map[netip.AddrPort]*rsState, len(old.rss))
		for _, rs := range old.rss {
			oldRS[rs.cfg.Addr] = rs
		}
		for _, rs := range vs.rss {
			prev := oldRS[rs.cfg.Addr]
			delete(oldRS, rs.cfg.Addr)
			if prev == nil {
				for _, c := range rs.checks {
					r := m.newRun(c)
					runs, fresh = append(runs, r), append(fresh, r)
				}
				// Like at start: alive unless it has alpha checkers, and
				// no notify (keepalived's rs_init_notifies is off).
				continue
			}
			// Keep the dynamic offset on top of the new configured weight.
			rs.weight = prev.weight + rs.cfg.Weight - prev.cfg.Weight
			rs.alive = prev.alive
			used := map[*checkState]bool{}
			var added []*checkState
			for k, c := range rs.checks {
				oc := matchChecker(prev, rs, k, used)
				if oc == nil {
					added = append(added, c)
					r := m.newRun(c)
					runs, fresh = append(runs, r), append(fresh, r)
					continue
				}
				used[oc] = true
				migrateCheck(oc, c)
				r := runOf[oc]
				r.state = c
				kept[r] = true
				runs = append(runs, r)
			}
			// keepalived: new alpha checkers start failed only if the
			// server has a failed checker, or is down with none run yet.
			failed, anyRun := false, false
			for _, c := range rs.checks {
				failed = failed || (c.hasRun && !c.up)
				anyRun = anyRun || c.hasRun
			}
			for _, c := range added {
				c.up = !(c.cfg.Alpha && (failed || (!prev.alive && !anyRun)))
			}
			rs.numFailed = 0
			for _, c := range rs.checks {
				if !c.up {
					rs.numFailed++
				}
			}
			// perform_svr_state toward the new verdict.
			acts = append(acts, rs.setAlive(rs.numFailed == 0)...)
		}
		// Real servers gone from the configuration leave the pool.
		for _, rs := range old.rss {
			if _, gone := oldRS[rs.cfg.Addr]; gone && rs.alive {
				rs.alive = false
				acts = append(acts, rs.notify()...)
			}
		}
		acts = append(acts, vs.updateQuorum(true)...)
	}
	// Virtual servers gone from the configuration lose their real
	// servers and their quorum.
	for _, name := range slices.Sorted(maps.Keys(oldVS)) {
		vs := oldVS[name]
		for _, rs := range vs.rss {
			if rs.alive {
				rs.alive = false
				acts = append(acts, rs.notify()...)
			}
		}
		if vs.quorumUp {
			vs.quorumUp = false
			acts = append(acts, vs.quorumNotify("removed")...)
		}
	}

	var retired []*checkerRun
	for _, r := range m.runs {
		if !kept[r] {
			r.retired = true
			retired = append(retired, r)
		}
	}
	m.pool, m.runs = newPool, runs
	if running {
		for _, r := range fresh {
			m.startLocked(r)
		}
		m.runScripts(m.scripts, acts)
	} else {
		m.initial = append(m.initial, acts...)
	}
	m.mu.Unlock()

	for _, r := range retired {
		if r.cancel != nil {
			r.cancel()
		}
	}
	m.opts.Logger.Info("health configuration updated", "checkers", len(runs), "kept", len(kept), "started", len(fresh), "stopped", len(retired))
	m.signal()
	return nil
}

// matchChecker finds the old checker that new checker k of rs continues:
// the same configuration on the same server, preferring the same
// position (keepalived's migrate_checkers compares type and options).
func matchChecker(prev, rs *rsState, k int, used map[*checkState]bool) *checkState {
	if prev.cfg.Weight != rs.cfg.Weight {
		// MISC_CHECK's dynamic weight restores the configured weight;
		// a changed weight needs a fresh prober.
		if _, misc := rs.checks[k].cfg.Spec.(MiscCheck); misc {
			return nil
		}
	}
	same := func(oc *checkState) bool {
		return !used[oc] && reflect.DeepEqual(oc.cfg, rs.checks[k].cfg)
	}
	if k < len(prev.checks) && same(prev.checks[k]) {
		return prev.checks[k]
	}
	for _, oc := range prev.checks {
		if same(oc) {
			return oc
		}
	}
	return nil
}

// migrateCheck carries a checker's state and results over a reload.
func migrateCheck(from, to *checkState) {
	*to = checkState{
		rs:     to.rs,
		cfg:    to.cfg,
		target: to.target,
		up:     from.up, hasRun: from.hasRun,
		probes: from.probes, failures: from.failures, ran: from.ran,
		lastOK: from.lastOK, lastErr: from.lastErr, lastRun: from.lastRun,
		latency: from.latency, retrying: from.retrying,
	}
}
