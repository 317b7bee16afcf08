package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

func defaultGlobal() Global {
	return Global{
		DefaultInterface:            "eth0",
		VRRPMcastGroup4:             netip.MustParseAddr("224.0.0.18"),
		VRRPMcastGroup6:             netip.MustParseAddr("ff02::12"),
		VRRPVersion:                 2,
		VRRPGarpMasterDelay:         5 * time.Second,
		VRRPGarpMasterRepeat:        5,
		VRRPGarpLowerPrioDelay:      5 * time.Second,
		VRRPGarpLowerPrioRepeat:     5,
		VRRPGarpMasterRefreshRepeat: 1,
		VRRPDownTimerAdverts:        3,
		VRRPRlimitRTTime:            10 * time.Millisecond,
		Explicit:                    Explicit{},
	}
}

// Alternatives named by "recognised but not supported" warnings.
const (
	altNoEmail    = "xkeep sends no e-mail; use notify scripts"
	altNoEffect   = "it has no effect in xkeep"
	altMetrics    = "use xkeep's Prometheus metrics and xkeep status"
	altFifo       = "use notify scripts"
	altFirewall   = "xkeep manages no firewall rules"
	altNamespace  = "run xkeep itself in the namespace: ip netns exec NAME xkeep run"
	altStatic     = "configure static addresses, routes and rules in the system's network configuration"
	altRoutes     = "add and remove routes or rules from notify_master and notify_backup scripts"
	altVMAC       = "the VIP is added to the interface itself"
	altTrackProc  = "use a vrrp_script such as \"pidof NAME\""
	altBFD        = "use a vrrp_script, or a health checker on the real server"
	altLVSSync    = "connection state is not synchronised between nodes"
	altOneProcess = "xkeep is one process whose health checks need no realtime thread; the vrrp_ settings place its VRRP thread"
	altStartup    = "run it from the service manager (systemd ExecStartPre/ExecStopPost)"
	altGarpGroup  = "use the global vrrp_garp_interval and vrrp_gna_interval"
	altLinkbeat   = "xkeep follows link state through netlink"
	altAuthHMAC   = "use authentication { auth_type PASS } or no authentication"
	altDebounce   = "interface state changes take effect at once"
	altTrackGroup = "static addresses, routes and rules are not managed by xkeep"
)

// topLevelUnsupported lists top-level keywords xkeep recognises but does
// not implement.
var topLevelUnsupported = map[string]string{
	"static_ipaddress":         altStatic,
	"static_routes":            altStatic,
	"static_rules":             altStatic,
	"track_group":              altTrackGroup,
	"linkbeat_interfaces":      altLinkbeat,
	"linkbeat_use_polling":     altLinkbeat,
	"vrrp_track_process":       altTrackProc,
	"bfd_instance":             altBFD,
	"garp_group":               altGarpGroup,
	"interface_up_down_delays": altDebounce,
	"net_namespace":            altNamespace,
	"net_namespace_ipvs":       altNamespace,
	"namespace_with_ipsets":    altNoEffect,
	"instance":                 altNoEffect,
	"use_pid_dir":              altNoEffect,
	"child_wait_time":          altNoEffect,
}

