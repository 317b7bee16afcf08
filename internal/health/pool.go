package health

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// maxWeight is IPVS's largest destination weight.
const maxWeight = 65535

// pool is the real servers' and virtual servers' state, keepalived's
// ipwrapper.c: which servers are alive, their effective weights, quorum
// and the sorry server. It is pure: checker decisions go in, the scripts
// to run come out, and view renders what the forwarder should do.
type pool struct {
	vss []*vsState
}

type vsState struct {
	cfg        VirtualServer
	quorum     int
	hysteresis int
	quorumUp   bool
	sorryAlive bool
	rss        []*rsState
}

type rsState struct {
	vs        *vsState
	cfg       RealServer
	alive     bool
	numFailed int
	weight    int // effective weight (misc_dynamic changes it)
	checks    []*checkState
}

type checkState struct {
	rs     *rsState
	cfg    Check
	target string
	up     bool // keepalived's checker->is_up
	hasRun bool

	// Results, for Snapshot and metrics.
	probes, failures uint64
	ran              bool
	lastOK           bool
	lastErr          string
	lastRun          time.Time
	latency          time.Duration
	retrying         int
}

// action is a script to run because of a state change.
type action struct {
	script Script
	why    string
}

// newPool builds the starting state: every non-alpha checker passing, so
// servers without alpha checkers start alive (keepalived adds them to the
// pool before their first check). It returns the scripts to run at start:
// quorum_down when quorum starts lost and a sorry server takes over.
func newPool(cfg *Config) (*pool, []action) {
	p := &pool{}
	var acts []action
	for _, vcfg := range cfg.VirtualServers {
		vs, a := newVSState(vcfg)
		p.vss = append(p.vss, vs)
		acts = append(acts, a...)
	}
	return p, acts
}

func newVSState(vcfg VirtualServer) (*vsState, []action) {
	vs := &vsState{cfg: vcfg, quorum: vcfg.Quorum, hysteresis: vcfg.Hysteresis}
	for _, rcfg := range vcfg.RealServers {
		vs.rss = append(vs.rss, newRSState(vs, rcfg))
	}
	// set_quorum_states, then init_service_vs's update_quorum_state.
	vs.quorumUp = vs.aliveWeight() >= vs.quorum+vs.hysteresis
	return vs, vs.updateQuorum(true)
}

func newRSState(vs *vsState, rcfg RealServer) *rsState {
	rs := &rsState{vs: vs, cfg: rcfg, weight: rcfg.Weight}
	for k := range rcfg.Checks {
		rs.checks = append(rs.checks, newCheckState(rs, rcfg.Checks[k]))
	}
	for _, c := range rs.checks {
		if !c.up {
			rs.numFailed++
		}
	}
	rs.alive = rs.numFailed == 0
	return rs
}

func newCheckState(rs *rsState, c Check) *checkState {
	return &checkState{rs: rs, cfg: c, up: !c.Alpha, target: checkTarget(&c, rs.cfg.Addr)}
}

func checkTarget(c *Check, rs netip.AddrPort) string {
	if c.Spec.Kind() == "MISC_CHECK" {
		if m, ok := c.Spec.(MiscCheck); ok {
			return m.Script.String()
		}
		return ""
	}
	ep := c.Connect.endpoint(rs)
	if c.Spec.Kind() == "PING_CHECK" {
		return ep.Remote.Addr().String()
	}
	return ep.Remote.String()
}

// realWeight clamps an effective weight to what IPVS accepts.
func realWeight(w int) int { return min(max(w, 0), maxWeight) }

func (vs *vsState) aliveWeight() int {
	sum := 0
	for _, rs := range vs.rss {
		if rs.alive {
			sum += realWeight(rs.weight)
		}
	}
	return sum
}

// checkerDecision is update_svr_checker_state: a checker decided its
// server's service is up or down. The server is alive while none of its
// checkers has failed.
func (p *pool) checkerDecision(c *checkState, alive bool) []action {
	rs := c.rs
	if c.up == alive {
		var acts []action
		if !c.hasRun {
			// The first result confirms the starting state. keepalived
			// still announces an alpha checker's first failure.
			if c.cfg.Alpha || !alive {
				acts = rs.notify()
			}
			c.hasRun = true
		}
		return acts
	}
	c.hasRun = true
	var acts []action
	if alive {
		if rs.numFailed <= 1 {
			acts = rs.setAlive(true)
		}
	} else if rs.numFailed == 0 {
		acts = rs.setAlive(false)
	}
	c.up = alive
	if alive {
		if rs.numFailed > 0 {
			rs.numFailed--
		}
	} else {
		rs.numFailed++
	}
	return acts
}

// setWeight is update_svr_wgt: misc_dynamic changed the server's weight.
func (p *pool) setWeight(rs *rsState, w int) []action {
	old := realWeight(rs.weight)
	rs.weight = w
	if realWeight(w) == old {
		return nil
	}
	return rs.vs.updateQuorum(false)
}

