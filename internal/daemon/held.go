package daemon

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/vrrp"
)

// held is what this daemon has put into the kernel that must not outlive
// it: the VIPs the VRRP engine added (recorded by heldAddrs, on the way
// to netlink) and the IPVS services the dataplane owns (recorded by the
// owner loop around each Apply). The crash guard (guard.go) is kept told
// of it, and removes it if the daemon dies without stopping.
type held struct {
	mu       sync.Mutex
	vips     map[vipOnDev]vrrp.VIP
	services []dataplane.ServiceKey
	// seq counts changes; the guard link writes the state it has not
	// written yet.
	seq     uint64
	changed func() // set by the guard link; called with mu released
}

// vipOnDev is an address on an interface: what the kernel removes by.
type vipOnDev struct {
	prefix netip.Prefix
	dev    string
}

func newHeld() *held { return &held{vips: map[vipOnDev]vrrp.VIP{}} }

// guardState is a snapshot of held, as the guard protocol carries it.
type guardState struct {
	VIPs     []guardVIP     `json:"vips"`
	Services []guardService `json:"ipvs_services"`
}

// guardVIP is an address the VRRP engine added, on its interface.
type guardVIP struct {
	Prefix netip.Prefix `json:"prefix"`
	Dev    string       `json:"dev"`
	Label  string       `json:"label,omitempty"`
	Scope  uint8        `json:"scope,omitempty"`
}

// guardService is an IPVS service key (dataplane.ServiceKey).
type guardService struct {
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port,omitempty"`
	Protocol uint8      `json:"protocol,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`
}

func (v guardVIP) vip() vrrp.VIP {
	return vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Scope: v.Scope}
}

func (s guardService) key() dataplane.ServiceKey {
	return dataplane.ServiceKey{Addr: s.Addr, Port: s.Port, Protocol: dataplane.Protocol(s.Protocol), FWMark: s.FWMark}
}

// snapshot returns the state in a stable order, and its sequence number.
func (h *held) snapshot() (guardState, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var st guardState
	for _, v := range h.vips {
		st.VIPs = append(st.VIPs, guardVIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Scope: v.Scope})
	}
	slices.SortFunc(st.VIPs, func(a, b guardVIP) int {
		if c := strings.Compare(a.Dev, b.Dev); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix.String(), b.Prefix.String())
	})
	for _, k := range h.services {
		st.Services = append(st.Services, guardService{Addr: k.Addr, Port: k.Port, Protocol: uint8(k.Protocol), FWMark: k.FWMark})
	}
	return st, h.seq
}

// update changes the state under the lock and tells the guard link.
func (h *held) update(change func() bool) uint64 {
	h.mu.Lock()
	if !change() {
		seq := h.seq
		h.mu.Unlock()
		return seq
	}
	h.seq++
	seq, changed := h.seq, h.changed
	h.mu.Unlock()
	if changed != nil {
		changed()
	}
	return seq
}

func (h *held) addVIP(v vrrp.VIP) {
	h.update(func() bool {
		k := vipOnDev{v.Prefix, v.Dev}
		if old, ok := h.vips[k]; ok && old == v {
			return false
		}
		h.vips[k] = v
		return true
	})
}

func (h *held) removeVIP(v vrrp.VIP) {
	h.update(func() bool {
		k := vipOnDev{v.Prefix, v.Dev}
		if _, ok := h.vips[k]; !ok {
			return false
		}
		delete(h.vips, k)
		return true
	})
}

// setServices records the IPVS services the dataplane owns (or is about
// to) and returns the change's sequence number.
func (h *held) setServices(keys []dataplane.ServiceKey) uint64 {
	return h.update(func() bool {
		keys = slices.Clone(keys)
		sortKeys(keys)
		if slices.Equal(h.services, keys) {
			return false
		}
		h.services = keys
		return true
	})
}

// heldAddrs is the VRRP engine's AddressManager, recording in held what
// it adds and removes. An address is recorded before it is added (a
// daemon killed in between leaves the guard one address too many to
// remove, which is harmless, rather than one too few) and forgotten when
// the add fails; the guard is told asynchronously, so a takeover waits
// for nothing but the kernel.
type heldAddrs struct {
	next vrrp.AddressManager
	held *held
}

// vipPreparer mirrors the optional interface the VRRP router looks for
// on its AddressManager (vrrp.NetlinkAddrs encodes requests ahead).
type vipPreparer interface {
	PrepareVIP(vip vrrp.VIP, dev string)
	ForgetInterface(dev string)
}

var _ vipPreparer = heldAddrs{}

func onDev(v vrrp.VIP, dev string) vrrp.VIP {
	if v.Dev == "" {
		v.Dev = dev
	}
	return v
}

func (a heldAddrs) AddVIP(v vrrp.VIP, dev string) error {
	a.held.addVIP(onDev(v, dev))
	err := a.next.AddVIP(v, dev)
	if err != nil {
		a.held.removeVIP(onDev(v, dev))
	}
	return err
}

func (a heldAddrs) RemoveVIP(v vrrp.VIP, dev string) error {
	err := a.next.RemoveVIP(v, dev)
	if err == nil {
		a.held.removeVIP(onDev(v, dev))
	}
	return err
}

func (a heldAddrs) PrepareVIP(v vrrp.VIP, dev string) {
	if p, ok := a.next.(vipPreparer); ok {
		p.PrepareVIP(v, dev)
	}
}

func (a heldAddrs) ForgetInterface(dev string) {
	if p, ok := a.next.(vipPreparer); ok {
		p.ForgetInterface(dev)
	}
}

func sortKeys(keys []dataplane.ServiceKey) {
	slices.SortFunc(keys, func(a, b dataplane.ServiceKey) int {
		return cmp.Or(cmp.Compare(a.FWMark, b.FWMark), a.Addr.Compare(b.Addr),
			cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
}
