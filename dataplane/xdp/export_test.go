package xdp

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// advanceClock moves the program's clock forward (cfg.clock_offset): the
// program reads the kernel's clock plus this offset, so flows and
// persistence entries written before look older by d.
func (dp *Dataplane) advanceClock(d time.Duration) error {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	cfg := dp.cfg
	cfg.ClockOffset += ticks(d, cfg.Hz)
	if err := dp.objs.Cfg.Set(cfg); err != nil {
		return err
	}
	dp.cfg = cfg
	return nil
}

// fakeVLANRoute makes the dataplane believe addr is reached through a
// VLAN device on the interface with the given index and MAC, as the routing
// table would say for a backend on eth0.<vlan>. This is the fixture tests'
// one fake: the CI kernel has no 802.1Q support (CONFIG_VLAN_8021Q is not
// set), so no VLAN device can exist. The neighbour entry stays real.
func (dp *Dataplane) fakeVLANRoute(addr netip.Addr, parent *net.Interface, vlan uint16) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.routes[addr] = &route{egress: egress{via: iface{
		name:   fmt.Sprintf("%s.%d", parent.Name, vlan),
		index:  parent.Index,
		attach: parent.Index,
		vlan:   vlan,
		mac:    parent.HardwareAddr,
	}}}
}

// runner runs the program with BPF_PROG_TEST_RUN from one OS thread that
// sits in the dataplane's namespace (ingress ifindexes resolve there) and
// on one CPU (0 unless a test picks another: the per-CPU round-robin
// cursor and flow cache are then a single one).
type runner struct {
	prog    *ebpf.Program
	ifindex int
}

// withRunner calls fn with a runner on a dedicated thread on CPU 0.
func (dp *Dataplane) withRunner(ifindex int, fn func(*runner) error) error {
	return dp.withRunnerOn(0, ifindex, fn)
}

// withRunnerOn calls fn with a runner on a dedicated thread on cpu.
func (dp *Dataplane) withRunnerOn(cpu, ifindex int, fn func(*runner) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is discarded with the goroutine (no Unlock).
		if dp.host.ns.IsOpen() {
			if err := netns.Set(dp.host.ns); err != nil {
				errc <- fmt.Errorf("enter namespace: %w", err)
				return
			}
		}
		var cpus unix.CPUSet
		cpus.Set(cpu)
		if err := unix.SchedSetaffinity(0, &cpus); err != nil {
			errc <- fmt.Errorf("pin to cpu %d: %w", cpu, err)
			return
		}
		errc <- fn(&runner{prog: dp.objs.XdpBalancer, ifindex: ifindex})
	}()
	return <-errc
}

// run feeds one frame to the program and returns its verdict and the frame
// as the program left it.
func (r *runner) run(in []byte) (uint32, []byte, error) {
	out := make([]byte, len(in)+256)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	if r.ifindex > 0 {
		opts.Context = balancerXdpMd{DataEnd: uint32(len(in)), IngressIfindex: uint32(r.ifindex)}
	}
	ret, err := r.prog.Run(opts)
	if err != nil {
		return 0, nil, err
	}
	return ret, opts.DataOut, nil
}
