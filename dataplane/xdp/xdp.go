// Package xdp is xkeep's XDP dataplane: it loads the direct-routing
// balancer in bpf/ and drives it from a declarative desired state.
//
// New loads the program and its maps (reusing pinned ones), Apply attaches
// it to the interfaces that carry served VIPs and fills the maps, Stats
// sums the per-CPU counters. There are two ways to stop:
//
//   - Close detaches the program and removes the pins: forwarding stops and
//     nothing is left behind.
//   - Release only closes this process's handles. With a PinDir the XDP
//     links and maps stay pinned, so the program keeps forwarding with the
//     same flow table until the next daemon calls New with the same PinDir:
//     it adopts the pinned maps and links, swaps its own program in, and its
//     first Apply keeps every service's and backend's id, so established
//     flows keep their backends. Without a PinDir, Release is Close.
//
// # What the program does
//
// Per frame: Ethernet, one 802.1Q tag, IPv4 or IPv6 (hop-by-hop, routing,
// destination options, fragment and AH headers skipped, up to six), then
// TCP/UDP/SCTP ports or an ICMP error's quoted header. Anything that is not
// for a service's VIP:port/protocol, ARP and VRRP included, passes to the
// stack untouched; malformed frames pass too, counted by reason. A frame
// of a served service goes to a backend with its MACs rewritten (XDP_TX,
// or a devmap redirect when the backend is behind another interface); a
// backend that is this host gets XDP_PASS.
//
// The hit path reads a VIP prefilter bit, the flow table and the backend,
// nothing else: services are looked up for new or stale flows only, and a
// service's "served" state is mirrored into its backends' entries.
//
// # Approximations, on purpose
//
//   - rr and wrr keep one cursor per CPU: each CPU walks the whole slot
//     list, so the split is exact per CPU, not across CPUs.
//   - wrr and sh lists longer than Options.MaxSlots are scaled down,
//     rounding the weights.
//   - lc/wlc compare active-flow counts kept in a map: +1 for a new flow,
//     -1 on FIN/RST or when a flow is found expired. Flows the LRU evicts or
//     that end silently are subtracted when Sweep recounts. With more than
//     32 backends a choice compares a random window of 32.
//   - The program's clock is jiffies (see clock.go): flow and persistence
//     timeouts are exact to a tick, and last-seen times are rewritten at
//     most once a second, so "idle since" is exact to a second.
//   - Fragments carry no ports: all pieces of a datagram go to one backend
//     by a hash of the client address (or its persistence pin) over the
//     service that owns its VIP/protocol (the port-0 service, else the
//     lowest port). They never enter the flow table.
//   - Routes to backends are looked up when a backend first appears (and
//     again while the lookup fails); MAC changes are followed from the
//     kernel's neighbour table, but a backend that moves to another
//     interface needs to be removed and re-added.
//   - VLANs: the program rewrites an 802.1Q tag's id when the backend sits
//     on another VLAN; it does not add or remove tags (such frames pass).
package xdp

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xkeep/xkeep/dataplane"
)

// Dataplane is the XDP implementation of dataplane.Dataplane. Its methods
// are safe for concurrent use.
type Dataplane struct {
	log       *slog.Logger
	opts      Options
	host      *host
	clock     *clockProbe
	objs      *balancerObjects
	innerSpec *ebpf.MapSpec
	statNames []string

	mu       sync.Mutex
	closed   bool
	cfg      balancerConfig
	services map[dataplane.ServiceKey]*svcState
	svcIDs   *idPool
	beIDs    *idPool
	gens     []uint32 // backends[id].gen, mirrored
	frags    map[balancerFragKey]balancerService
	filter   []uint64 // the VIP prefilter as written
	txPorts  map[uint32]bool
	links    map[int]link.Link // by attach ifindex
	routes   map[netip.Addr]*route
	neigh    map[neighKey]net.HardwareAddr
	adopted  map[netip.Addr]net.HardwareAddr // MACs found in pinned maps at start
	last     dataplane.DesiredState          // for re-applying after a neighbour change

	pinLock      *os.File // flock on PinDir, held while open
	stop         chan struct{}
	leaseChanged chan struct{}
	wg           sync.WaitGroup
}

var _ dataplane.Dataplane = (*Dataplane)(nil)

// svcState is what the maps hold for one service.
type svcState struct {
	key      dataplane.ServiceKey
	id       uint32
	value    balancerService
	valueSet bool
	table    []uint32
	tableSet bool
	backends map[dataplane.BackendKey]*beState
}

// beState is what the maps hold for one backend of one service.
type beState struct {
	key   dataplane.BackendKey
	id    uint32
	value balancerBackend
}

// route is a cached answer of the routing table for a backend address.
type route struct {
	egress
	err error
}

