package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The program's clock is the kernel's jiffies (see clock_now in
// bpf/helpers.h): reading it is one load, where the coarse nanosecond clock
// costs ~18 ns a packet. Timeouts are written to the program in ticks, so
// the Go side needs the kernel's HZ, which user space cannot read directly.
// clockProbe reads jiffies and CLOCK_MONOTONIC together from a tiny XDP
// program run with BPF_PROG_TEST_RUN; detectHZ derives HZ from one such
// sample (jiffies start at 2^32 - 300*HZ at boot) and falls back to timing
// two samples.
type clockProbe struct {
	prog *ebpf.Program
}

func newClockProbe() (*clockProbe, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xkeep_clock",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnJiffies64.Call(),
			asm.Mov.Reg(asm.R7, asm.R0),
			asm.FnKtimeGetNs.Call(),
			asm.Mov.Reg(asm.R8, asm.R0),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 16),
			asm.JGT.Reg(asm.R4, asm.R3, "out"),
			asm.StoreMem(asm.R2, 0, asm.R7, asm.DWord),
			asm.StoreMem(asm.R2, 8, asm.R8, asm.DWord),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("out"), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load clock probe: %w", err)
	}
	return &clockProbe{prog: prog}, nil
}

// read returns the kernel's jiffies and CLOCK_MONOTONIC (ns), taken
// together.
func (c *clockProbe) read() (jiffies, mono uint64, err error) {
	in := make([]byte, 16)
	out := make([]byte, 16)
	if _, err := c.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out}); err != nil {
		return 0, 0, fmt.Errorf("read kernel clock: %w", err)
	}
	return binary.NativeEndian.Uint64(out), binary.NativeEndian.Uint64(out[8:]), nil
}

func (c *clockProbe) close() error { return c.prog.Close() }

// commonHZ are the tick rates Linux is built with.
var commonHZ = []uint64{100, 250, 300, 1000, 24, 32, 48, 64, 128, 200, 256, 512, 1024, 1200}

// detectHZ finds the kernel's tick rate.
func (c *clockProbe) detectHZ() (uint64, error) {
	j, mono, err := c.read()
	if err != nil {
		return 0, err
	}
	// jiffies = 2^32 - 300*HZ + uptime*HZ, to within the moment jiffies
	// started counting. Accept a rate that fits to within two seconds,
	// when only one does.
	uptime := float64(mono) / 1e9
	var fits []uint64
	for _, hz := range commonHZ {
		want := float64(uint64(1)<<32) + float64(hz)*(uptime-300)
		if math.Abs(float64(j)-want) <= 2*float64(hz) {
			fits = append(fits, hz)
		}
	}
	if len(fits) == 1 {
		return fits[0], nil
	}
	// Otherwise time it.
	time.Sleep(200 * time.Millisecond)
	j2, mono2, err := c.read()
	if err != nil {
		return 0, err
	}
	if mono2 <= mono || j2 <= j {
		return 0, errors.New("detect HZ: kernel clocks did not advance")
	}
	hz := math.Round(float64(j2-j) / (float64(mono2-mono) / 1e9))
	for _, h := range commonHZ {
		if math.Abs(hz-float64(h)) <= float64(h)/20 {
			return h, nil
		}
	}
	if hz < 10 || hz > 10000 {
		return 0, fmt.Errorf("detect HZ: implausible tick rate %v", hz)
	}
	return uint64(hz), nil
}

// ticks converts a duration to program clock ticks, rounding up.
func ticks(d time.Duration, hz uint64) uint64 {
	if d <= 0 {
		return 0
	}
	return (uint64(d)*hz + uint64(time.Second) - 1) / uint64(time.Second)
}

// leaseUntil is the program-clock tick a lease of d taken now runs to; 0
// (no lease) when d is 0. One tick more than d: the program compares
// against whole ticks.
func (c *clockProbe) leaseUntil(d time.Duration, hz uint64) (uint64, error) {
	if d <= 0 {
		return 0, nil
	}
	now, _, err := c.read()
	if err != nil {
		return 0, err
	}
	return now + ticks(d, hz) + 1, nil
}
