// Package pktgen generates load for XDP benchmarks with the kernel's
// live-frames mode of BPF_PROG_TEST_RUN (BPF_F_TEST_XDP_LIVE_FRAMES, Linux
// 5.18+): one frame is replayed Count times per thread through a tiny XDP
// program that returns XDP_TX, so each copy leaves the given interface as
// if an XDP program had bounced it there. On a veth that is several million
// frames per second per thread, where trafgen manages about 0.6 Mpps.
//
// A Sink is the matching receiver: an XDP program that counts frames and
// drops them, to attach at the far end of what is being measured.
//
// Both work in a network namespace given by path; the caller's threads
// never change namespace.
package pktgen

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Config describes a run.
type Config struct {
	// NetNS is the path of the namespace Interface lives in; empty for the
	// caller's.
	NetNS string
	// Interface is the ifindex frames leave from (their ingress_ifindex).
	Interface int
	// Frame is the Ethernet frame to send (at least 14 bytes).
	Frame []byte
	// Count is the number of frames each thread sends (at most 2^32-1).
	Count uint32
	// Threads is the number of sending threads, each pinned to its own CPU
	// (CPU 0, 1, ...); 0 means 1.
	Threads int
	// BatchSize is the kernel's live-frames batch (0: the kernel's 64).
	BatchSize uint32
	// RandomSourcePort, when non-zero, is the offset in Frame of a 16-bit
	// field (a TCP/UDP source port) that gets a random value in every
	// frame, so the frames are many flows.
	RandomSourcePort int
}

// Result is what a run sent and how long it took.
type Result struct {
	Sent    uint64
	Elapsed time.Duration
}

// PPS is the send rate in frames per second.
func (r Result) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// xdpMD is the kernel's struct xdp_md (linux/bpf.h), the context a test
// run starts from.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

const (
	xdpDrop = 1
	xdpTX   = 3
)

// Run sends the frames and waits until every thread is done.
func Run(cfg Config) (Result, error) {
	if len(cfg.Frame) < 14 {
		return Result{}, errors.New("pktgen: frame shorter than an Ethernet header")
	}
	if cfg.Interface < 1 || cfg.Count == 0 {
		return Result{}, errors.New("pktgen: need an interface index and a count")
	}
	if cfg.RandomSourcePort != 0 && cfg.RandomSourcePort+2 > len(cfg.Frame) {
		return Result{}, fmt.Errorf("pktgen: source port offset %d outside the %d-byte frame", cfg.RandomSourcePort, len(cfg.Frame))
	}
	threads := max(cfg.Threads, 1)
	if n := runtime.NumCPU(); threads > n {
		return Result{}, fmt.Errorf("pktgen: %d threads on %d CPUs", threads, n)
	}
	prog, err := txProgram(cfg.RandomSourcePort)
	if err != nil {
		return Result{}, err
	}
	defer prog.Close()
	ns := netns.None()
	if cfg.NetNS != "" {
		if ns, err = netns.GetFromPath(cfg.NetNS); err != nil {
			return Result{}, fmt.Errorf("pktgen: open namespace %s: %w", cfg.NetNS, err)
		}
		defer ns.Close()
	}

	var (
		wg    sync.WaitGroup
		ready sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, threads)
	)
	for i := range threads {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = onThread(ns, i, func() error {
				ready.Done()
				<-start
				_, err := prog.Run(&ebpf.RunOptions{
					Data:      cfg.Frame,
					Repeat:    cfg.Count,
					Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
					Context:   xdpMD{DataEnd: uint32(len(cfg.Frame)), IngressIfindex: uint32(cfg.Interface)},
					BatchSize: cfg.BatchSize,
				})
				return err
			}, ready.Done)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := Result{Sent: uint64(cfg.Count) * uint64(threads), Elapsed: time.Since(t0)}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("pktgen: live frames on interface %d: %w", cfg.Interface, err)
	}
	return res, nil
}

// onThread runs fn on a locked OS thread in ns (if open) pinned to cpu. The
// thread is discarded afterwards. onFail is called if fn never runs.
func onThread(ns netns.NsHandle, cpu int, fn func() error, onFail func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with the goroutine.
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				onFail()
				errc <- err
				return
			}
		}
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			onFail()
			errc <- fmt.Errorf("pin to cpu %d: %w", cpu, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// txProgram returns XDP_TX for every frame, after writing a random 16-bit
// value at portOffset when that is non-zero.
func txProgram(portOffset int) (*ebpf.Program, error) {
	insns := asm.Instructions{}
	if portOffset > 0 {
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, int32(portOffset+2)),
			asm.JGT.Reg(asm.R4, asm.R3, "tx"),
			asm.Mov.Reg(asm.R7, asm.R2),
			asm.FnGetPrandomU32.Call(),
			asm.StoreMem(asm.R7, int16(portOffset), asm.R0, asm.Half),
		)
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpTX).WithSymbol("tx"),
		asm.Return(),
	)
	return newXDP("pktgen_tx", insns)
}

func newXDP(name string, insns asm.Instructions) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		return nil, fmt.Errorf("pktgen: load %s: %w", name, err)
	}
	return p, nil
}

// Bounce returns a program that sends every frame back out where it came
// from (XDP_TX) unchanged: the bare-bounce baseline. The caller closes it.
func Bounce() (*ebpf.Program, error) {
	return newXDP("bare_bounce", asm.Instructions{asm.Mov.Imm(asm.R0, xdpTX), asm.Return()})
}

// Sink counts the frames it receives, per CPU, and drops them.
type Sink struct {
	counts *ebpf.Map
	prog   *ebpf.Program
}

// NewSink loads a sink. Attach Program() to the receiving interface.
func NewSink() (*Sink, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sink_count", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("pktgen: sink counter: %w", err)
	}
	prog, err := newXDP("pktgen_sink", asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counts.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	})
	if err != nil {
		counts.Close()
		return nil, err
	}
	return &Sink{counts: counts, prog: prog}, nil
}

// Program is the sink's XDP program (owned by the Sink).
func (s *Sink) Program() *ebpf.Program { return s.prog }

// Count returns the frames received since the last Reset.
func (s *Sink) Count() (uint64, error) {
	var per []uint64
	if err := s.counts.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("pktgen: read sink count: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Reset zeroes the count.
func (s *Sink) Reset() error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	return s.counts.Put(uint32(0), make([]uint64, n))
}

// Close frees the sink.
func (s *Sink) Close() error { return errors.Join(s.prog.Close(), s.counts.Close()) }
