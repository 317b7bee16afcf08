package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xkeep/xkeep/vrrp/packet"
)

// Deps are the Router's connections to the world.
type Deps struct {
	Clock     Clock
	Network   Network
	Addrs     AddressManager
	Announcer Announcer
	Scripts   ScriptRunner
	// Files reads and watches track_file files; nil is LinuxFiles.
	Files  FileWatcher
	Logger *slog.Logger
	// OnStateChange, when set, is called for every instance transition,
	// in order, from a goroutine of the router (not the protocol loop, so
	// a slow hook delays no advert). The daemon attaches and detaches the
	// dataplane from it.
	OnStateChange func(StateChanged)
}

// maxPacketAge bounds how old a kernel receive timestamp may be to be
// believed (a backup reads its socket lazily, up to a Master_Down_Interval
// after arrival); older ones count as received now.
const maxPacketAge = 20 * time.Minute

// StopTimeout bounds a graceful stop: priority 0 adverts and address
// removal happen at once; notify_stop scripts get the rest.
const StopTimeout = 1500 * time.Millisecond

// Router runs VRRP instances: the Machine plus sockets, addresses,
// gratuitous ARP, scripts and timers. Create it with NewRouter, run it
// with Run; Status, Reload and Errors may be called from any goroutine.
type Router struct {
	deps Deps
	log  *slog.Logger

	mu  sync.Mutex // guards m, cfg, insts and errors (Status reads them)
	m   *Machine
	cfg Config
	// insts is the runtime side of each instance.
	insts  map[string]*runInstance
	errors map[packet.Reason]uint64

	conns map[connKey]*conn
	// absent holds the sockets waiting for their interface to appear
	// (their instances are in FAULT meanwhile).
	absent map[connKey]bool
	// links is every link heard of and whether it is up.
	links map[string]bool
	// groups are the multicast groups each socket must receive.
	groups map[connKey][]netip.Addr
	events chan event
	notes  chan StateChanged
	// poll is the epoll loop's state when the dependencies are the real
	// ones (see poll_linux.go); nil runs the portable channel loop.
	poll *poller

	scriptCancel context.CancelFunc
	scriptsWG    sync.WaitGroup
	// fileCancel stops the track_file watch; filesSeen are the files
	// read before (init_file applies to new ones only).
	fileCancel context.CancelFunc
	filesSeen  map[string]bool
	bgWG       sync.WaitGroup // gratuitous ARP and notify goroutines
	// stopped is closed when Run ends, so readers never block on events.
	stopped chan struct{}
}

type connKey struct {
	ifname string
	ipv6   bool
}

type conn struct {
	key connKey
	c   Conn
	// groups are the multicast groups joined (Listen joins the
	// family's VRRP group).
	groups []netip.Addr
}

type runInstance struct {
	cfg InstanceConfig
	key connKey
}

type event struct {
	at     time.Time
	key    connKey
	pkt    *packet.Packet
	reason packet.Reason // a dropped packet
	link   *LinkEvent
	script *ScriptResult
	file   *FileValue
	reload *reloadReq
}

type reloadReq struct {
	cfg  Config
	done chan error
}

// NewRouter checks cfg and returns a router that is not yet running.
func NewRouter(cfg Config, deps Deps) (*Router, error) {
	cfg = cfg.clone()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock()
	}
	if deps.Files == nil {
		deps.Files = LinuxFiles{}
	}
	if deps.Network == nil || deps.Addrs == nil || deps.Announcer == nil || deps.Scripts == nil {
		return nil, errors.New("vrrp router: Network, Addrs, Announcer and Scripts are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{
		deps:    deps,
		log:     log,
		m:       NewMachine(),
		cfg:     cfg,
		insts:   map[string]*runInstance{},
		errors:  map[packet.Reason]uint64{},
		conns:   map[connKey]*conn{},
		absent:  map[connKey]bool{},
		links:   map[string]bool{},
		groups:  map[connKey][]netip.Addr{},
		events:  make(chan event, 256),
		notes:   make(chan StateChanged, 1024),
		stopped: make(chan struct{}),
	}, nil
}

