package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/xkeep/xkeep/dataplane"
)

// IPVS service flags (include/uapi/linux/ip_vs.h).
const (
	flagPersistent = 0x0001
	flagHashed     = 0x0002 // set by the kernel on every service; ignored in diffs
	flagSched1     = 0x0008
	flagSched2     = 0x0010
	flagSched3     = 0x0020
)

// schedulers are every scheduler keepalived accepts. Each is a kernel module
// of its own, ip_vs_<name>, which the kernel loads on first use when
// modprobe can find it.
var schedulers = []dataplane.Scheduler{
	dataplane.RoundRobin, dataplane.WeightedRoundRobin, dataplane.LeastConn,
	dataplane.WeightedLeastConn, dataplane.LocalityLeastConn, dataplane.LocalityLCReplica,
	dataplane.DestinationHash, dataplane.SourceHash, dataplane.Maglev,
	dataplane.ShortestDelay, dataplane.NeverQueue, dataplane.WeightedFailover,
	dataplane.WeightedOverflow,
}

// defaultScheduler is ipvsadm's and keepalived's default.
const defaultScheduler = dataplane.WeightedLeastConn

// maxWeight is the largest weight IPVS and keepalived accept.
const maxWeight = 65535

// svcID is a kernel service's identity, normalised so a desired service and
// the kernel's dump of it compare equal: fwmark services carry only their
// family (the unspecified address) and no port or protocol.
type svcID struct {
	addr   netip.Addr
	port   uint16
	proto  uint16
	fwmark uint32
}

