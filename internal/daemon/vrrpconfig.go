package daemon

import (
	"fmt"
	"strconv"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/vrrp"
	"github.com/xkeep/xkeep/vrrp/packet"
)

// VRRPConfig translates the configuration model into the vrrp engine's
// own types. Settings xkeep reads but does not act on come back as
// warnings (already located at their file:line:col).
func VRRPConfig(cfg *config.Config) (vrrp.Config, []string, error) {
	var out vrrp.Config
	var warns []string
	warn := func(pos config.Pos, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("%s: %s", pos, fmt.Sprintf(format, args...)))
	}
	g := cfg.Global
	out.ScriptUser = g.ScriptUser
	out.StartupDelay = g.VRRPStartupDelay
	out.Thread = vrrp.ThreadConfig{RealtimePriority: g.VRRPRealtimePriority, RTTimeLimit: g.VRRPRlimitRTTime,
		Nice: g.VRRPNice, CPUs: g.VRRPCPUs}

	for _, s := range cfg.Scripts {
		sc := vrrp.ScriptConfig{Name: s.Name, Interval: s.Interval, Timeout: s.Timeout,
			Rise: s.Rise, Fall: s.Fall, InitFail: s.InitFail}
		if s.Script != nil {
			sc.Command = s.Script.Cmd
			sc.User = s.Script.User
		}
		if s.User != "" {
			sc.User = s.User
		}
		out.Scripts = append(out.Scripts, sc)
	}

	for _, f := range cfg.TrackFiles {
		out.Files = append(out.Files, vrrp.FileConfig{Name: f.Name, Path: f.Path,
			Init: f.InitFile, InitValue: f.InitValue, InitOverwrite: f.InitOverwrite})
	}

	groupOf := map[string]*config.SyncGroup{}
	for _, sg := range cfg.SyncGroups {
		out.SyncGroups = append(out.SyncGroups, vrrp.SyncGroupConfig{
			Name: sg.Name, Instances: sg.Instances, Notify: notify(sg.Notify)})
		for _, n := range sg.Instances {
			groupOf[n] = sg
		}
	}

	for _, in := range cfg.Instances {
		ic, err := instance(in, g, warn)
		if err != nil {
			return vrrp.Config{}, warns, fmt.Errorf("%s: vrrp_instance %s: %w", in.Pos, in.Name, err)
		}
		// A sync group's trackers apply to each of its instances.
		if sg := groupOf[in.Name]; sg != nil {
			ic.TrackInterfaces = append(ic.TrackInterfaces, trackInterfaces(sg.TrackInterfaces)...)
			ic.TrackScripts = append(ic.TrackScripts, trackScripts(sg.TrackScripts)...)
			ic.TrackFiles = append(ic.TrackFiles, trackFiles(sg.TrackFiles)...)
		}
		out.Instances = append(out.Instances, ic)
	}
	if err := out.Validate(); err != nil {
		return vrrp.Config{}, warns, err
	}
	return out, warns, nil
}