// globalUnsupported lists global_defs keywords xkeep recognises but does
// not implement.
var globalUnsupported = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"notification_email", "notification_email_from", "smtp_server", "smtp_helo_name",
		"smtp_connect_timeout", "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker",
		"no_email_faults", "no_checker_emails",
	} {
		m[k] = altNoEmail
	}
	for _, k := range []string{
		"snmp_socket", "enable_snmp_vrrp", "enable_snmp_keepalived", "enable_snmp_checker",
		"enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_traps",
		"snmp_vs_stats_update_interval", "snmp_rs_stats_update_interval",
		"enable_dbus", "dbus_service_name", "dbus_no_interface_name",
		"state_file_location", "stats_file_location", "json_file_location", "json_version",
	} {
		m[k] = altMetrics
	}
	for _, k := range []string{
		"notify_fifo", "notify_fifo_script", "vrrp_notify_fifo", "vrrp_notify_fifo_script",
		"lvs_notify_fifo", "lvs_notify_fifo_script", "fifo_write_vrrp_states_on_reload",
		"vrrp_notify_priority_changes",
	} {
		m[k] = altFifo
	}
	for _, k := range []string{
		"vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority", "nftables_counters",
		"nftables_ifindex", "nftables_ipvs", "nftables_ipvs_priority", "nftables_ipvs_start_fwmark",
		"disable_local_igmp",
	} {
		m[k] = altFirewall
	}
	for _, k := range []string{"lvs_sync_daemon", "lvs_timeouts", "lvs_flush", "lvs_flush_on_stop"} {
		m[k] = altLVSSync
	}
	for _, k := range []string{"startup_script", "startup_script_timeout", "shutdown_script", "shutdown_script_timeout"} {
		m[k] = altStartup
	}
	for _, k := range []string{
		"checker_priority", "bfd_priority", "checker_no_swap", "bfd_no_swap",
		"checker_cpu_affinity", "bfd_cpu_affinity", "checker_rt_priority", "bfd_rt_priority",
		"checker_rlimit_rttime", "bfd_rlimit_rttime",
	} {
		m[k] = altOneProcess
	}
	m["vmac_prefix"] = altVMAC
	m["vmac_addr_prefix"] = altVMAC
	m["vrrp_garp_extra_if"] = "gratuitous ARPs go out on the instance's interface only"
	m["net_namespace"] = altNamespace
	m["net_namespace_ipvs"] = altNamespace
	m["linkbeat_use_polling"] = altLinkbeat
	for _, k := range []string{
		"namespace_with_ipsets", "instance", "use_pid_dir", "child_wait_time",
		"tmp_config_directory", "config_save_dir", "process_names", "process_name",
		"vrrp_process_name", "checker_process_name", "bfd_process_name", "use_symlink_paths",
		"set_supplementary_groups", "max_auto_priority", "min_auto_priority_delay",
		"dynamic_interfaces",
		"vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force",
		"vrrp_netlink_monitor_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs_force",
		"lvs_netlink_cmd_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force",
		"lvs_netlink_monitor_rcv_bufs", "lvs_netlink_monitor_rcv_bufs_force",
		"process_monitor_rcv_bufs", "process_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy",
		"vrrp_rx_bufs_multiplier", "rs_init_notifies", "umask", "vrrp_delay_after_boot",
		"log_unknown_vrids", "random_seed", "reload_check_config", "include_check",
		"reload_time_file", "reload_repeat", "reload_file", "data_use_instance",
		"iproute_usr_dir", "iproute_etc_dir", "checker_log_all_failures",
	} {
		m[k] = altNoEffect
	}
	return m
}()

