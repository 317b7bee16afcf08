package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xkeep/xkeep/test/lab/rig"
)

// timeline prints lines stamped with the time since the lab started.
type timeline struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func (tl *timeline) since(t time.Time) string {
	return fmt.Sprintf("+%.2fs", t.Sub(tl.start).Seconds())
}

// say prints one event.
func (tl *timeline) say(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	fmt.Fprintf(tl.w, "%9s  %s\n", tl.since(time.Now()), fmt.Sprintf(format, args...))
}

// step prints a step's heading.
func (tl *timeline) step(n int, title string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	fmt.Fprintf(tl.w, "%9s  ── step %d: %s\n", tl.since(time.Now()), n, title)
}

// plain prints text without a stamp (tables, explanations).
func (tl *timeline) plain(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	fmt.Fprintf(tl.w, format+"\n", args...)
}

// watcher prints what happens in the background while the story runs,
// when it happens: who holds the VIP on eth0, the notify scripts' lines,
// each daemon's effective priority and view of the real servers (from
// its /metrics), and every few seconds the running count of answers per
// real server. It records the daemons' changes as events the steps time
// themselves by.
type watcher struct {
	tl    *timeline
	vip   netip.Addr
	nodes []*rig.Node

	mu      sync.Mutex
	loads   []*rig.Load
	daemons map[string]*rig.Daemon // by node name; killed ones are removed
	stale   map[string]bool        // nodes whose daemon was killed: their VIP is stale
	owners  string
	notify  map[string]int
	printed rig.Tally
	seen    map[string]string // last value per daemon fact, e.g. "lb2 up lb1" -> "down"
	events  []event
}

// event is a change the watcher saw, e.g. key "lb2 up lb1" value "down".
type event struct {
	at         time.Time
	key, value string
}

func newWatcher(tl *timeline, vip netip.Addr, nodes ...*rig.Node) *watcher {
	return &watcher{tl: tl, vip: vip, nodes: nodes, daemons: map[string]*rig.Daemon{},
		stale: map[string]bool{}, notify: map[string]int{}, seen: map[string]string{}}
}

func (w *watcher) addLoad(l *rig.Load) {
	w.mu.Lock()
	w.loads = append(w.loads, l)
	w.mu.Unlock()
}

// follow starts reading d's metrics.
func (w *watcher) follow(d *rig.Daemon) {
	w.mu.Lock()
	w.daemons[d.Node.Name] = d
	w.mu.Unlock()
}

// killed stops reading the node's daemon and marks its VIP stale.
func (w *watcher) killed(name string) {
	w.mu.Lock()
	delete(w.daemons, name)
	w.stale[name] = true
	w.mu.Unlock()
}

// stopped stops reading the node's daemon.
func (w *watcher) stopped(name string) {
	w.mu.Lock()
	delete(w.daemons, name)
	w.mu.Unlock()
}

// run polls until ctx ends.
func (w *watcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				w.pollDaemons(ctx)
			}
		}
	}()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	counts := time.NewTicker(3 * time.Second)
	defer counts.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-poll.C:
			w.pollVIP()
			w.pollNotify()
		case <-counts.C:
			w.printCounts(false)
		}
	}
}

func (w *watcher) pollVIP() {
	var on []string
	for _, n := range w.nodes {
		ok, err := n.HoldsVIP(w.vip)
		if err != nil {
			continue // the namespace is going away
		}
		if ok {
			w.mu.Lock()
			stale := w.stale[n.Name]
			w.mu.Unlock()
			if stale {
				on = append(on, n.Name+" (stale: its xkeep was killed and its guard has not removed it yet)")
			} else {
				on = append(on, n.Name)
			}
		}
	}
	owners := strings.Join(on, " and ")
	if owners == "" {
		owners = "nobody"
	}
	w.mu.Lock()
	changed := owners != w.owners
	w.owners = owners
	w.mu.Unlock()
	if changed {
		w.tl.say("VIP %s is on %s", w.vip, owners)
	}
}