// New loads the program and its maps. It attaches nothing: Apply attaches
// to the interfaces of the served VIPs.
func New(opts Options) (*Dataplane, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var pinLock *os.File
	if opts.PinDir != "" {
		if err := ensureBPFFS(opts.PinDir); err != nil {
			return nil, fmt.Errorf("xdp: %w", err)
		}
		if pinLock, err = lockPinDir(opts.PinDir); err != nil {
			return nil, fmt.Errorf("xdp: %w", err)
		}
	}
	// Until the Dataplane owns it, the lock goes with a failed New.
	opened := false
	defer func() {
		if !opened && pinLock != nil {
			pinLock.Close()
		}
	}()
	clock, err := newClockProbe()
	if err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	hz, err := clock.detectHZ()
	if err != nil {
		clock.close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	h, err := openHost(opts.NetNS)
	if err != nil {
		clock.close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	cfg := balancerConfig{
		Hz:         hz,
		TcpTimeout: ticks(opts.TCPTimeout, hz),
		UdpTimeout: ticks(opts.UDPTimeout, hz),
	}
	// The lease starts before the program can attach (or replace an
	// adopted one), so a restart never pauses forwarding.
	if cfg.LeaseUntil, err = clock.leaseUntil(opts.Lease, hz); err != nil {
		clock.close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	objs, spec, err := loadObjects(opts, cfg)
	if err != nil {
		clock.close()
		h.close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	names, err := statNames(spec)
	if err != nil {
		objs.Close()
		clock.close()
		h.close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	inner := spec.Maps[balancerMapSchedTables].InnerMap.Copy()
	inner.Name = "sched_table"
	d := &Dataplane{
		log:       opts.Logger,
		opts:      opts,
		host:      h,
		clock:     clock,
		objs:      objs,
		innerSpec: inner,
		statNames: names,
		cfg:       cfg,
		services:  make(map[dataplane.ServiceKey]*svcState),
		svcIDs:    newIDPool(opts.MaxServices),
		beIDs:     newIDPool(opts.MaxBackends),
		gens:      make([]uint32, opts.MaxBackends),
		frags:     make(map[balancerFragKey]balancerService),
		filter:    make([]uint64, vipFilterWords),
		txPorts:   make(map[uint32]bool),
		links:     make(map[int]link.Link),
		routes:    make(map[netip.Addr]*route),
		neigh:     make(map[neighKey]net.HardwareAddr),
		adopted:   make(map[netip.Addr]net.HardwareAddr),
		stop:      make(chan struct{}),

		leaseChanged: make(chan struct{}, 1),
	}
	if opts.PinDir != "" {
		if err := d.adopt(); err != nil {
			d.shutdown(false)
			return nil, fmt.Errorf("xdp: adopt pinned state in %s: %w", opts.PinDir, err)
		}
	}
	if err := d.host.watchNeighbours(d.stop, &d.wg, d.neighbourError, d.neighbourChanged); err != nil {
		d.shutdown(false)
		return nil, fmt.Errorf("xdp: %w", err)
	}
	if opts.SweepInterval > 0 {
		d.wg.Add(1)
		go d.sweepLoop()
	}
	d.wg.Add(1)
	go d.leaseLoop()
	d.pinLock, opened = pinLock, true
	return d, nil
}

// Program returns the loaded XDP program (for tests and benchmarks that
// run it with BPF_PROG_TEST_RUN). The Dataplane owns it.
func (d *Dataplane) Program() *ebpf.Program { return d.objs.XdpBalancer }

// Apply makes the maps and attachments match the desired state. It is
// idempotent and changes only the difference. Invalid services are
// reported in the error and left as they were; everything else is applied.
func (d *Dataplane) Apply(ds dataplane.DesiredState) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("xdp: apply after close")
	}
	d.last = cloneState(ds)
	return d.apply(d.last, true)
}

func (d *Dataplane) apply(ds dataplane.DesiredState, probe bool) error {
	var errs []error
	served, ifaces, err := d.servedSet(ds.Served)
	if err != nil {
		errs = append(errs, err)
	}

	want := make(map[dataplane.ServiceKey]dataplane.Service, len(ds.Services))
	keep := make(map[dataplane.ServiceKey]bool)
	for _, s := range ds.Services {
		if _, dup := want[s.Key]; dup {
			errs = append(errs, fmt.Errorf("service %s: listed twice", s.Key))
			continue
		}
		if err := d.validate(s); err != nil {
			errs = append(errs, err)
			keep[s.Key] = true // keep serving it as it was
			continue
		}
		want[s.Key] = s
	}
	var removed []*svcState
	for key, st := range d.services {
		if _, ok := want[key]; !ok && !keep[key] {
			removed = append(removed, st)
		}
	}
	if err := d.removeServices(removed); err != nil {
		errs = append(errs, err)
	}

	d.resolve(want, probe)

	keys := make([]dataplane.ServiceKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareServiceKeys)
	var pending []*pendingService
	for _, k := range keys {
		p, err := d.prepareService(want[k], served[k.Addr])
		if err != nil {
			errs = append(errs, err)
		}
		if p != nil {
			pending = append(pending, p)
		}
	}
	if err := d.installTables(pending); err != nil {
		errs = append(errs, err)
	}
	for _, p := range pending {
		if err := d.writeService(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.syncFragments(); err != nil {
		errs = append(errs, err)
	}
	if err := d.syncVIPFilter(); err != nil {
		errs = append(errs, err)
	}
	if err := d.syncTxPorts(); err != nil {
		errs = append(errs, err)
	}
	if err := d.syncLinks(ifaces); err != nil {
		errs = append(errs, err)
	}
	d.pruneRoutes()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp apply: %w", err)
	}
	return nil
}

func compareServiceKeys(a, b dataplane.ServiceKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

func cloneState(ds dataplane.DesiredState) dataplane.DesiredState {
	out := dataplane.DesiredState{
		Services: make([]dataplane.Service, len(ds.Services)),
		Served:   slices.Clone(ds.Served),
	}
	for i, s := range ds.Services {
		s.Backends = slices.Clone(s.Backends)
		s.SchedulerFlags = slices.Clone(s.SchedulerFlags)
		out.Services[i] = s
	}
	return out
}

// servedSet returns the served VIPs and the interfaces to attach to, by
// attach ifindex (a VLAN device's parent: the program sees tagged frames).
func (d *Dataplane) servedSet(vips []dataplane.ServedVIP) (map[netip.Addr]bool, map[int]iface, error) {
	served := make(map[netip.Addr]bool, len(vips))
	ifaces := make(map[int]iface)
	var errs []error
	for _, v := range vips {
		if !v.Addr.IsValid() || v.Interface == "" {
			errs = append(errs, fmt.Errorf("served VIP %q on %q: need an address and an interface", v.Addr, v.Interface))
			continue
		}
		served[v.Addr] = true
		ifc, err := d.host.ifaceByName(v.Interface)
		if err != nil {
			errs = append(errs, fmt.Errorf("served VIP %s: %w", v.Addr, err))
			continue
		}
		ifaces[ifc.attach] = ifc
	}
	return served, ifaces, errors.Join(errs...)
}

var schedulers = map[dataplane.Scheduler]balancerSched{
	dataplane.RoundRobin:         balancerSchedSCHED_RR,
	dataplane.WeightedRoundRobin: balancerSchedSCHED_WRR,
	dataplane.SourceHash:         balancerSchedSCHED_SH,
	dataplane.Maglev:             balancerSchedSCHED_MH,
	dataplane.LeastConn:          balancerSchedSCHED_LC,
	dataplane.WeightedLeastConn:  balancerSchedSCHED_WLC,
}

// schedulerOf is the service's scheduler; empty means wlc, IPVS's default.
func schedulerOf(s dataplane.Service) dataplane.Scheduler {
	if s.Scheduler == "" {
		return dataplane.WeightedLeastConn
	}
	return s.Scheduler
}

func (d *Dataplane) validate(s dataplane.Service) error {
	k := s.Key
	switch {
	case k.FWMark != 0:
		return fmt.Errorf("service %s: xdp cannot see firewall marks (use the ipvs dataplane)", k)
	case !k.Addr.IsValid():
		return fmt.Errorf("service %s: no virtual address", k)
	case k.Protocol != dataplane.TCP && k.Protocol != dataplane.UDP && k.Protocol != dataplane.SCTP:
		return fmt.Errorf("service %s: protocol %s not supported (want TCP, UDP or SCTP)", k, k.Protocol)
	case s.Forward != "" && s.Forward != dataplane.DirectRouting:
		return fmt.Errorf("service %s: lb_kind %s not supported by xdp (DR only; use the ipvs dataplane)", k, s.Forward)
	case s.Persistence < 0:
		return fmt.Errorf("service %s: negative persistence timeout %v", k, s.Persistence)
	}
	if _, ok := schedulers[schedulerOf(s)]; !ok {
		return fmt.Errorf("service %s: lb_algo %q not supported by xdp (want rr, wrr, sh, mh, lc, wlc)", k, s.Scheduler)
	}
	maxBits := 128
	if k.Addr.Is4() {
		maxBits = 32
	}
	if s.PersistenceBits < 0 || s.PersistenceBits > maxBits {
		return fmt.Errorf("service %s: persistence granularity /%d out of range (0..%d)", k, s.PersistenceBits, maxBits)
	}
	seen := make(map[dataplane.BackendKey]bool, len(s.Backends))
	for _, b := range s.Backends {
		switch {
		case !b.Addr.IsValid():
			return fmt.Errorf("service %s: backend without an address", k)
		case b.Addr.Is4() != k.Addr.Is4():
			return fmt.Errorf("service %s: backend %s: address family differs from the VIP's (DR forwards the packet unchanged)", k, b.BackendKey)
		case seen[b.BackendKey]:
			return fmt.Errorf("service %s: backend %s listed twice", k, b.BackendKey)
		case b.Weight < 0:
			return fmt.Errorf("service %s: backend %s: negative weight %d", k, b.BackendKey, b.Weight)
		case b.Forward != "" && b.Forward != dataplane.DirectRouting:
			return fmt.Errorf("service %s: backend %s: lb_kind %s not supported by xdp (DR only)", k, b.BackendKey, b.Forward)
		}
		seen[b.BackendKey] = true
	}
	return nil
}

// resolve finds how every wanted backend is reached (routing table) and its
// MAC (neighbour table, else an ARP/NDP probe when probe is set).
func (d *Dataplane) resolve(want map[dataplane.ServiceKey]dataplane.Service, probe bool) {
	var missing []neighKey
	dumped := false
	links := make(map[int]iface)
	for _, s := range want {
		for _, b := range s.Backends {
			r := d.routes[b.Addr]
			if r == nil || r.err != nil {
				e, err := d.host.egressOf(b.Addr, links)
				r = &route{egress: e, err: err}
				d.routes[b.Addr] = r
			}
			if r.err != nil || r.local {
				continue
			}
			nk := neighKey{r.via.index, b.Addr}
			if _, ok := d.neigh[nk]; ok {
				continue
			}
			if !dumped {
				dumped = true
				if table, err := d.host.neighbours(); err != nil {
					d.log.Warn("read neighbour table", "error", err)
				} else {
					for k, mac := range table {
						d.neigh[k] = mac
					}
				}
				if _, ok := d.neigh[nk]; ok {
					continue
				}
			}
			missing = append(missing, nk)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.SortFunc(missing, func(a, b neighKey) int { return cmp.Or(cmp.Compare(a.link, b.link), a.addr.Compare(b.addr)) })
	missing = slices.Compact(missing)
	if probe {
		for k, mac := range d.probe(missing) {
			d.neigh[k] = mac
		}
	}
	for _, k := range missing {
		if _, ok := d.neigh[k]; ok {
			continue
		}
		if mac, ok := d.adopted[k.addr]; ok {
			d.neigh[k] = mac // what the previous daemon used; the watch corrects it
			continue
		}
		d.log.Warn("backend MAC address unknown: not sending it new flows until it answers", "backend", k.addr)
	}
}

// probe asks for the MACs of the keys, one interface at a time in parallel.
func (d *Dataplane) probe(keys []neighKey) map[neighKey]net.HardwareAddr {
	byLink := make(map[int][]netip.Addr)
	for _, k := range keys {
		byLink[k.link] = append(byLink[k.link], k.addr)
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[neighKey]net.HardwareAddr)
	)
	for l, addrs := range byLink {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found, err := d.host.probe(l, addrs, d.opts.ProbeTimeout)
			if err != nil {
				d.log.Warn("probe backend MAC addresses", "interface", l, "error", err)
			}
			mu.Lock()
			for a, mac := range found {
				out[neighKey{l, a}] = mac
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (d *Dataplane) pruneRoutes() {
	used := make(map[netip.Addr]bool)
	for _, st := range d.services {
		for k := range st.backends {
			used[k.Addr] = true
		}
	}
	for a := range d.routes {
		if !used[a] {
			delete(d.routes, a)
		}
	}
}

// backendValue is the backends map entry for b as things stand, and
// whether it may take new flows.
func (d *Dataplane) backendValue(st *svcState, id uint32, b dataplane.Backend, served bool) (balancerBackend, bool) {
	v := balancerBackend{
		Gen:     d.gens[id],
		Weight:  uint32(b.Weight),
		Service: st.id,
		Addr:    addrWords(b.Addr),
		Port:    netPort(b.Port),
		Family:  familyOf(b.Addr),
		Flags:   uint16(balancerBackendFlagsBE_F_ALLOCATED),
	}
	r := d.routes[b.Addr]
	reachable := false
	switch {
	case r == nil || r.err != nil:
	case r.local:
		v.Flags |= uint16(balancerBackendFlagsBE_F_LOCAL)
		reachable = true
	default:
		if mac, ok := d.neigh[neighKey{r.via.index, b.Addr}]; ok {
			copy(v.Mac[:], mac)
			copy(v.SrcMac[:], r.via.mac)
			v.Ifindex = uint32(r.via.attach)
			v.Vlan = r.via.vlan
			reachable = true
		}
	}
	if reachable && b.State != dataplane.BackendDown {
		v.Flags |= uint16(balancerBackendFlagsBE_F_FORWARD)
	}
	if served {
		v.Flags |= uint16(balancerBackendFlagsBE_F_SERVED)
	}
	return v, reachable && b.State == dataplane.BackendUp && b.Weight > 0
}

// pendingService is a service whose backends are written and whose new
// scheduling table (if it changed) is built, waiting to be installed.
type pendingService struct {
	st       *svcState
	value    balancerService
	table    []uint32
	tableMap *ebpf.Map // nil: the installed table is current
	failed   bool      // the table could not be built or installed
}

// prepareService allocates ids, writes the backends and builds the
// scheduling table of s. The table is installed by installTables and the
// service entry written by writeService, so that one Apply swaps all its
// tables in a single update (the kernel waits for running programs after
// every update of a map-in-map: ~10 ms each).
func (d *Dataplane) prepareService(s dataplane.Service, served bool) (*pendingService, error) {
	st := d.services[s.Key]
	if st == nil {
		id, ok := d.svcIDs.get()
		if !ok {
			return nil, fmt.Errorf("service %s: more than %d services (raise MaxServices)", s.Key, d.opts.MaxServices)
		}
		st = &svcState{key: s.Key, id: id, backends: make(map[dataplane.BackendKey]*beState)}
		d.services[s.Key] = st
		if err := d.zeroServiceCounters(id); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Key, err)
		}
	}
	p := &pendingService{st: st}

	wantBE := make(map[dataplane.BackendKey]bool, len(s.Backends))
	for _, b := range s.Backends {
		wantBE[b.BackendKey] = true
	}
	var errs []error
	for k, b := range st.backends {
		if !wantBE[k] {
			if err := d.freeBackend(b); err != nil {
				errs = append(errs, fmt.Errorf("service %s: remove backend %s: %w", s.Key, k, err))
			}
			delete(st.backends, k)
		}
	}

	var (
		slots      []slot
		writeIDs   []uint32
		writeVals  []balancerBackend
		newBackend []uint32
	)
	for _, b := range s.Backends {
		bs := st.backends[b.BackendKey]
		if bs == nil {
			id, ok := d.beIDs.get()
			if !ok {
				errs = append(errs, fmt.Errorf("service %s: backend %s: more than %d backends (raise MaxBackends)", s.Key, b.BackendKey, d.opts.MaxBackends))
				continue
			}
			d.gens[id]++
			if d.gens[id] == 0 {
				d.gens[id] = 1
			}
			bs = &beState{key: b.BackendKey, id: id}
			st.backends[b.BackendKey] = bs
			newBackend = append(newBackend, id)
		}
		v, usable := d.backendValue(st, bs.id, b, served)
		if v != bs.value {
			writeIDs = append(writeIDs, bs.id)
			writeVals = append(writeVals, v)
			bs.value = v
		}
		if usable {
			slots = append(slots, slot{key: b.BackendKey, id: bs.id, weight: b.Weight})
		}
	}
	if err := d.zeroBackendCounters(newBackend); err != nil {
		errs = append(errs, fmt.Errorf("service %s: %w", s.Key, err))
	}
	if err := putBatch(d.objs.Backends, writeIDs, writeVals); err != nil {
		errs = append(errs, fmt.Errorf("service %s: write backends: %w", s.Key, err))
	}

	sched := schedulerOf(s)
	table, err := buildTable(sched, slots, d.opts.MaglevTableSize, d.opts.MaxSlots)
	switch {
	case err != nil:
		p.failed = true
		errs = append(errs, fmt.Errorf("service %s: %w", s.Key, err))
	case !st.tableSet || !slices.Equal(table, st.table):
		m, err := d.newTable(table)
		if err != nil {
			p.failed = true
			errs = append(errs, fmt.Errorf("service %s: %w", s.Key, err))
		} else {
			p.table, p.tableMap = table, m
		}
	}

	p.value = balancerService{
		Id:          st.id,
		Sched:       uint8(schedulers[sched]),
		PersistMask: maskWords(s.PersistenceBits, s.Key.Addr.Is4()),
	}
	if s.Persistence > 0 {
		p.value.PersistTimeout = uint32((s.Persistence + time.Second - 1) / time.Second)
	}
	if served {
		p.value.Flags |= uint8(balancerSvcFlagsSVC_F_SERVED)
	}
	for _, f := range s.SchedulerFlags {
		if (f == "sh-port" && sched == dataplane.SourceHash) || (f == "mh-port" && sched == dataplane.Maglev) {
			p.value.Flags |= uint8(balancerSvcFlagsSVC_F_HASH_PORT)
		}
	}
	return p, errors.Join(errs...)
}

// newTable builds a scheduling table map: slot 0 holds the length.
func (d *Dataplane) newTable(table []uint32) (*ebpf.Map, error) {
	spec := d.innerSpec.Copy()
	spec.MaxEntries = uint32(len(table) + 1)
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create scheduling table: %w", err)
	}
	keys := make([]uint32, len(table)+1)
	vals := make([]uint32, len(table)+1)
	vals[0] = uint32(len(table))
	for i := range keys {
		keys[i] = uint32(i)
		if i > 0 {
			vals[i] = table[i-1]
		}
	}
	if err := putBatch(m, keys, vals); err != nil {
		m.Close()
		return nil, fmt.Errorf("fill scheduling table: %w", err)
	}
	return m, nil
}

// installTables puts every new table in place of its service's old one,
// in one batch update: each service's packets see its old table or its new
// one, never a mix.
func (d *Dataplane) installTables(pending []*pendingService) error {
	var (
		ids  []uint32
		fds  []uint32
		with []*pendingService
	)
	for _, p := range pending {
		if p.tableMap != nil {
			ids = append(ids, p.st.id)
			fds = append(fds, uint32(p.tableMap.FD()))
			with = append(with, p)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	defer func() {
		for _, p := range with {
			p.tableMap.Close() // the outer map holds it now
			p.tableMap = nil
		}
	}()
	if _, err := d.objs.SchedTables.BatchUpdate(ids, fds, nil); err == nil {
		for _, p := range with {
			p.st.table, p.st.tableSet = p.table, true
		}
		return nil
	}
	var errs []error
	for _, p := range with {
		if err := d.objs.SchedTables.Put(p.st.id, p.tableMap); err != nil {
			p.failed = true
			errs = append(errs, fmt.Errorf("service %s: install scheduling table: %w", p.st.key, err))
			continue
		}
		p.st.table, p.st.tableSet = p.table, true
	}
	return errors.Join(errs...)
}

// writeService writes the service entry, once its table is in place.
func (d *Dataplane) writeService(p *pendingService) error {
	st := p.st
	if p.failed && !st.tableSet {
		return nil // a new service without a table: not installed yet
	}
	if st.valueSet && p.value == st.value {
		return nil
	}
	k := svcKeyOf(st.key)
	if err := d.objs.Services.Put(&k, &p.value); err != nil {
		return fmt.Errorf("service %s: write service: %w", st.key, err)
	}
	st.value, st.valueSet = p.value, true
	return nil
}

// putBatch writes keys[i] = vals[i], in one syscall where the kernel can.
func putBatch[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(keys, vals, nil)
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := m.Put(&keys[i], &vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// removeServices deletes services: their entries first (packets pass from
// then on), then their tables in one batch, then their backends.
func (d *Dataplane) removeServices(sts []*svcState) error {
	if len(sts) == 0 {
		return nil
	}
	var (
		errs []error
		ids  []uint32
	)
	for _, st := range sts {
		k := svcKeyOf(st.key)
		if err := d.objs.Services.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove service %s: %w", st.key, err))
		}
		ids = append(ids, st.id) // also adopted ones, whose table is not known here
	}
	if err := deleteKeys(d.objs.SchedTables, ids); err != nil {
		errs = append(errs, fmt.Errorf("remove scheduling tables: %w", err))
	}
	for _, st := range sts {
		for _, b := range st.backends {
			if err := d.freeBackend(b); err != nil {
				errs = append(errs, fmt.Errorf("remove service %s: backend %s: %w", st.key, b.key, err))
			}
		}
		d.svcIDs.put(st.id)
		delete(d.services, st.key)
	}
	return errors.Join(errs...)
}

// freeBackend marks the id unused; its generation stays so flows that
// still name it are rescheduled, also after the id is reused.
func (d *Dataplane) freeBackend(b *beState) error {
	v := balancerBackend{Gen: d.gens[b.id]}
	if err := d.objs.Backends.Put(b.id, &v); err != nil {
		return err
	}
	d.beIDs.put(b.id)
	return nil
}

func (d *Dataplane) zeroServiceCounters(id uint32) error {
	zero := make([]balancerServiceCounters, possibleCPUs())
	if err := d.objs.ServiceStats.Put(id, zero); err != nil {
		return fmt.Errorf("reset service counters: %w", err)
	}
	return nil
}

func (d *Dataplane) zeroBackendCounters(ids []uint32) error {
	if len(ids) == 0 {
		return nil
	}
	n := possibleCPUs()
	zeroStats := make([]balancerBackendCounters, n*len(ids))
	if _, err := d.objs.BackendStats.BatchUpdate(ids, zeroStats, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("reset backend counters: %w", err)
		}
		for _, id := range ids {
			if err := d.objs.BackendStats.Put(id, zeroStats[:n]); err != nil {
				return fmt.Errorf("reset backend counters: %w", err)
			}
		}
	}
	zeroConns := make([]int64, len(ids))
	if err := putBatch(d.objs.BackendConns, ids, zeroConns); err != nil {
		return fmt.Errorf("reset active flow counts: %w", err)
	}
	return nil
}

// syncFragments points each VIP/protocol at the service its fragments go
// to: the port-0 (all ports) service if any, else the lowest port. It also
// tells the program whether any port-0 service exists.
func (d *Dataplane) syncFragments() error {
	want := make(map[balancerFragKey]balancerService)
	wantPort := make(map[balancerFragKey]uint16)
	anyPort := false
	for _, st := range d.services {
		if !st.valueSet {
			continue
		}
		fk := fragKeyOf(st.key)
		if p, ok := wantPort[fk]; !ok || st.key.Port < p {
			want[fk] = st.value
			wantPort[fk] = st.key.Port
		}
		if st.key.Port == 0 {
			anyPort = true
		}
	}
	var errs []error
	for k := range d.frags {
		if _, ok := want[k]; !ok {
			if err := d.objs.FragServices.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
				continue
			}
			delete(d.frags, k)
		}
	}
	for k, v := range want {
		if old, ok := d.frags[k]; ok && old == v {
			continue
		}
		if err := d.objs.FragServices.Put(&k, &v); err != nil {
			errs = append(errs, err)
			continue
		}
		d.frags[k] = v
	}
	flags := d.cfg.Flags &^ uint32(balancerConfigFlagsCFG_F_ANY_PORT)
	if anyPort {
		flags |= uint32(balancerConfigFlagsCFG_F_ANY_PORT)
	}
	if flags != d.cfg.Flags {
		cfg := d.cfg
		cfg.Flags = flags
		if err := d.objs.Cfg.Set(cfg); err != nil {
			errs = append(errs, err)
		} else {
			d.cfg = cfg
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fragment services: %w", err)
	}
	return nil
}

const vipFilterWords = 1024 // VIP_FILTER_WORDS

// vipFilterBit is the prefilter bit of addr: the fold maybe_vip computes.
func vipFilterBit(addr netip.Addr) uint32 {
	w := addrWords(addr)
	x := w[0] ^ w[1] ^ w[2] ^ w[3]
	return (x ^ x>>16) & 0xffff
}

// syncVIPFilter sets the prefilter bits of every service address and
// clears the others, writing only the words that change. Services are
// already in place when their bit appears, and gone when it disappears.
func (d *Dataplane) syncVIPFilter() error {
	want := make([]uint64, vipFilterWords)
	for k := range d.services {
		bit := vipFilterBit(k.Addr)
		want[bit/64] |= 1 << (bit % 64)
	}
	var (
		keys []uint32
		vals []uint64
	)
	for i := range want {
		if want[i] != d.filter[i] {
			keys = append(keys, uint32(i))
			vals = append(vals, want[i])
		}
	}
	if err := putBatch(d.objs.VipFilter, keys, vals); err != nil {
		return fmt.Errorf("vip prefilter: %w", err)
	}
	d.filter = want
	return nil
}

// syncTxPorts keeps the devmap holding every egress interface a backend
// uses, for redirects to an interface other than the ingress one.
func (d *Dataplane) syncTxPorts() error {
	want := make(map[uint32]bool)
	for _, st := range d.services {
		for _, b := range st.backends {
			if b.value.Ifindex != 0 {
				want[b.value.Ifindex] = true
			}
		}
	}
	return d.host.do(func() error {
		var errs []error
		for ifx := range d.txPorts {
			if !want[ifx] {
				if err := d.objs.TxPorts.Delete(ifx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					errs = append(errs, fmt.Errorf("remove tx port %d: %w", ifx, err))
					continue
				}
				delete(d.txPorts, ifx)
			}
		}
		for ifx := range want {
			if d.txPorts[ifx] {
				continue
			}
			// The devmap resolves the ifindex in this thread's namespace.
			if err := d.objs.TxPorts.Put(ifx, ifx); err != nil {
				errs = append(errs, fmt.Errorf("add tx port %d: %w", ifx, err))
				continue
			}
			d.txPorts[ifx] = true
		}
		return errors.Join(errs...)
	})
}

func (d *Dataplane) linkPin(ifindex int) string {
	return filepath.Join(d.opts.PinDir, "link-"+strconv.Itoa(ifindex))
}

// syncLinks attaches the program where a served VIP lives and detaches it
// everywhere else.
func (d *Dataplane) syncLinks(want map[int]iface) error {
	var errs []error
	for ifx, l := range d.links {
		if _, ok := want[ifx]; ok {
			continue
		}
		if err := detach(l); err != nil {
			errs = append(errs, fmt.Errorf("detach xdp from interface %d: %w", ifx, err))
			continue
		}
		delete(d.links, ifx)
	}
	for ifx, ifc := range want {
		if _, ok := d.links[ifx]; ok {
			continue
		}
		name := ifc.name
		if ifc.attach != ifc.index {
			name = fmt.Sprintf("%s (parent %d)", ifc.name, ifc.attach)
		}
		l, generic, err := d.host.attach(d.objs.XdpBalancer, ifx, d.opts.Mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("attach xdp to %s: %w", name, err))
			continue
		}
		if generic {
			d.log.Warn("driver has no native XDP: attached in generic mode (slower)", "interface", name)
		}
		if d.opts.PinDir != "" {
			if err := l.Pin(d.linkPin(ifx)); err != nil {
				_ = l.Close()
				errs = append(errs, fmt.Errorf("pin xdp link of %s: %w", name, err))
				continue
			}
		}
		d.links[ifx] = l
	}
	return errors.Join(errs...)
}

func detach(l link.Link) error {
	if err := l.Unpin(); err != nil {
		return err
	}
	return l.Close()
}

// Close detaches the program everywhere, removes the pinned maps and links
// and frees everything.
func (d *Dataplane) Close() error { return d.shutdown(true) }

// Release frees this process's handles but leaves the program attached and
// its maps and links pinned, for the next daemon to adopt with New and the
// same PinDir. Without a PinDir it is Close.
func (d *Dataplane) Release() error { return d.shutdown(d.opts.PinDir == "") }

func (d *Dataplane) shutdown(cleanup bool) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()

	var errs []error
	for ifx, l := range d.links {
		if cleanup {
			if err := detach(l); err != nil {
				errs = append(errs, fmt.Errorf("detach xdp from interface %d: %w", ifx, err))
			}
		} else if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if cleanup && d.opts.PinDir != "" {
		for _, m := range d.maps() {
			if err := m.Unpin(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.Remove(d.opts.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := d.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := d.clock.close(); err != nil {
		errs = append(errs, err)
	}
	d.host.close()
	if d.pinLock != nil {
		d.pinLock.Close() // the next daemon may adopt the pins now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp close: %w", err)
	}
	return nil
}

func (d *Dataplane) maps() []*ebpf.Map {
	m := &d.objs.balancerMaps
	return []*ebpf.Map{m.BackendConns, m.BackendStats, m.Backends, m.Flows4, m.Flows6, m.FragServices,
		m.GlobalStats, m.Persistence, m.RrCursors, m.SchedTables, m.ServiceStats, m.Services, m.TxPorts, m.VipFilter}
}

// Stats sums the per-CPU counters.
func (d *Dataplane) Stats() (dataplane.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return dataplane.Stats{}, errors.New("xdp: stats after close")
	}
	var out dataplane.Stats
	keys := make([]dataplane.ServiceKey, 0, len(d.services))
	for k := range d.services {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareServiceKeys)
	for _, k := range keys {
		st := d.services[k]
		var per []balancerServiceCounters
		if err := d.objs.ServiceStats.Lookup(st.id, &per); err != nil {
			return out, fmt.Errorf("xdp stats: service %s: %w", k, err)
		}
		ss := dataplane.ServiceStats{Key: k}
		for _, c := range per {
			ss.Packets += c.Packets
			ss.Bytes += c.Bytes
			ss.NewFlows += c.NewFlows
		}
		for _, b := range st.backends {
			var bper []balancerBackendCounters
			if err := d.objs.BackendStats.Lookup(b.id, &bper); err != nil {
				return out, fmt.Errorf("xdp stats: backend %s: %w", b.key, err)
			}
			bs := dataplane.BackendStats{BackendKey: b.key}
			for _, c := range bper {
				bs.Packets += c.Packets
				bs.Bytes += c.Bytes
				bs.NewFlows += c.NewFlows
			}
			var conns int64
			if err := d.objs.BackendConns.Lookup(b.id, &conns); err == nil && conns > 0 {
				bs.ActiveFlows = uint64(conns)
			}
			ss.Backends = append(ss.Backends, bs)
		}
		slices.SortFunc(ss.Backends, func(a, b dataplane.BackendStats) int {
			return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
		})
		out.Services = append(out.Services, ss)
	}
	out.Reasons = make(map[string]uint64, len(d.statNames))
	for i, name := range d.statNames {
		if name == "" || strings.HasPrefix(name, "max") {
			continue
		}
		var per []uint64
		if err := d.objs.GlobalStats.Lookup(uint32(i), &per); err != nil {
			return out, fmt.Errorf("xdp stats: counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out.Reasons[name] = sum
	}
	return out, nil
}

func possibleCPUs() int {
	n, err := ebpf.PossibleCPU()
	if err != nil || n < 1 {
		return 1
	}
	return n
}