func (b *builder) globalDefs(n *node) {
	g := &b.cfg.Global
	// keepalived merges repeated global_defs blocks; so does xkeep.
	if !g.Pos.IsValid() {
		g.Pos = n.kw.Pos
	}
	b.extra(n, 0)
	if !b.needBlock(n) {
		return
	}
	for _, c := range n.block {
		ok := true
		switch c.name() {
		case "router_id":
			var t token
			if t, ok = b.value(c, "a name"); ok {
				g.RouterID = t.Text
			}
		case "default_interface":
			var t token
			if t, ok = b.value(c, "an interface name"); ok {
				g.DefaultInterface = t.Text
			}
		case "vrrp_mcast_group4":
			var a netip.Addr
			if a, ok = b.addrValue(c); ok {
				if !a.Is4() || !a.IsMulticast() {
					b.invalid(c, c.args[0], "an IPv4 multicast address, e.g. 224.0.0.18")
					ok = false
				} else {
					g.VRRPMcastGroup4 = a
				}
			}
		case "vrrp_mcast_group6":
			var a netip.Addr
			if a, ok = b.addrValue(c); ok {
				if !a.Is6() || !a.IsMulticast() {
					b.invalid(c, c.args[0], "an IPv6 multicast address, e.g. ff02::12")
					ok = false
				} else {
					g.VRRPMcastGroup6 = a
				}
			}
		case "vrrp_version":
			g.VRRPVersion, ok = b.versionValue(c, g.VRRPVersion)
		case "vrrp_garp_master_delay":
			g.VRRPGarpMasterDelay, ok = b.wholeSeconds(c, g.VRRPGarpMasterDelay)
		case "vrrp_garp_master_repeat":
			g.VRRPGarpMasterRepeat, ok = b.intOr(c, 1, 255, g.VRRPGarpMasterRepeat)
		case "vrrp_garp_lower_prio_delay":
			g.VRRPGarpLowerPrioDelay, ok = b.wholeSeconds(c, g.VRRPGarpLowerPrioDelay)
		case "vrrp_garp_lower_prio_repeat":
			g.VRRPGarpLowerPrioRepeat, ok = b.intOr(c, 0, 255, g.VRRPGarpLowerPrioRepeat)
		case "vrrp_garp_master_refresh":
			g.VRRPGarpMasterRefresh, ok = b.wholeSeconds(c, g.VRRPGarpMasterRefresh)
		case "vrrp_garp_master_refresh_repeat":
			g.VRRPGarpMasterRefreshRepeat, ok = b.intOr(c, 1, 255, g.VRRPGarpMasterRefreshRepeat)
		case "vrrp_garp_interval":
			g.VRRPGarpInterval, ok = b.secondsOr(c, g.VRRPGarpInterval)
		case "vrrp_gna_interval":
			g.VRRPGnaInterval, ok = b.secondsOr(c, g.VRRPGnaInterval)
		case "vrrp_min_garp":
			g.VRRPMinGarp, ok = b.flagOr(c, g.VRRPMinGarp)
		case "vrrp_lower_prio_no_advert":
			g.VRRPLowerPrioNoAdvert, ok = b.flagOr(c, g.VRRPLowerPrioNoAdvert)
		case "vrrp_higher_prio_send_advert":
			g.VRRPHigherPrioSendAdvert, ok = b.flagOr(c, g.VRRPHigherPrioSendAdvert)
		case "vrrp_skip_check_adv_addr":
			g.VRRPSkipCheckAdvAddr, ok = b.flagOr(c, g.VRRPSkipCheckAdvAddr)
		case "vrrp_check_unicast_src":
			g.VRRPCheckUnicastSrc, ok = b.flagOr(c, g.VRRPCheckUnicastSrc)
		case "vrrp_strict":
			g.VRRPStrict, ok = b.flagOr(c, g.VRRPStrict)
		case "v3_checksum_as_v2":
			g.V3ChecksumAsV2, ok = b.flagOr(c, g.V3ChecksumAsV2)
		case "vrrp_startup_delay":
			g.VRRPStartupDelay, ok = b.secondsOr(c, g.VRRPStartupDelay)
		case "vrrp_down_timer_adverts":
			g.VRRPDownTimerAdverts, ok = b.intOr(c, 1, 100, g.VRRPDownTimerAdverts)
		case "vrrp_rt_priority":
			g.VRRPRealtimePriority, ok = b.intOr(c, 1, 99, g.VRRPRealtimePriority)
		case "vrrp_priority":
			g.VRRPNice, ok = b.intOr(c, -20, 19, g.VRRPNice)
		case "vrrp_cpu_affinity":
			var cpus []int
			if cpus, ok = b.cpuList(c); ok {
				g.VRRPCPUs = cpus
			}
		case "vrrp_rlimit_rttime":
			var us int
			if us, ok = b.intOr(c, 2, math.MaxInt32, 0); ok {
				g.VRRPRlimitRTTime = time.Duration(us) * time.Microsecond
			}
		case "vrrp_no_swap":
			b.bare(c)
			g.VRRPNoSwap = true
		case "script_user":
			b.noBlock(c)
			if len(c.args) == 0 {
				b.d.errorf(c.kw.Pos, "script_user needs a value (want username [[:]groupname])")
				ok = false
			} else {
				g.ScriptUser, g.ScriptGroup = splitUserGroup(c.args)
				b.extra(c, 2)
			}
		case "enable_script_security":
			b.bare(c)
			g.EnableScriptSecurity = true
		default:
			b.other(c, "in global_defs", globalUnsupported)
			continue
		}
		if ok {
			g.Explicit.set(c.name(), c.kw.Pos)
		}
	}
	if g.VRRPMinGarp {
		// vrrp_min_garp: one GARP on becoming master, no second burst.
		if !g.Explicit.Has("vrrp_garp_master_repeat") {
			g.VRRPGarpMasterRepeat = 1
		}
		if !g.Explicit.Has("vrrp_garp_master_delay") {
			g.VRRPGarpMasterDelay = 0
		}
	}
	if !g.Explicit.Has("vrrp_garp_lower_prio_delay") {
		g.VRRPGarpLowerPrioDelay = g.VRRPGarpMasterDelay
	}
	if !g.Explicit.Has("vrrp_garp_lower_prio_repeat") {
		g.VRRPGarpLowerPrioRepeat = g.VRRPGarpMasterRepeat
	}
}

