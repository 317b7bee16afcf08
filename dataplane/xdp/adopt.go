package xdp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xkeep/xkeep/dataplane"
)

// adopt reads back what a previous daemon left pinned: services and
// backends with their ids and generations (so flows in the pinned flow
// table keep matching), fragment services, tx ports, and the XDP links,
// which get this daemon's program swapped in atomically.
func (d *Dataplane) adopt() error {
	byID := make(map[uint32]*svcState)
	var (
		sk balancerSvcKey
		sv balancerService
	)
	it := d.objs.Services.Iterate()
	for it.Next(&sk, &sv) {
		if int(sv.Id) >= d.opts.MaxServices {
			continue
		}
		key := serviceKeyFrom(sk)
		st := &svcState{key: key, id: sv.Id, value: sv, valueSet: true, backends: make(map[dataplane.BackendKey]*beState)}
		d.services[key] = st
		byID[sv.Id] = st
		d.svcIDs.take(sv.Id)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	d.svcIDs.rebuild()

	var (
		id uint32
		bv balancerBackend
	)
	it = d.objs.Backends.Iterate()
	for it.Next(&id, &bv) {
		if int(id) >= len(d.gens) {
			continue
		}
		d.gens[id] = bv.Gen
		if bv.Flags&uint16(balancerBackendFlagsBE_F_ALLOCATED) == 0 {
			continue
		}
		st := byID[bv.Service]
		if st == nil {
			if err := d.objs.Backends.Put(id, &balancerBackend{Gen: bv.Gen}); err != nil {
				return fmt.Errorf("free orphan backend %d: %w", id, err)
			}
			continue
		}
		key := dataplane.BackendKey{Addr: wordsAddr(bv.Addr, bv.Family), Port: hostPort(bv.Port)}
		st.backends[key] = &beState{key: key, id: id, value: bv}
		d.beIDs.take(id)
		if bv.Mac != [6]uint8{} {
			d.adopted[key.Addr] = net.HardwareAddr(bv.Mac[:])
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read backends: %w", err)
	}
	d.beIDs.rebuild()

	var (
		fk balancerFragKey
		fv balancerService
	)
	it = d.objs.FragServices.Iterate()
	for it.Next(&fk, &fv) {
		d.frags[fk] = fv
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read fragment services: %w", err)
	}
	var (
		word uint32
		bits uint64
	)
	it = d.objs.VipFilter.Iterate()
	for it.Next(&word, &bits) {
		if int(word) < len(d.filter) {
			d.filter[word] = bits
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read vip prefilter: %w", err)
	}
	var port, target uint32
	it = d.objs.TxPorts.Iterate()
	for it.Next(&port, &target) {
		d.txPorts[port] = true
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read tx ports: %w", err)
	}
	return d.adoptLinks()
}

func (d *Dataplane) adoptLinks() error {
	pins, err := filepath.Glob(filepath.Join(d.opts.PinDir, "link-*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pins {
		ifx, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "link-"))
		if err != nil {
			continue
		}
		l, err := link.LoadPinnedLink(p, &ebpf.LoadPinOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("load pinned xdp link %s: %w", p, err))
			continue
		}
		if err := l.Update(d.objs.XdpBalancer); err != nil {
			// The interface is gone or the link broke: drop it; Apply
			// attaches afresh where a VIP is served.
			d.log.Warn("pinned xdp link unusable, dropping it", "pin", p, "error", err)
			_ = l.Unpin()
			_ = l.Close()
			_ = os.Remove(p)
			continue
		}
		d.links[ifx] = l
	}
	return errors.Join(errs...)
}
