package xdp

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/big"
	"slices"

	"github.com/xkeep/xkeep/dataplane"
)

// A scheduling table is what the program indexes for a new flow: a list of
// backend ids. Its meaning depends on the scheduler:
//
//	rr, lc, wlc  every usable backend once
//	wrr, sh      every usable backend in proportion to its weight, interleaved
//	mh           a Maglev lookup table of a prime size
//
// Builders are pure and deterministic (sorted by backend address), so two
// nodes with the same configuration build the same tables: after a VRRP
// failover, sh and mh send a client where the old master did.

// slot is one usable backend as the table builders see it.
type slot struct {
	key    dataplane.BackendKey
	id     uint32
	weight int
}

func sortSlots(s []slot) {
	slices.SortFunc(s, func(a, b slot) int {
		if c := a.key.Addr.Compare(b.key.Addr); c != 0 {
			return c
		}
		return cmp.Compare(a.key.Port, b.key.Port)
	})
}

// buildTable returns the table for sched over the usable backends.
func buildTable(sched dataplane.Scheduler, backends []slot, maglevSize, maxSlots int) ([]uint32, error) {
	backends = slices.Clone(backends)
	sortSlots(backends)
	switch sched {
	case dataplane.RoundRobin, dataplane.LeastConn, dataplane.WeightedLeastConn:
		ids := make([]uint32, len(backends))
		for i, b := range backends {
			ids[i] = b.id
		}
		return ids, nil
	case dataplane.WeightedRoundRobin, dataplane.SourceHash:
		return weightedSlots(backends, maxSlots), nil
	case dataplane.Maglev:
		return maglev(backends, maglevSize)
	}
	return nil, fmt.Errorf("scheduler %q not supported by xdp (want rr, wrr, sh, mh, lc, wlc)", sched)
}

// weightedSlots lists each backend weight/gcd times, interleaved evenly:
// slot k of a backend of weight w sits at virtual time (k+0.5)/w, and the
// list is sorted by virtual time (ties by address). A list longer than
// maxSlots is scaled down, which rounds the weights.
func weightedSlots(backends []slot, maxSlots int) []uint32 {
	if len(backends) == 0 {
		return nil
	}
	g := 0
	total := 0
	for _, b := range backends {
		g = gcd(g, b.weight)
	}
	weights := make([]int, len(backends))
	for i, b := range backends {
		weights[i] = b.weight / g
		total += weights[i]
	}
	if maxSlots > 0 && total > maxSlots {
		scaled := 0
		for i := range weights {
			weights[i] = max(1, int(int64(weights[i])*int64(maxSlots)/int64(total)))
			scaled += weights[i]
		}
		total = scaled
	}
	type pos struct {
		num, den int64 // virtual time (2k+1)/(2w)
		order    int
	}
	all := make([]pos, 0, total)
	for i, w := range weights {
		for k := 0; k < w; k++ {
			all = append(all, pos{num: int64(2*k + 1), den: int64(2 * w), order: i})
		}
	}
	slices.SortFunc(all, func(a, b pos) int {
		if c := cmp.Compare(a.num*b.den, b.num*a.den); c != 0 {
			return c
		}
		return cmp.Compare(a.order, b.order)
	})
	ids := make([]uint32, len(all))
	for i, p := range all {
		ids[i] = backends[p.order].id
	}
	return ids
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maglev fills a lookup table of size m (prime) as in the Maglev paper,
// weighted as katran does: in each round a backend claims its next
// preferred slot only when its accumulated weight reaches the largest
// weight, so it ends up with slots in proportion to its weight. Removing
// one of N backends moves about 1/N of the slots.
func maglev(backends []slot, m int) ([]uint32, error) {
	if len(backends) == 0 {
		return nil, nil
	}
	if len(backends) > m {
		return nil, fmt.Errorf("%d backends do not fit a Maglev table of %d slots (raise the table size)", len(backends), m)
	}
	n := len(backends)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	maxWeight := 0
	for i, b := range backends {
		offset[i] = hashKey(b.key, 0) % uint64(m)
		skip[i] = hashKey(b.key, 1)%uint64(m-1) + 1
		maxWeight = max(maxWeight, b.weight)
	}
	next := make([]uint64, n)
	acc := make([]int, n)
	owner := make([]int32, m)
	for i := range owner {
		owner[i] = -1
	}
	filled := 0
	for filled < m {
		for i := 0; i < n && filled < m; i++ {
			acc[i] += backends[i].weight
			if acc[i] < maxWeight {
				continue
			}
			acc[i] -= maxWeight
			for {
				c := (offset[i] + next[i]*skip[i]) % uint64(m)
				next[i]++
				if owner[c] < 0 {
					owner[c] = int32(i)
					filled++
					break
				}
			}
		}
	}
	ids := make([]uint32, m)
	for i, o := range owner {
		ids[i] = backends[o].id
	}
	return ids, nil
}

// hashKey is a stable hash of a backend's address and port (FNV-1a, the
// same on every node and every run).
func hashKey(k dataplane.BackendKey, seed byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte{seed})
	b, _ := k.Addr.MarshalBinary()
	h.Write(b)
	h.Write([]byte{byte(k.Port >> 8), byte(k.Port)})
	return h.Sum64()
}

func isPrime(n int) bool { return n > 1 && big.NewInt(int64(n)).ProbablyPrime(20) }