func (w *watcher) pollNotify() {
	for _, n := range w.nodes {
		lines := n.NotifyLog()
		w.mu.Lock()
		seen := w.notify[n.Name]
		w.notify[n.Name] = len(lines)
		w.mu.Unlock()
		for _, l := range lines[min(seen, len(lines)):] {
			state, _, _ := strings.Cut(l, " ")
			w.tl.say("%s: notify_%s ran (%s)", n.Name, state, l)
		}
	}
}

// pollDaemons scrapes every followed daemon and reports what changed:
// the instance's effective priority and each real server's health.
func (w *watcher) pollDaemons(ctx context.Context) {
	w.mu.Lock()
	daemons := make([]*rig.Daemon, 0, len(w.daemons))
	for _, d := range w.daemons {
		daemons = append(daemons, d)
	}
	w.mu.Unlock()
	sort.Slice(daemons, func(i, j int) bool { return daemons[i].Node.Name < daemons[j].Node.Name })
	for _, d := range daemons {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := d.Metrics(sctx)
		cancel()
		if err != nil {
			continue // starting, stopping or killed
		}
		facts := map[string]string{}
		order := []string{}
		if v, err := m.Value("xkeep_vrrp_effective_priority", "iname", "VI_1"); err == nil {
			k := d.Node.Name + " priority"
			facts[k] = fmt.Sprintf("%.0f", v)
			order = append(order, k)
		}
		for _, n := range w.nodes {
			be := netip.AddrPortFrom(n.Addr, rig.WebPort).String()
			if v, err := m.Value("xkeep_backend_up", "backend", be); err == nil {
				k := d.Node.Name + " up " + n.Name
				facts[k] = map[bool]string{true: "up", false: "DOWN"}[v == 1]
				order = append(order, k)
			}
		}
		now := time.Now()
		var changes []string
		w.mu.Lock()
		first := true
		for _, k := range order {
			if _, ok := w.seen[k]; ok {
				first = false
			}
		}
		for _, k := range order {
			if old, ok := w.seen[k]; ok && old == facts[k] {
				continue
			}
			old, had := w.seen[k]
			w.seen[k] = facts[k]
			w.events = append(w.events, event{at: now, key: k, value: facts[k]})
			what := strings.TrimPrefix(k, d.Node.Name+" ")
			switch {
			case strings.HasPrefix(what, "priority"):
				if had {
					changes = append(changes, fmt.Sprintf("VI_1 effective priority %s (was %s)", facts[k], old))
				} else {
					changes = append(changes, fmt.Sprintf("VI_1 effective priority %s", facts[k]))
				}
			default:
				name := strings.TrimPrefix(what, "up ")
				changes = append(changes, fmt.Sprintf("real server %s %s", name, facts[k]))
			}
		}
		w.mu.Unlock()
		if len(changes) > 0 {
			prefix := d.Node.Name + "'s xkeep: "
			if first {
				prefix = d.Node.Name + "'s xkeep reports: "
			}
			w.tl.say("%s%s", prefix, strings.Join(changes, ", "))
		}
	}
}

// eventAfter returns when the watcher first saw key take value at or
// after t.
func (w *watcher) eventAfter(key, value string, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.key == key && e.value == value && !e.at.Before(t) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// results is every request of every load so far.
func (w *watcher) results() []rig.Result {
	w.mu.Lock()
	loads := append([]*rig.Load(nil), w.loads...)
	w.mu.Unlock()
	var out []rig.Result
	for _, l := range loads {
		out = append(out, l.Results()...)
	}
	return out
}

// printCounts prints the running count when it changed (or always).
func (w *watcher) printCounts(always bool) {
	t := rig.Count(w.results())
	w.mu.Lock()
	same := t.Failures == w.printed.Failures && equalCounts(t.Answers, w.printed.Answers)
	w.printed = t
	w.mu.Unlock()
	if (same && !always) || len(t.Answers)+t.Failures == 0 {
		return
	}
	w.tl.say("requests answered: %s", formatTally(t))
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func formatTally(t rig.Tally) string {
	names := make([]string, 0, len(t.Answers))
	for n := range t.Answers {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d · ", n, t.Answers[n])
	}
	fmt.Fprintf(&b, "failed %d", t.Failures)
	return b.String()
}
