package xdp

import (
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/xkeep/xkeep/dataplane"
)

// Pure tests of the table builders (no kernel needed).

func slots(weights ...int) []slot {
	var out []slot
	for i, w := range weights {
		out = append(out, slot{
			key:    dataplane.BackendKey{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Port: 80},
			id:     uint32(i),
			weight: w,
		})
	}
	return out
}

func TestWeightedSlotsInterleave(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    []uint32
	}{
		{[]int{1, 1, 1}, []uint32{0, 1, 2}},
		{[]int{3, 1}, []uint32{0, 0, 1, 0}},
		{[]int{2, 4}, []uint32{1, 0, 1}},       // gcd 2
		{[]int{100, 100}, []uint32{0, 1}},      // gcd 100
		{[]int{2, 3}, []uint32{1, 0, 1, 0, 1}}, // evenly spread
	} {
		got := weightedSlots(slots(tc.weights...), 1000)
		if !slices.Equal(got, tc.want) {
			t.Errorf("weights %v: slots %v, want %v", tc.weights, got, tc.want)
		}
	}
}

func TestWeightedSlotsScaledDown(t *testing.T) {
	got := weightedSlots(slots(999, 1000, 1), 100)
	c := make(map[uint32]int)
	for _, id := range got {
		c[id]++
	}
	if len(got) > 102 || c[2] != 1 || c[0] < 45 || c[1] < 45 {
		t.Errorf("scaled 999:1000:1 to %d slots: %v", len(got), c)
	}
}

func TestMaglevWeightsAndDisruption(t *testing.T) {
	const m = 16381
	table, err := maglev(slots(1, 1, 2, 4), m)
	if err != nil {
		t.Fatal(err)
	}
	share := make(map[uint32]int)
	for _, id := range table {
		share[id]++
	}
	for id, w := range []int{1, 1, 2, 4} {
		want := float64(m) * float64(w) / 8
		if dev := math.Abs(float64(share[uint32(id)])-want) / want; dev > 0.02 {
			t.Errorf("backend %d (weight %d): %d slots, want %.0f ±2%%", id, w, share[uint32(id)], want)
		}
	}

	for n := 2; n <= 32; n *= 2 {
		all := slots(slices.Repeat([]int{1}, n)...)
		before, _ := maglev(all, m)
		after, _ := maglev(all[:n-1], m)
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
			}
		}
		if frac := float64(moved) / m; frac > 1/float64(n)+0.02 {
			t.Errorf("n=%d: removing one backend moved %.2f%% of slots", n, 100*frac)
		}
	}
}

func TestMaglevIsDeterministic(t *testing.T) {
	a, _ := maglev(slots(1, 2, 3), 251)
	s := slots(1, 2, 3)
	slices.Reverse(s)
	b, err := buildTable(dataplane.Maglev, s, 251, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error("maglev table depends on the backends' order")
	}
	if _, err := maglev(slots(slices.Repeat([]int{1}, 300)...), 251); err == nil {
		t.Error("300 backends in a 251-slot table: no error")
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{MaglevTableSize: 16384},
		{Mode: "turbo"},
		{FlowTableSize: -1},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("options %+v: no error", o)
		} else {
			t.Log(err)
		}
	}
	if o, err := (Options{}).withDefaults(); err != nil || o.MaglevTableSize != 16381 || o.Mode != ModeAuto {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}
