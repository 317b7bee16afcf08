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
// VM and, for names present in both dataplane/ipvs and dataplane/xdp, the
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
	ipvs := map[string]float64{}
	xdp := map[string]float64{}
	for _, b := range all {
		fmt.Fprintf(w, "bench:   %-40s %-28s %14.0f %s\n", b.Name, b.Pkg, b.Rate, pktRateUnit)
		switch {
		case strings.HasSuffix(b.Pkg, "/dataplane/ipvs"):
			ipvs[b.Name] = b.Rate
		case strings.HasSuffix(b.Pkg, "/dataplane/xdp"):
			xdp[b.Name] = b.Rate
		}
	}
	names := make([]string, 0, len(ipvs))
	for n := range ipvs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		x, ok := xdp[n]
		switch {
		case !ok:
			fmt.Fprintf(w, "bench:   %-40s ipvs %.0f %s, no dataplane/xdp benchmark of that name: no ratio\n", n, ipvs[n], pktRateUnit)
		case ipvs[n] == 0:
			fmt.Fprintf(w, "bench:   %-40s ipvs forwarded nothing: no ratio\n", n)
		default:
			fmt.Fprintf(w, "bench:   %-40s xdp/ipvs = %.2fx (xdp %.0f, ipvs %.0f %s)\n", n, x/ipvs[n], x, ipvs[n], pktRateUnit)
		}
	}
}