// Status returns a snapshot of every instance.
func (r *Router) Status() []InstanceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m.Status()
}

// Scripts returns every vrrp_script's debounced result.
func (r *Router) Scripts() []ScriptStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m.Scripts()
}

// Files returns the value of every track_file an instance follows, as
// last read.
func (r *Router) Files() []FileStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	tracked := map[string]bool{}
	for _, f := range trackedFiles(r.cfg) {
		tracked[f.Name] = true
	}
	return slices.DeleteFunc(r.m.Files(), func(f FileStatus) bool { return !tracked[f.Name] })
}

// Errors counts packets dropped before they could be matched to an
// instance (malformed, or for a VRID no instance runs), by reason.
func (r *Router) Errors() map[packet.Reason]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[packet.Reason]uint64, len(r.errors))
	for k, v := range r.errors {
		out[k] = v
	}
	return out
}

// Reload applies a new configuration to the running router: new
// instances start, removed ones stop (priority 0, addresses released),
// unchanged ones keep their state and addresses. It returns once applied.
func (r *Router) Reload(ctx context.Context, cfg Config) error {
	cfg = cfg.clone()
	if err := cfg.Validate(); err != nil {
		return err
	}
	req := &reloadReq{cfg: cfg, done: make(chan error, 1)}
	r.post(event{reload: req})
	select {
	case err := <-req.done:
		return err
	case <-r.stopped:
		return errors.New("vrrp router is stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the instances until ctx ends, then stops them gracefully:
// masters send priority 0 and release their addresses, notify_stop
// scripts run, within StopTimeout.
func (r *Router) Run(ctx context.Context) error {
	clock := r.deps.Clock
	if r.pollable() {
		p, err := newPoller()
		if err != nil {
			r.log.Warn("epoll loop unavailable; using the portable loop", "err", err)
		} else {
			r.poll = p
		}
	}
	linkCtx, stopLinks := context.WithCancel(context.Background())
	defer stopLinks()
	links, err := r.deps.Network.Links()
	if err != nil {
		return fmt.Errorf("vrrp: list links: %w", err)
	}
	go r.watchLinks(linkCtx)
	notesDone := make(chan struct{})
	go r.deliverNotes(notesDone)

	now := clock.Now()
	r.mu.Lock()
	for name, up := range links {
		r.links[name] = up
		r.m.Step(now, LinkChanged{Interface: name, Up: up})
	}
	r.m.Ready()
	err = r.apply(now, r.cfg)
	r.mu.Unlock()
	if err != nil {
		r.shutdown(notesDone)
		return err
	}
	if r.poll != nil && !r.cfg.Thread.IsZero() {
		return r.runOnOwnThread(ctx, notesDone)
	}
	if r.poll != nil {
		return r.runPolled(ctx, notesDone)
	}

	timer := clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		next, armed := r.m.NextDeadline()
		r.mu.Unlock()
		if armed {
			timer.Reset(next.Sub(clock.Now()))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			r.shutdown(notesDone)
			return nil
		case <-timer.Chan():
			r.mu.Lock()
			// Adverts already read go in first, with their arrival
			// times: a backup that was kept off the CPU must not take
			// over from a master whose advert came in time.
			for more := true; more; {
				select {
				case ev := <-r.events:
					r.handle(ev)
				default:
					more = false
				}
			}
			r.m.Advance(clock.Now())
			r.do(r.m.Ready())
			r.mu.Unlock()
		case ev := <-r.events:
			r.mu.Lock()
			r.handle(ev)
			// Take whatever else is queued before re-arming the timer.
			for more := true; more; {
				select {
				case ev := <-r.events:
					r.handle(ev)
				default:
					more = false
				}
			}
			r.mu.Unlock()
		}
	}
}

// linkRewatchDelay is how long after a failed link watch (a netlink
// socket overrun, say) the router watches again.
const linkRewatchDelay = time.Second

// watchLinks follows link and address changes until ctx ends. A watch
// that fails is started again: it reports every existing link when it
// starts, and links that vanished meanwhile are reported gone.
func (r *Router) watchLinks(ctx context.Context) {
	for {
		err := r.deps.Network.WatchLinks(ctx, func(ev LinkEvent) {
			r.post(event{link: &ev})
		})
		if ctx.Err() != nil {
			return
		}
		r.log.Error("watching links failed; watching again", "err", err, "in", linkRewatchDelay)
		t := r.deps.Clock.NewTimer(linkRewatchDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.Chan():
		}
		now, err := r.deps.Network.Links()
		if err != nil {
			continue
		}
		r.mu.Lock()
		var gone []string
		for name := range r.links {
			if _, ok := now[name]; !ok {
				gone = append(gone, name)
			}
		}
		r.mu.Unlock()
		for _, name := range gone {
			r.post(event{link: &LinkEvent{Name: name, Gone: true}})
		}
	}
}

func (r *Router) post(ev event) {
	if ev.at.IsZero() {
		ev.at = r.deps.Clock.Now()
	}
	select {
	case r.events <- ev:
		if r.poll != nil {
			r.poll.wake()
		}
	case <-r.stopped:
	}
}

// drainEvents handles every queued event; r.mu is held.
func (r *Router) drainEvents() {
	for {
		select {
		case ev := <-r.events:
			r.handle(ev)
		default:
			return
		}
	}
}

// handle runs one event through the machine; r.mu is held.
func (r *Router) handle(ev event) {
	switch {
	case ev.pkt != nil:
		name := r.instanceFor(ev.key, ev.pkt.VRID, ev.pkt.Dst)
		if name == "" {
			r.errors[packet.ReasonVRID]++
			return
		}
		r.m.Step(ev.at, AdvertReceived{Instance: name, Packet: ev.pkt})
	case ev.reason != "":
		r.errors[ev.reason]++
		return
	case ev.link != nil:
		r.linkChanged(ev.at, *ev.link)
	case ev.script != nil:
		r.m.Step(ev.at, *ev.script)
	case ev.file != nil:
		r.m.Step(ev.at, *ev.file)
	case ev.reload != nil:
		ev.reload.done <- r.apply(r.deps.Clock.Now(), ev.reload.cfg)
		return
	}
	r.do(r.m.Ready())
}

// instanceFor finds the instance an advert is for: its VRID on the
// socket, sent to its multicast group (or, for a unicast instance, to a
// unicast address). Failing that, any instance with the VRID takes it,
// and its checks count the drop.
func (r *Router) instanceFor(key connKey, vrid uint8, dst netip.Addr) string {
	fallback := ""
	for name, ri := range r.insts {
		if ri.key != key || ri.cfg.VRID != vrid {
			continue
		}
		if g := ri.cfg.Group(); g == dst || (!g.IsValid() && !dst.IsMulticast()) {
			return name
		}
		fallback = name
	}
	return fallback
}

// apply resolves addresses, opens and closes sockets, and configures the
// machine; r.mu is held. An instance whose interface is missing goes to
// FAULT and waits for it; any other failure to open a socket is an error
// and changes nothing.
func (r *Router) apply(now time.Time, cfg Config) error {
	insts := map[string]*runInstance{}
	groups := groupsOf(cfg)
	var errs []error
	var opened []connKey
	for i := range cfg.Instances {
		ic := &cfg.Instances[i]
		key := connKey{ic.Interface, ic.IsIPv6()}
		if c, ok := r.conns[key]; !ok {
			if err := r.openConn(key, groups[key]); err != nil {
				errs = append(errs, fmt.Errorf("vrrp_instance %s: %w", ic.Name, err))
				continue
			}
			opened = append(opened, key)
		} else if err := c.setGroups(groups[key]); err != nil {
			errs = append(errs, fmt.Errorf("vrrp_instance %s: socket on %s: %w", ic.Name, key.ifname, err))
			continue
		}
		if !ic.SourceAddr.IsValid() {
			if old, ok := r.insts[ic.Name]; ok && old.key == key && old.cfg.SourceAddr.IsValid() {
				ic.SourceAddr = old.cfg.SourceAddr
			} else if !r.absent[key] {
				ic.SourceAddr = r.primaryAddr(ic)
			}
		}
		insts[ic.Name] = &runInstance{cfg: *ic, key: key}
	}
	if len(errs) > 0 {
		for _, key := range opened {
			r.closeConn(key)
		}
		return errors.Join(errs...)
	}
	r.insts = mergeInsts(r.insts, insts)
	// Missing interfaces (instances' and tracked ones) are FAULT reasons
	// before the instances start.
	missing := map[string]bool{}
	for key := range r.absent {
		missing[key.ifname] = true
	}
	for _, ic := range cfg.Instances {
		for _, ti := range ic.TrackInterfaces {
			if _, ok := r.links[ti.Name]; !ok {
				missing[ti.Name] = true
			}
		}
	}
	for name := range missing {
		r.m.Step(now, LinkChanged{Interface: name, Missing: true})
	}
	r.readFiles(now, cfg)
	r.m.Configure(now, cfg)
	r.do(r.m.Ready())
	r.insts = insts
	r.cfg = cfg
	r.groups = groups
	used := map[connKey]bool{}
	for _, ri := range insts {
		used[ri.key] = true
	}
	for key := range r.conns {
		if !used[key] {
			r.closeConn(key)
		}
	}
	for key := range r.absent {
		if !used[key] {
			delete(r.absent, key)
		}
	}
	r.startScripts(cfg)
	r.watchFiles(cfg)
	r.prepareVIPs()
	return nil
}

// trackedFiles are the track_file blocks some instance follows (only
// those are read, as with keepalived).
func trackedFiles(cfg Config) []FileConfig {
	used := map[string]bool{}
	for _, ic := range cfg.Instances {
		for _, tf := range ic.TrackFiles {
			used[tf.Name] = true
		}
	}
	var out []FileConfig
	for _, f := range cfg.Files {
		if used[f.Name] {
			out = append(out, f)
		}
	}
	return out
}

// readFiles writes the init_file of track files new to this run and
// reads every tracked file, before the instances are configured so they
// start with the values; r.mu is held.
func (r *Router) readFiles(now time.Time, cfg Config) {
	seen := map[string]bool{}
	for _, f := range trackedFiles(cfg) {
		seen[f.Name] = true
		if f.Init && !r.filesSeen[f.Name] {
			if err := r.deps.Files.Init(f.Path, f.InitValue, f.InitOverwrite); err != nil {
				r.log.Warn("track_file init_file failed", "track_file", f.Name, "file", f.Path, "err", err)
			}
		}
		r.m.Step(now, FileValue{File: f.Name, Value: r.readFile(f)})
	}
	r.filesSeen = seen
}

// readFile reads a track file; one that cannot be read (say, removed)
// holds 0.
func (r *Router) readFile(f FileConfig) int64 {
	v, err := r.deps.Files.Read(f.Path)
	if err != nil {
		r.log.Warn("track_file cannot be read; it counts as 0", "track_file", f.Name, "file", f.Path, "err", err)
		return 0
	}
	return v
}

// watchFiles (re)starts the watch on the tracked files; r.mu is held.
func (r *Router) watchFiles(cfg Config) {
	if r.fileCancel != nil {
		r.fileCancel()
		r.fileCancel = nil
	}
	files := trackedFiles(cfg)
	if len(files) == 0 {
		return
	}
	byPath := map[string][]FileConfig{}
	var paths []string
	for _, f := range files {
		if byPath[f.Path] == nil {
			paths = append(paths, f.Path)
		}
		byPath[f.Path] = append(byPath[f.Path], f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.fileCancel = cancel
	r.bgWG.Add(1)
	go func() {
		defer r.bgWG.Done()
		err := r.deps.Files.Watch(ctx, paths, func(path string) {
			for _, f := range byPath[path] {
				r.post(event{file: &FileValue{File: f.Name, Value: r.readFile(f)}})
			}
		})
		if err != nil && ctx.Err() == nil {
			r.log.Error("watching track_file files failed; changes to them are not seen", "err", err)
		}
	}()
}

// vipPreparer is an AddressManager that can get ready for an address
// ahead of adding it (NetlinkAddrs encodes its requests).
type vipPreparer interface {
	PrepareVIP(vip VIP, dev string)
	// ForgetInterface drops what was prepared for a vanished interface.
	ForgetInterface(dev string)
}

// prepareVIPs readies every address a takeover may add, so the takeover
// itself only sends; r.mu is held.
func (r *Router) prepareVIPs() {
	p, ok := r.deps.Addrs.(vipPreparer)
	if !ok {
		return
	}
	for _, ic := range r.cfg.Instances {
		if r.absent[connKey{ic.Interface, ic.IsIPv6()}] {
			continue
		}
		for _, v := range ic.AllVIPs() {
			p.PrepareVIP(v, ic.Interface)
		}
	}
}

// primaryAddr is the source address of an instance that configures none.
func (r *Router) primaryAddr(ic *InstanceConfig) netip.Addr {
	a, err := r.deps.Network.PrimaryAddr(ic.Interface, ic.IsIPv6())
	if err != nil {
		r.log.Warn("no source address: the instance stays in FAULT until its interface has one",
			"instance", ic.Name, "interface", ic.Interface, "err", err)
	}
	return a
}

// groupsOf lists the multicast groups each socket must receive.
func groupsOf(cfg Config) map[connKey][]netip.Addr {
	out := map[connKey][]netip.Addr{}
	for i := range cfg.Instances {
		ic := &cfg.Instances[i]
		key := connKey{ic.Interface, ic.IsIPv6()}
		gs := out[key]
		if g := ic.Group(); g.IsValid() && !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
		slices.SortFunc(gs, netip.Addr.Compare)
		out[key] = gs
	}
	return out
}

// setGroups makes the socket receive exactly groups.
func (c *conn) setGroups(groups []netip.Addr) error {
	if slices.Equal(c.groups, groups) {
		return nil
	}
	if err := c.c.SetGroups(groups); err != nil {
		return err
	}
	c.groups = slices.Clone(groups)
	return nil
}

// openConn opens the socket of key, receiving groups; a missing
// interface leaves it absent (no error). r.mu is held.
func (r *Router) openConn(key connKey, groups []netip.Addr) error {
	c, err := r.deps.Network.Listen(key.ifname, key.ipv6)
	if errors.Is(err, ErrNoInterface) {
		if !r.absent[key] {
			r.log.Warn("interface missing: its instances wait in FAULT until it appears", "interface", key.ifname, "err", err)
		}
		r.absent[key] = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("open VRRP socket on %s: %w", key.ifname, err)
	}
	def := packet.GroupIPv4
	if key.ipv6 {
		def = packet.GroupIPv6
	}
	cn := &conn{key: key, c: c, groups: []netip.Addr{def}}
	if err := cn.setGroups(groups); err != nil {
		c.Close()
		return fmt.Errorf("VRRP socket on %s: %w", key.ifname, err)
	}
	if r.poll != nil {
		if err := r.poll.add(cn); err != nil {
			c.Close()
			return fmt.Errorf("poll VRRP socket on %s: %w", key.ifname, err)
		}
	} else {
		go r.read(cn)
	}
	r.conns[key] = cn
	delete(r.absent, key)
	return nil
}

// closeConn closes the socket of key; r.mu is held.
func (r *Router) closeConn(key connKey) {
	c, ok := r.conns[key]
	if !ok {
		return
	}
	if r.poll != nil {
		r.poll.remove(c)
	}
	c.c.Close()
	delete(r.conns, key)
}

// linkChanged follows a link: a vanished instance interface closes its
// sockets (they are bound to the old link) and is a FAULT reason; when it
// is back, its sockets open again and unresolved source addresses are
// looked up, as they are when an address is added to it. r.mu is held.
func (r *Router) linkChanged(at time.Time, ev LinkEvent) {
	name := ev.Name
	if ev.AddrAdded {
		r.resolveSources(at, name)
		return
	}
	if ev.Gone {
		delete(r.links, name)
		if p, ok := r.deps.Addrs.(vipPreparer); ok {
			p.ForgetInterface(name)
		}
		for key := range r.conns {
			if key.ifname == name {
				r.closeConn(key)
				r.absent[key] = true
				r.log.Warn("interface gone: its instances wait in FAULT until it returns", "interface", name)
			}
		}
		r.m.Step(at, LinkChanged{Interface: name, Missing: true})
		return
	}
	r.links[name] = ev.Up
	missing := false
	for key := range r.absent {
		if key.ifname != name {
			continue
		}
		if err := r.openConn(key, r.groups[key]); err != nil {
			r.log.Error("interface is back but its VRRP socket cannot be opened; its instances stay in FAULT", "interface", name, "err", err)
		}
		missing = missing || r.absent[key]
	}
	if !missing {
		r.resolveSources(at, name)
		r.prepareVIPs()
	}
	r.m.Step(at, LinkChanged{Interface: name, Up: ev.Up, Missing: missing})
}

// resolveSources looks up the source address of the instances on ifname
// that have none yet (their interface was missing or had no address).
func (r *Router) resolveSources(at time.Time, ifname string) {
	changed := false
	for i := range r.cfg.Instances {
		ic := &r.cfg.Instances[i]
		ri, ok := r.insts[ic.Name]
		if ic.Interface != ifname || ic.SourceAddr.IsValid() || !ok {
			continue
		}
		a, err := r.deps.Network.PrimaryAddr(ic.Interface, ic.IsIPv6())
		if err != nil {
			continue
		}
		ic.SourceAddr, ri.cfg.SourceAddr = a, a
		changed = true
	}
	if changed {
		r.m.Configure(at, r.cfg)
	}
}

// mergeInsts keeps removed instances known while their last actions
// (priority 0, address removal) run.
func mergeInsts(old, cur map[string]*runInstance) map[string]*runInstance {
	out := make(map[string]*runInstance, len(old)+len(cur))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range cur {
		if o, ok := old[k]; ok && o.key != v.key {
			// A restarted instance: its stop actions use the old socket.
			continue
		}
		out[k] = v
	}
	return out
}

func (r *Router) read(c *conn) {
	for {
		p, age, err := c.c.Read()
		at := r.deps.Clock.Now()
		if age > 0 && age < maxPacketAge {
			at = at.Add(-age)
		}
		if err != nil {
			var de *packet.DecodeError
			if errors.As(err, &de) {
				r.post(event{at: at, key: c.key, reason: de.Reason})
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("VRRP socket read failed", "interface", c.key.ifname, "err", err)
			}
			return
		}
		r.post(event{at: at, key: c.key, pkt: p})
	}
}

// do carries out the machine's actions; r.mu is held.
func (r *Router) do(actions []Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case SendAdvert:
			r.sendAdvert(a)
		case AddVIPs:
			ri := r.insts[a.Instance]
			for _, v := range a.VIPs {
				if err := r.deps.Addrs.AddVIP(v, ri.cfg.Interface); err != nil {
					r.log.Error("add virtual address", "instance", a.Instance, "vip", v.String(), "err", err)
				}
			}
		case RemoveVIPs:
			ri := r.insts[a.Instance]
			for _, v := range a.VIPs {
				if err := r.deps.Addrs.RemoveVIP(v, ri.cfg.Interface); err != nil {
					r.log.Error("remove virtual address", "instance", a.Instance, "vip", v.String(), "err", err)
				}
			}
		case SendGARP:
			r.garp(a)
		case StateChanged:
			r.log.Info("state change", "instance", a.Instance, "from", a.From.String(), "to", a.To.String(),
				"priority", a.Priority, "reason", a.Reason)
			if ri, ok := r.insts[a.Instance]; ok {
				r.notify(ri.cfg.Notify, "INSTANCE", a.Instance, a.To, a.Priority)
			}
			select {
			case r.notes <- a:
			default:
				r.log.Warn("state change hook is behind; dropping a notification", "instance", a.Instance)
			}
		case GroupStateChanged:
			r.log.Info("sync group state change", "group", a.Group, "from", a.From.String(), "to", a.To.String())
			for _, g := range r.cfg.SyncGroups {
				if g.Name == a.Group {
					r.notify(g.Notify, "GROUP", a.Group, a.To, 0)
				}
			}
		case PriorityChanged:
			r.log.Info("priority change", "instance", a.Instance, "base", a.Base, "effective", a.Effective)
		case LowerPriorityReceived:
			r.log.Info("master heard a lower priority", "instance", a.Instance, "from", a.From.String(), "priority", a.Priority)
			if ri, ok := r.insts[a.Instance]; ok && ri.cfg.Notify.MasterRxLowerPri != "" {
				r.runNotify(SplitCommand(ri.cfg.Notify.MasterRxLowerPri), a.Instance, "MASTER_RX_LOWER_PRI")
			}
		}
	}
}

func (r *Router) sendAdvert(a SendAdvert) {
	ri, ok := r.insts[a.Instance]
	if !ok {
		return
	}
	c, ok := r.conns[ri.key]
	if !ok {
		return
	}
	cfg := &ri.cfg
	if !cfg.SourceAddr.IsValid() {
		return // the machine keeps such an instance in FAULT; nothing to send from
	}
	adv := packet.Advert{Version: uint8(cfg.Version), VRID: cfg.VRID, Priority: a.Priority,
		Interval: cfg.AdvertInterval, AuthType: cfg.AuthType}
	if cfg.AuthType == packet.AuthPass {
		adv.AuthData = packet.AuthPassword(cfg.AuthPass)
	}
	for _, v := range cfg.VIPs {
		adv.Addrs = append(adv.Addrs, v.Prefix.Addr())
	}
	dsts, ttl := []netip.Addr{cfg.Group()}, uint8(packet.TTL)
	if len(cfg.UnicastPeers) > 0 {
		dsts, ttl = cfg.UnicastPeers, cfg.UnicastTTL
	}
	for _, dst := range dsts {
		msg, err := adv.Marshal(cfg.SourceAddr, dst, cfg.Checksum)
		if err == nil {
			err = c.c.Write(cfg.SourceAddr, dst, ttl, msg)
		}
		if err != nil {
			r.log.Warn("send advert", "instance", a.Instance, "to", dst.String(), "err", err)
		}
	}
}

func (r *Router) garp(a SendGARP) {
	ri, ok := r.insts[a.Instance]
	if !ok {
		return
	}
	interval := ri.cfg.GARP.Interval
	announce := r.deps.Announcer
	clock := r.deps.Clock
	log := r.log
	// One round is one Announce per interface, with all its addresses.
	var devs []string
	byDev := map[string][]netip.Addr{}
	for _, v := range a.VIPs {
		dev := v.Dev
		if dev == "" {
			dev = ri.cfg.Interface
		}
		if _, ok := byDev[dev]; !ok {
			devs = append(devs, dev)
		}
		byDev[dev] = append(byDev[dev], v.Prefix.Addr())
	}
	r.bgWG.Add(1)
	go func() {
		defer r.bgWG.Done()
		for i := range a.Count {
			if i > 0 && interval > 0 {
				t := clock.NewTimer(interval)
				<-t.Chan()
				t.Stop()
			}
			for _, dev := range devs {
				if err := announce.Announce(dev, byDev[dev]); err != nil {
					log.Warn("gratuitous ARP/NA", "instance", a.Instance, "dev", dev, "err", err)
					return
				}
			}
		}
	}()
}

// notify runs the notify scripts for a state: the state's own one, and
// `notify` with kind, name, state and priority appended.
func (r *Router) notify(n NotifyConfig, kind, name string, to State, prio uint8) {
	var cmds [][]string
	own := map[State]string{StateMaster: n.Master, StateBackup: n.Backup, StateFault: n.Fault, StateStop: n.Stop}[to]
	if own != "" {
		cmds = append(cmds, SplitCommand(own))
	}
	if n.Any != "" {
		cmds = append(cmds, append(SplitCommand(n.Any), kind, name, to.String(), strconv.Itoa(int(prio))))
	}
	for _, argv := range cmds {
		r.runNotify(argv, name, to.String())
	}
}

// runNotify runs a notify script in the background.
func (r *Router) runNotify(argv []string, name, event string) {
	if len(argv) == 0 {
		return
	}
	cmd := Command{Argv: argv, User: r.cfg.ScriptUser, Timeout: StopTimeout}
	r.bgWG.Add(1)
	go func() {
		defer r.bgWG.Done()
		if err := r.deps.Scripts.Run(context.Background(), cmd); err != nil {
			r.log.Warn("notify script", "name", name, "state", event, "script", strings.Join(argv, " "), "err", err)
		}
	}()
}

func (r *Router) deliverNotes(done chan struct{}) {
	defer close(done)
	for sc := range r.notes {
		if r.deps.OnStateChange != nil {
			r.deps.OnStateChange(sc)
		}
	}
}

// startScripts (re)starts the vrrp_script runners; r.mu is held.
func (r *Router) startScripts(cfg Config) {
	if r.scriptCancel != nil {
		r.scriptCancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.scriptCancel = cancel
	used := map[string]bool{}
	for _, ic := range cfg.Instances {
		for _, ts := range ic.TrackScripts {
			used[ts.Name] = true
		}
	}
	for _, sc := range cfg.Scripts {
		if !used[sc.Name] {
			continue
		}
		user := sc.User
		if user == "" {
			user = cfg.ScriptUser
		}
		cmd := Command{Argv: SplitCommand(sc.Command), User: user, Timeout: sc.Timeout}
		r.scriptsWG.Add(1)
		go r.runScript(ctx, sc, cmd)
	}
}

func (r *Router) runScript(ctx context.Context, sc ScriptConfig, cmd Command) {
	defer r.scriptsWG.Done()
	t := r.deps.Clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		err := r.deps.Scripts.Run(ctx, cmd)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrInsecureScript) {
			r.log.Error("refusing to run vrrp_script: others can change it (fix its permissions; xkeep run --allow-insecure-scripts runs it anyway)",
				"script", sc.Name, "command", sc.Command, "err", err)
			return
		}
		r.post(event{script: &ScriptResult{Script: sc.Name, OK: err == nil}})
		t.Reset(sc.Interval)
	}
}

// shutdown stops every instance and releases everything within
// StopTimeout.
func (r *Router) shutdown(notesDone chan struct{}) {
	r.mu.Lock()
	if r.scriptCancel != nil {
		r.scriptCancel()
	}
	if r.fileCancel != nil {
		r.fileCancel()
	}
	r.m.Step(r.deps.Clock.Now(), Shutdown{})
	r.do(r.m.Ready())
	r.mu.Unlock()
	close(r.stopped)
	close(r.notes)
	waited := make(chan struct{})
	go func() {
		r.bgWG.Wait()
		<-notesDone
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(StopTimeout):
		r.log.Warn("stop: notify scripts or hooks still running after the stop timeout; leaving them")
	}
	r.mu.Lock()
	for k, c := range r.conns {
		if r.poll != nil {
			r.poll.remove(c)
		}
		c.c.Close()
		delete(r.conns, k)
	}
	if r.poll != nil {
		r.poll.close()
	}
	r.mu.Unlock()
	r.scriptsWG.Wait()
}

// SplitCommand splits a keepalived script line into words: blanks
// separate them, single or double quotes group them, a backslash escapes
// the next character.
func SplitCommand(s string) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