func (id svcID) family() uint16 {
	if id.addr.Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

func (id svcID) String() string {
	if id.fwmark != 0 {
		fam := "IPv4"
		if id.addr.Is6() {
			fam = "IPv6"
		}
		return fmt.Sprintf("fwmark %d %s", id.fwmark, fam)
	}
	return fmt.Sprintf("%s %s", dataplane.Protocol(id.proto), netip.AddrPortFrom(id.addr, id.port))
}

// kService is a service as IPVS holds it: the part of the kernel state this
// package compares and writes.
type kService struct {
	id      svcID
	sched   string
	flags   uint32 // without flagHashed
	timeout uint32 // persistence, seconds
	netmask uint32 // as moby/ipvs carries it: IPv4 mask bytes read natively, IPv6 prefix length
	dests   map[dataplane.BackendKey]kDest
}

// kDest is a destination (real server) as IPVS holds it.
type kDest struct {
	weight int
	fwd    uint32 // ipvs.ConnFwd*
}

// sameAttrs reports whether two services need no UpdateService between
// them (destinations aside).
func (s kService) sameAttrs(o kService) bool {
	return s.sched == o.sched && s.flags == o.flags && s.timeout == o.timeout && s.netmask == o.netmask
}

func (s kService) attrs() string {
	a := fmt.Sprintf("sched=%s", s.sched)
	if s.flags != 0 {
		a += fmt.Sprintf(" flags=%#x", s.flags)
	}
	if s.flags&flagPersistent != 0 {
		a += fmt.Sprintf(" persistent=%ds netmask=%s", s.timeout, netmaskString(s.id, s.netmask))
	}
	return a
}

func (d kDest) String() string {
	return fmt.Sprintf("weight=%d fwd=%s", d.weight, fwdName(d.fwd))
}

// toIPVS is the moby/ipvs form of the service, for netlink requests.
func (s kService) toIPVS() *ipvs.Service {
	svc := &ipvs.Service{
		AddressFamily: s.id.family(),
		FWMark:        s.id.fwmark,
		SchedName:     s.sched,
		Flags:         s.flags,
		Timeout:       s.timeout,
		Netmask:       s.netmask,
	}
	if s.id.fwmark == 0 {
		svc.Address = net.IP(s.id.addr.AsSlice())
		svc.Port = s.id.port
		svc.Protocol = s.id.proto
	}
	return svc
}

func destToIPVS(k dataplane.BackendKey, d kDest) *ipvs.Destination {
	fam := uint16(unix.AF_INET)
	if k.Addr.Is6() {
		fam = unix.AF_INET6
	}
	return &ipvs.Destination{
		Address:         net.IP(k.Addr.AsSlice()),
		Port:            k.Port,
		Weight:          d.weight,
		ConnectionFlags: d.fwd,
		AddressFamily:   fam,
	}
}

// fromIPVS converts a kernel dump entry; ok is false for entries this
// package cannot represent (it never touches those).
func fromIPVS(s *ipvs.Service) (kService, bool) {
	var id svcID
	switch {
	case s.FWMark != 0:
		id.fwmark = s.FWMark
		id.addr = netip.IPv4Unspecified()
		if s.AddressFamily == unix.AF_INET6 {
			id.addr = netip.IPv6Unspecified()
		}
	default:
		a, ok := netip.AddrFromSlice(s.Address)
		if !ok {
			return kService{}, false
		}
		if s.AddressFamily == unix.AF_INET {
			a = a.Unmap()
		}
		id.addr, id.port, id.proto = a, s.Port, s.Protocol
	}
	return kService{
		id:      id,
		sched:   s.SchedName,
		flags:   s.Flags &^ flagHashed,
		timeout: s.Timeout,
		netmask: s.Netmask,
	}, true
}

func destKey(d *ipvs.Destination) (dataplane.BackendKey, bool) {
	a, ok := netip.AddrFromSlice(d.Address)
	if !ok {
		return dataplane.BackendKey{}, false
	}
	if d.AddressFamily == unix.AF_INET {
		a = a.Unmap()
	}
	return dataplane.BackendKey{Addr: a, Port: d.Port}, true
}

// desiredService is one service of the desired state, translated.
type desiredService struct {
	key    dataplane.ServiceKey // as the caller gave it, for Stats
	kernel kService
	// backends lists every backend the caller named, in its order,
	// including Down ones (absent from kernel.dests), for Stats.
	backends []dataplane.BackendKey
}

// translate turns one service of the model into its IPVS form, or says
// what is wrong with it.
func translate(s dataplane.Service) (desiredService, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	id, err := serviceID(s.Key)
	if err != nil {
		return desiredService{}, err
	}
	ks := kService{id: id, dests: map[dataplane.BackendKey]kDest{}}

	sched := s.Scheduler
	if sched == "" {
		sched = defaultScheduler
	}
	if !slices.Contains(schedulers, sched) {
		bad("unknown scheduler %q (want %s)", s.Scheduler, joinSchedulers())
	}
	ks.sched = string(sched)

	for _, f := range s.SchedulerFlags {
		bit, err := schedulerFlag(f, sched)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ks.flags |= bit
	}

	switch {
	case s.Persistence < 0:
		bad("negative persistence timeout %v", s.Persistence)
	case s.Persistence > 0:
		ks.flags |= flagPersistent
		secs := (s.Persistence + time.Second - 1) / time.Second
		if secs > 1<<31 {
			bad("persistence timeout %v too long", s.Persistence)
		}
		ks.timeout = uint32(secs)
	}
	mask, err := persistenceNetmask(id.addr.Is6(), s.PersistenceBits)
	if err != nil {
		errs = append(errs, err)
	}
	ks.netmask = mask

	if id.fwmark == 0 && id.port == 0 && s.Persistence == 0 {
		bad("port 0 (all ports) needs persistence, as in ipvsadm")
	}

	svcFwd, err := forwardMethod(s.Forward)
	if err != nil {
		errs = append(errs, fmt.Errorf("forward: %w", err))
	}

	ds := desiredService{key: s.Key}
	for _, b := range s.Backends {
		k := dataplane.BackendKey{Addr: b.Addr.Unmap(), Port: b.Port}
		if err := checkBackend(b, id); err != nil {
			errs = append(errs, fmt.Errorf("backend %s: %w", k, err))
			continue
		}
		if slices.Contains(ds.backends, k) {
			bad("backend %s listed twice", k)
			continue
		}
		ds.backends = append(ds.backends, k)
		fwd := svcFwd
		if b.Forward != "" {
			if fwd, err = forwardMethod(b.Forward); err != nil {
				errs = append(errs, fmt.Errorf("backend %s: forward: %w", k, err))
				continue
			}
		}
		switch b.State {
		case dataplane.BackendUp:
			ks.dests[k] = kDest{weight: b.Weight, fwd: fwd}
		case dataplane.BackendDraining:
			// inhibit_on_failure: keep the destination and its connections
			// and persistence entries, but give it no new ones.
			ks.dests[k] = kDest{weight: 0, fwd: fwd}
		case dataplane.BackendDown:
			// Removed: IPVS schedules nothing more to it.
		}
	}
	ds.kernel = ks
	if len(errs) > 0 {
		return desiredService{}, errors.Join(errs...)
	}
	return ds, nil
}

func serviceID(k dataplane.ServiceKey) (svcID, error) {
	if k.FWMark != 0 {
		switch {
		case !k.Addr.IsValid():
			return svcID{}, errors.New("fwmark service without an address family: set Key.Addr to 0.0.0.0 or ::")
		case k.Addr.Unmap().Is4():
			return svcID{addr: netip.IPv4Unspecified(), fwmark: k.FWMark}, nil
		default:
			return svcID{addr: netip.IPv6Unspecified(), fwmark: k.FWMark}, nil
		}
	}
	a := k.Addr.Unmap()
	switch {
	case !a.IsValid():
		return svcID{}, errors.New("no virtual address")
	case a.Zone() != "":
		return svcID{}, fmt.Errorf("virtual address %s has a zone; IPVS takes none", a)
	case a.IsUnspecified() || a.IsMulticast():
		return svcID{}, fmt.Errorf("virtual address %s cannot be a service address", a)
	}
	switch k.Protocol {
	case dataplane.TCP, dataplane.UDP, dataplane.SCTP:
	default:
		return svcID{}, fmt.Errorf("unsupported protocol %s (want TCP, UDP or SCTP)", k.Protocol)
	}
	return svcID{addr: a, port: k.Port, proto: uint16(k.Protocol)}, nil
}

func checkBackend(b dataplane.Backend, id svcID) error {
	a := b.Addr.Unmap()
	switch {
	case !a.IsValid():
		return errors.New("no address")
	case a.Zone() != "":
		return errors.New("address has a zone; IPVS takes none")
	case a.Is4() != id.addr.Is4():
		return fmt.Errorf("address family differs from the service's")
	case b.Weight < 0 || b.Weight > maxWeight:
		return fmt.Errorf("weight %d out of range 0-%d", b.Weight, maxWeight)
	case b.State > dataplane.BackendDown:
		return fmt.Errorf("unknown state %s", b.State)
	}
	return nil
}

// schedulerFlag maps an IPVS scheduler flag name onto its service flag bit.
// The sh-* and mh-* names are the source-hash and Maglev schedulers' own
// meanings of the generic sched flags 1 and 2.
func schedulerFlag(name string, sched dataplane.Scheduler) (uint32, error) {
	switch name {
	case "flag-1":
		return flagSched1, nil
	case "flag-2":
		return flagSched2, nil
	case "flag-3":
		return flagSched3, nil
	case "sh-fallback", "sh-port":
		if sched != dataplane.SourceHash {
			return 0, fmt.Errorf("scheduler flag %q needs scheduler sh, not %s", name, sched)
		}
	case "mh-fallback", "mh-port":
		if sched != dataplane.Maglev {
			return 0, fmt.Errorf("scheduler flag %q needs scheduler mh, not %s", name, sched)
		}
	default:
		return 0, fmt.Errorf("unknown scheduler flag %q (want sh-port, sh-fallback, mh-port, mh-fallback, flag-1, flag-2, flag-3)", name)
	}
	if strings.HasSuffix(name, "-fallback") {
		return flagSched1, nil
	}
	return flagSched2, nil
}

// persistenceNetmask encodes the persistence granularity as IPVS wants it:
// IPv4 as a mask (moby/ipvs sends the u32 in host order, and the kernel
// reads the attribute as big endian, so the mask's bytes are read
// natively), IPv6 as a prefix length. 0 bits means a whole address.
func persistenceNetmask(v6 bool, bits int) (uint32, error) {
	maxBits := 32
	if v6 {
		maxBits = 128
	}
	if bits < 0 || bits > maxBits {
		return 0, fmt.Errorf("persistence prefix length %d out of range 0-%d", bits, maxBits)
	}
	if bits == 0 {
		bits = maxBits
	}
	if v6 {
		return uint32(bits), nil
	}
	return binary.NativeEndian.Uint32(net.CIDRMask(bits, 32)), nil
}

func netmaskString(id svcID, netmask uint32) string {
	if id.addr.Is6() {
		return fmt.Sprintf("/%d", netmask)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], netmask)
	ones, _ := net.IPMask(b[:]).Size()
	return fmt.Sprintf("/%d", ones)
}

func forwardMethod(m dataplane.ForwardMethod) (uint32, error) {
	switch m {
	case dataplane.DirectRouting:
		return ipvs.ConnFwdDirectRoute, nil
	case dataplane.NAT:
		return ipvs.ConnFwdMasq, nil
	case dataplane.Tunnel:
		return ipvs.ConnFwdTunnel, nil
	case "":
		return 0, errors.New("not set (want DR, NAT or TUN)")
	}
	return 0, fmt.Errorf("unknown method %q (want DR, NAT or TUN)", m)
}

func fwdName(fwd uint32) string {
	switch fwd & ipvs.ConnFwdMask {
	case ipvs.ConnFwdDirectRoute:
		return "DR"
	case ipvs.ConnFwdMasq:
		return "NAT"
	case ipvs.ConnFwdTunnel:
		return "TUN"
	case ipvs.ConnFwdLocalNode:
		return "local"
	case ipvs.ConnFwdBypass:
		return "bypass"
	}
	return fmt.Sprintf("fwd-%d", fwd)
}

func joinSchedulers() string {
	names := make([]string, len(schedulers))
	for i, s := range schedulers {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
