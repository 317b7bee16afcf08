package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// pktRateUnit is the metric the forwarding benchmarks report with
// b.ReportMetric: packets per second delivered to the real servers.
const pktRateUnit = "pkts/s"

// benchResult is one benchmark line's packet rate.
type benchResult struct {
	Pkg  string // import path
	Name string // without the -GOMAXPROCS suffix
	Rate float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parseBenchRates finds the pkts/s metric in go test -bench output lines.
func parseBenchRates(pkg string, lines []string) []benchResult {
	var out []benchResult
	for _, line := range lines {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			if f[i+1] != pktRateUnit {
				continue
			}
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				out = append(out, benchResult{Pkg: pkg, Name: m[1], Rate: v})
			}
		}
	}
	return out
}

// printBenchComparison prints every packet-rate benchmark measured in the
// VM and, for each pair of sub-benchmarks NAME/ipvs and NAME/xdp, the
// XDP/IPVS ratio.
func printBenchComparison(w io.Writer, rep *vmReport) {
	var all []benchResult
	for _, r := range rep.Results {
		all = append(all, parseBenchRates(r.Pkg, r.Output)...)
	}
	fmt.Fprintf(w, "bench: packets/s forwarded inside the VM (%s, TCG); ratio = xdp / ipvs, same VM, same run\n", rep.Release)
	if len(all) == 0 {
		fmt.Fprintf(w, "bench:   no benchmark reported %s\n", pktRateUnit)
		return
	}
	// With -count, every row has several samples, taken in turns (ipvs,
	// xdp, ipvs, ...): the median of each resists a busy host.
	samples := map[string][]float64{}
	var order []string
	for _, b := range all {
		k := b.Pkg + " " + b.Name
		if _, ok := samples[k]; !ok {
			order = append(order, k)
		}
		samples[k] = append(samples[k], b.Rate)
	}
	ipvs := map[string]float64{}
	xdp := map[string]float64{}
	for _, k := range order {
		pkg, name, _ := strings.Cut(k, " ")
		med := median(samples[k])
		fmt.Fprintf(w, "bench:   %-32s %14.0f %s  median of %d %v  (%s)\n", name, med, pktRateUnit, len(samples[k]), rounded(samples[k]), pkg)
		if prefix, ok := strings.CutSuffix(name, "/ipvs"); ok {
			ipvs[pkg+" "+prefix] = med
		}
		if prefix, ok := strings.CutSuffix(name, "/xdp"); ok {
			xdp[pkg+" "+prefix] = med
		}
	}
	keys := make([]string, 0, len(ipvs))
	for k := range ipvs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k[strings.IndexByte(k, ' ')+1:]
		x, ok := xdp[k]
		switch {
		case !ok:
			fmt.Fprintf(w, "bench:   %s: no %s/xdp row: no ratio\n", name, name)
		case ipvs[k] == 0:
			fmt.Fprintf(w, "bench:   %s: ipvs forwarded nothing: no ratio\n", name)
		default:
			fmt.Fprintf(w, "bench:   %s: xdp/ipvs = %.2fx (xdp %.0f, ipvs %.0f %s)\n", name, x/ipvs[k], x, ipvs[k], pktRateUnit)
		}
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(v []float64) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x + 0.5)
	}
	return out
}
