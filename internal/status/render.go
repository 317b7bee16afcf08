package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Render prints the snapshot for people: the VRRP instances, then the
// virtual services laid out like `ipvsadm -Ln --stats`.
func Render(w io.Writer, s Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "xkeep: dataplane %s, config %s", s.Dataplane, s.Config.Path)
	if !s.Config.LoadedAt.IsZero() {
		fmt.Fprintf(tw, " (loaded %s)", s.Config.LoadedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(tw)
	if s.Config.Reloads > 0 {
		result := "ok"
		if !s.Config.LastReloadOK {
			result = "FAILED: " + s.Config.LastReloadError
		}
		fmt.Fprintf(tw, "last reload %s: %s\n", s.Config.LastReloadAt.Format(time.RFC3339), result)
	}
	if n := len(s.Config.Warnings); n > 0 {
		fmt.Fprintf(tw, "configuration warnings: %d (xkeep status --json lists them)\n", n)
	}
	if s.Apply.LastError != "" {
		fmt.Fprintf(tw, "dataplane apply FAILED (%d of %d, retrying): %s\n", s.Apply.Failures, s.Apply.Applies, s.Apply.LastError)
	}
	for _, e := range s.Errors {
		fmt.Fprintf(tw, "error: %s\n", e)
	}

	fmt.Fprintln(tw, "\nVRRP")
	fmt.Fprintln(tw, "Instance\tState\tPrio\tEffPrio\tVRID\tVer\tInterface\tMaster\tVIPs\tSent\tRcvd\tErrors")
	for _, in := range s.Instances {
		master := "-"
		if in.Master.IsValid() {
			master = in.Master.String()
		}
		vips := make([]string, len(in.VIPs))
		for i, v := range in.VIPs {
			vips[i] = v.String()
		}
		var errs uint64
		for _, n := range in.Counters.ReceiveErrors {
			errs += n
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\tv%d\t%s\t%s\t%s\t%d\t%d\t%d\n",
			in.Name, in.State, in.Priority, in.EffectivePriority, in.VRID, in.Version,
			in.Interface, master, strings.Join(vips, ","),
			in.Counters.AdvertsSent, in.Counters.AdvertsReceived, errs)
		if len(in.FaultReasons) > 0 {
			fmt.Fprintf(tw, "  fault: %s\n", strings.Join(in.FaultReasons, "; "))
		}
	}
	if len(s.VRRPDropped) > 0 {
		var parts []string
		for _, k := range sortedKeys(s.VRRPDropped) {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.VRRPDropped[k]))
		}
		fmt.Fprintf(tw, "dropped before matching an instance: %s\n", strings.Join(parts, ", "))
	}

	if len(s.Scripts) > 0 {
		var scripts []string
		for _, sc := range s.Scripts {
			result := "ok"
			if !sc.OK {
				result = "FAILING"
			}
			scripts = append(scripts, sc.Name+" "+result)
		}
		fmt.Fprintf(tw, "vrrp_script: %s\n", strings.Join(scripts, ", "))
	}
	if len(s.TrackFiles) > 0 {
		var files []string
		for _, f := range s.TrackFiles {
			files = append(files, fmt.Sprintf("%s %d", f.Name, f.Value))
		}
		fmt.Fprintf(tw, "track_file: %s\n", strings.Join(files, ", "))
	}

	fmt.Fprintln(tw, "\nVirtual services")
	fmt.Fprintln(tw, "Prot LocalAddress:Port\tScheduler\tFlags\tNewFlows\tPackets\tBytes\t")
	fmt.Fprintln(tw, "  -> RemoteAddress:Port\tForward\tWeight\tHealth\tActiveFlows\tPackets\tBytes")
	for _, svc := range s.Services {
		var flags []string
		if svc.Persistence > 0 {
			flags = append(flags, fmt.Sprintf("persistent %d", int(svc.Persistence.Seconds())))
		}
		if svc.Active {
			flags = append(flags, "served")
		} else {
			flags = append(flags, "standby")
		}
		if svc.Quorum > 0 && !svc.QuorumUp {
			flags = append(flags, "quorum-down")
		}
		if svc.SorryActive {
			flags = append(flags, "sorry")
		}
		if len(svc.Instances) > 0 {
			flags = append(flags, strings.Join(svc.Instances, "+"))
		} else if svc.FWMark == 0 {
			flags = append(flags, "no-vrrp")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t\n", svc.Name(), svc.Scheduler,
			strings.Join(flags, ","), svc.NewFlows, svc.Packets, svc.Bytes)
		for _, b := range svc.Backends {
			health := "up"
			if !b.Healthy {
				health = "DOWN"
			}
			if b.Sorry {
				health = "sorry"
			}
			weight := fmt.Sprint(b.EffectiveWeight)
			if b.EffectiveWeight != b.Weight {
				weight = fmt.Sprintf("%d/%d", b.EffectiveWeight, b.Weight)
			}
			fmt.Fprintf(tw, "  -> %s:%d\t%s\t%s\t%s\t%d\t%d\t%d\n", b.Addr, b.Port,
				forwardName(svc.Forward), weight, health, b.ActiveFlows, b.Packets, b.Bytes)
		}
	}
	var reasons []string
	for _, k := range sortedKeys(s.PacketReasons) {
		if s.PacketReasons[k] > 0 {
			reasons = append(reasons, k)
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintln(tw, "\nDataplane verdicts (non-zero)")
		for _, k := range reasons {
			fmt.Fprintf(tw, "  %s\t%d\n", k, s.PacketReasons[k])
		}
	}
	return tw.Flush()
}

// forwardName uses ipvsadm's words for forwarding methods.
func forwardName(f string) string {
	switch f {
	case "DR":
		return "Route"
	case "NAT":
		return "Masq"
	case "TUN":
		return "Tunnel"
	}
	return f
}

func sortedKeys(m map[string]uint64) []string {
	return slices.Sorted(maps.Keys(m))
}