func instance(in *config.VRRPInstance, g config.Global, warn func(config.Pos, string, ...any)) (vrrp.InstanceConfig, error) {
	ic := vrrp.InstanceConfig{
		Name:                 in.Name,
		Interface:            in.Interface,
		Version:              in.Version,
		AdvertInterval:       in.AdvertInterval,
		StartAsMaster:        in.State == config.StateMaster,
		NoPreempt:            in.Nopreempt,
		PreemptDelay:         in.PreemptDelay,
		SourceAddr:           in.SrcIP,
		UnicastTTL:           uint8(in.UnicastTTL),
		LowerPrioNoAdvert:    in.LowerPrioNoAdvert,
		HigherPrioSendAdvert: in.HigherPrioSendAdvert,
		DownTimerAdverts:     in.DownTimerAdverts,
		// keepalived accepts unicast adverts from any source unless
		// check_unicast_src (or a peer's min_ttl/max_ttl) asks otherwise.
		UnicastAnySource: !in.CheckUnicastSrc,
		GARP: vrrp.GARPConfig{
			MasterRepeat:        in.GarpMasterRepeat,
			MasterDelay:         in.GarpMasterDelay,
			MasterRefresh:       in.GarpMasterRefresh,
			MasterRefreshRepeat: in.GarpMasterRefreshRepeat,
			LowerPrioRepeat:     in.GarpLowerPrioRepeat,
			LowerPrioDelay:      in.GarpLowerPrioDelay,
			Interval:            g.VRRPGarpInterval,
		},
		TrackInterfaces: trackInterfaces(in.TrackInterfaces),
		TrackScripts:    trackScripts(in.TrackScripts),
		TrackFiles:      trackFiles(in.TrackFiles),
		Notify:          notify(in.Notify),
	}
	if in.VRID < 1 || in.VRID > 255 {
		return ic, fmt.Errorf("virtual_router_id %d (want 1..255)", in.VRID)
	}
	ic.VRID = uint8(in.VRID)
	if in.Priority < 1 || in.Priority > 255 {
		return ic, fmt.Errorf("priority %d (want 1..255)", in.Priority)
	}
	ic.Priority = uint8(in.Priority)
	if in.Family == config.IPv6 {
		ic.GARP.Interval = g.VRRPGnaInterval
	}
	if in.V3ChecksumAsV2 {
		ic.Checksum = packet.MessageOnly
	}
	if in.Auth != nil {
		switch in.Auth.Type {
		case config.AuthPass:
			ic.AuthType, ic.AuthPass = packet.AuthPass, in.Auth.Pass
		default:
			return ic, fmt.Errorf("auth_type %s is not supported (use PASS, or none)", in.Auth.Type)
		}
	}
	for _, p := range in.UnicastPeers {
		ic.UnicastPeers = append(ic.UnicastPeers, p.Addr)
	}
	var err error
	if ic.VIPs, err = vips(in.VIPs); err != nil {
		return ic, err
	}
	if ic.ExcludedVIPs, err = vips(in.ExcludedVIPs); err != nil {
		return ic, err
	}
	// The group: mcast_dst_ip, else global_defs' vrrp_mcast_group4/6
	// (the vrrp engine ignores it for unicast instances).
	switch {
	case in.McastDstIP.IsValid():
		ic.McastGroup = in.McastDstIP
	case in.Family == config.IPv6:
		ic.McastGroup = g.VRRPMcastGroup6
	default:
		ic.McastGroup = g.VRRPMcastGroup4
	}
	return ic, nil
}

func vips(vs []config.VirtualAddress) ([]vrrp.VIP, error) {
	var out []vrrp.VIP
	for _, v := range vs {
		scope, err := scopeOf(v.Scope)
		if err != nil {
			return nil, fmt.Errorf("%s: virtual address %s: %w", v.Pos, v.Prefix, err)
		}
		out = append(out, vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Scope: scope})
	}
	return out, nil
}

// scopeOf maps ip-address(8) scope names to their numbers.
func scopeOf(s string) (uint8, error) {
	switch s {
	case "", "global", "universe":
		return 0, nil
	case "site":
		return 200, nil
	case "link":
		return 253, nil
	case "host":
		return 254, nil
	case "nowhere":
		return 255, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown scope %q (want global, site, link, host, nowhere or 0..255)", s)
	}
	return uint8(n), nil
}

func trackInterfaces(ts []config.TrackInterface) []vrrp.TrackInterface {
	var out []vrrp.TrackInterface
	for _, t := range ts {
		out = append(out, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
	}
	return out
}

func trackScripts(ts []config.TrackScript) []vrrp.TrackScript {
	var out []vrrp.TrackScript
	for _, t := range ts {
		out = append(out, vrrp.TrackScript{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
	}
	return out
}

func trackFiles(tf []config.TrackFileRef) []vrrp.TrackFile {
	var out []vrrp.TrackFile
	for _, t := range tf {
		out = append(out, vrrp.TrackFile{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
	}
	return out
}

func notify(n config.Notify) vrrp.NotifyConfig {
	return vrrp.NotifyConfig{Master: n.Master.String(), Backup: n.Backup.String(), Fault: n.Fault.String(),
		Stop: n.Stop.String(), Any: n.Any.String(), MasterRxLowerPri: n.MasterRxLowerPri.String()}
}