// cpuList reads vrrp_cpu_affinity's CPU numbers (as /proc/cpuinfo's
// "processor" lines count them).
func (b *builder) cpuList(n *node) ([]int, bool) {
	b.noBlock(n)
	if len(n.args) == 0 {
		b.d.errorf(n.kw.Pos, "%s needs at least one CPU number (want integers 0-%d)", n.name(), maxCPU)
		return nil, false
	}
	var cpus []int
	for _, t := range n.args {
		cpu, ok := b.intToken(n, t, 0, maxCPU, fmt.Sprintf("a CPU number 0-%d", maxCPU))
		if !ok {
			return nil, false
		}
		if !slices.Contains(cpus, cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, true
}

// maxCPU is the highest CPU number an affinity mask holds (the kernel's
// CPU_SETSIZE, 1024, less one).
const maxCPU = 1023

// intOr reads an integer value, keeping old when it is invalid.
func (b *builder) intOr(n *node, min, max, old int) (int, bool) {
	if v, ok := b.intValue(n, min, max); ok {
		return v, true
	}
	return old, false
}

func (b *builder) secondsOr(n *node, old time.Duration) (time.Duration, bool) {
	if v, ok := b.secondsValue(n, 0, 0); ok {
		return v, true
	}
	return old, false
}

// wholeSeconds reads the garp delays, which keepalived keeps in seconds.
func (b *builder) wholeSeconds(n *node, old time.Duration) (time.Duration, bool) {
	if v, ok := b.intValue(n, 0, 86400); ok {
		return time.Duration(v) * time.Second, true
	}
	return old, false
}

func (b *builder) flagOr(n *node, old bool) (bool, bool) {
	if v, ok := b.flag(n); ok {
		return v, true
	}
	return old, false
}

func (b *builder) versionValue(n *node, old int) (int, bool) {
	t, ok := b.value(n, "2 or 3")
	if !ok {
		return old, false
	}
	switch t.Text {
	case "2":
		return 2, true
	case "3":
		return 3, true
	}
	b.invalid(n, t, "2 or 3")
	return old, false
}

func (b *builder) sslContext(n *node) {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return
	}
	if b.cfg.SSL != nil {
		b.d.warnf(n.kw.Pos, "SSL context already defined at %s (this one replaces it)", b.cfg.SSL.Pos)
	}
	s := &SSLContext{Pos: n.kw.Pos}
	for _, c := range n.block {
		var dst *string
		switch c.name() {
		case "password":
			dst = &s.Password
		case "ca":
			dst = &s.CA
		case "certificate":
			dst = &s.Certificate
		case "key":
			dst = &s.Key
		default:
			b.other(c, "in SSL", nil)
			continue
		}
		if t, ok := b.value(c, "a file name or string"); ok {
			*dst = t.Text
		}
	}
	b.cfg.SSL = s
}