// setAlive is perform_svr_state.
func (rs *rsState) setAlive(alive bool) []action {
	if rs.alive == alive {
		return nil
	}
	rs.alive = alive
	acts := rs.notify()
	return append(acts, rs.vs.updateQuorum(false)...)
}

// notify is do_rs_notifies: the script for the server's current state.
func (rs *rsState) notify() []action {
	s, state := rs.cfg.NotifyDown, "down"
	if rs.alive {
		s, state = rs.cfg.NotifyUp, "up"
	}
	if s.IsZero() {
		return nil
	}
	return []action{{script: s, why: fmt.Sprintf("real server %s of %s %s", rs.cfg.Addr, rs.vs.cfg.Name, state)}}
}

// updateQuorum is update_quorum_state: quorum is gained when the alive
// weight reaches quorum+hysteresis and lost when it drops below
// quorum-hysteresis (or to 0). While it is lost the sorry server, if any,
// replaces the real servers. init also brings the sorry server in when
// quorum starts lost.
func (vs *vsState) updateQuorum(init bool) []action {
	w := vs.aliveWeight()
	threshold := vs.quorum + vs.hysteresis
	if vs.quorumUp {
		threshold = vs.quorum - vs.hysteresis
	}
	sorry := vs.cfg.Sorry != nil
	switch {
	case !vs.quorumUp && w >= threshold:
		vs.quorumUp = true
		if sorry && vs.sorryAlive {
			vs.sorryAlive = false
		}
		return vs.quorumNotify(fmt.Sprintf("gained quorum %d+%d=%d <= %d", vs.quorum, vs.hysteresis, threshold, w))
	case (vs.quorumUp && (w == 0 || w < threshold)) || (init && !vs.quorumUp && sorry && !vs.sorryAlive):
		vs.quorumUp = false
		if sorry && !vs.sorryAlive {
			vs.sorryAlive = true
		}
		return vs.quorumNotify(fmt.Sprintf("lost quorum %d-%d=%d > %d", vs.quorum, vs.hysteresis, threshold, w))
	}
	return nil
}

func (vs *vsState) quorumNotify(why string) []action {
	s := vs.cfg.QuorumDown
	if vs.quorumUp {
		s = vs.cfg.QuorumUp
	}
	if s.IsZero() {
		return nil
	}
	return []action{{script: s, why: vs.cfg.Name + ": " + why}}
}

// shutdown is clear_services: every server leaves the pool. With omega,
// alive servers' notify_down and the quorum_down script run.
func (p *pool) shutdown() []action {
	var acts []action
	for _, vs := range p.vss {
		for _, rs := range vs.rss {
			if !rs.alive {
				continue
			}
			rs.alive = false
			if vs.cfg.Omega {
				acts = append(acts, rs.notify()...)
			}
		}
		vs.sorryAlive = false
		vs.quorumUp = false
		if vs.cfg.Omega {
			acts = append(acts, vs.quorumNotify("shutting down")...)
		}
	}
	return acts
}

// backendView is what the forwarder needs of one backend.
type backendView struct {
	addr   netip.AddrPort
	sorry  bool
	state  State
	weight int
}

// view renders what IPVS would hold for the virtual server: alive servers
// with their weight (unless the sorry server replaced them), inhibited
// servers with weight 0, the sorry server while quorum is lost (or with
// weight 0 under sorry_server_inhibit).
func (vs *vsState) view() []backendView {
	out := make([]backendView, 0, len(vs.rss)+1)
	sorry := vs.cfg.Sorry
	displaced := sorry != nil && vs.sorryAlive && !vs.quorumUp
	for _, rs := range vs.rss {
		b := backendView{addr: rs.cfg.Addr, state: StateDown}
		switch {
		case rs.alive && !displaced:
			b.state, b.weight = StateUp, realWeight(rs.weight)
		case rs.cfg.Inhibit:
			b.state = StateDraining
		}
		out = append(out, b)
	}
	if sorry != nil {
		b := backendView{addr: sorry.Addr, sorry: true, state: StateDown}
		switch {
		case vs.sorryAlive:
			b.state, b.weight = StateUp, sorryWeight(sorry)
		case sorry.Inhibit:
			b.state = StateDraining
		}
		out = append(out, b)
	}
	return out
}

func sorryWeight(s *SorryServer) int {
	if s.Weight == 0 {
		return 1
	}
	return realWeight(s.Weight)
}

// fingerprint is the part of a virtual server's state the daemon acts on.
type fingerprint struct {
	quorumUp, sorryAlive bool
	backends             []backendView
}

func (vs *vsState) fingerprint() fingerprint {
	return fingerprint{quorumUp: vs.quorumUp, sorryAlive: vs.sorryAlive, backends: vs.view()}
}

func (f fingerprint) equal(g fingerprint) bool {
	return f.quorumUp == g.quorumUp && f.sorryAlive == g.sorryAlive && slices.Equal(f.backends, g.backends)
}
