package rig

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Conf is a keepalived.conf in the seed's shape (/work/shared/seed:
// global_defs, vrrp_script, vrrp_instance, virtual_server with TCP_CHECK)
// with every timer the scenarios vary as a field. Render writes it as
// keepalived's language; the timer methods derive the bounds tests assert
// from the same values.
type Conf struct {
	RouterID  string
	Scripts   []Script
	Instances []Instance
	Services  []VirtualServer
}

// Script is a vrrp_script.
type Script struct {
	Name     string
	Path     string
	Interval time.Duration
	Weight   int // 0: failure means FAULT
	Fall     int // 0: keepalived's default (1)
	Rise     int
}

// Instance is a vrrp_instance.
type Instance struct {
	Name      string
	State     string // MASTER or BACKUP
	Interface string
	VRID      int
	Priority  int
	AdvertInt time.Duration
	Version   int    // 2 or 3
	AuthPass  string // VRRPv2 PASS authentication; empty: none
	Nopreempt bool
	VIPs      []netip.Addr
	// TrackScripts names vrrp_scripts.
	TrackScripts []string
	// Notify scripts, run with the state and the first VIP as arguments.
	NotifyMaster, NotifyBackup, NotifyFault string
}

// VirtualServer is a virtual_server with TCP real servers.
type VirtualServer struct {
	VIP         netip.Addr
	Port        uint16
	DelayLoop   time.Duration
	Algo        string // lb_algo
	Kind        string // lb_kind
	Persistence time.Duration
	Reals       []RealServer
}

// RealServer is a real_server with a TCP_CHECK.
type RealServer struct {
	Addr   netip.Addr
	Port   uint16
	Weight int
	Check  TCPCheck
}

// TCPCheck is a real server's TCP_CHECK.
type TCPCheck struct {
	ConnectTimeout   time.Duration
	Retry            int
	DelayBeforeRetry time.Duration
}

var confTemplate = template.Must(template.New("conf").Funcs(template.FuncMap{
	"secs": seconds,
}).Parse(`! Configuration File for keepalived (written by xkeep's test rig)

global_defs {
   router_id {{.RouterID}}
}
{{range .Scripts}}
vrrp_script {{.Name}} {
    script "{{.Path}}"
    interval {{secs .Interval}}
    weight {{.Weight}}
{{- if .Fall}}
    fall {{.Fall}}
{{- end}}
{{- if .Rise}}
    rise {{.Rise}}
{{- end}}
}
{{end}}
{{- range .Instances}}
vrrp_instance {{.Name}} {
    state {{.State}}
    interface {{.Interface}}
    virtual_router_id {{.VRID}}
    priority {{.Priority}}
    advert_int {{secs .AdvertInt}}
    version {{.Version}}
{{- if .Nopreempt}}
    nopreempt
{{- end}}
{{- if .AuthPass}}
    authentication {
        auth_type PASS
        auth_pass {{.AuthPass}}
    }
{{- end}}
    virtual_ipaddress {
{{- range .VIPs}}
        {{.}}
{{- end}}
    }
{{- if .TrackScripts}}
    track_script {
{{- range .TrackScripts}}
        {{.}}
{{- end}}
    }
{{- end}}
{{- $vip := index .VIPs 0}}
{{- if .NotifyMaster}}
    notify_master "{{.NotifyMaster}} master {{$vip}}"
{{- end}}
{{- if .NotifyBackup}}
    notify_backup "{{.NotifyBackup}} backup {{$vip}}"
{{- end}}
{{- if .NotifyFault}}
    notify_fault "{{.NotifyFault}} fault {{$vip}}"
{{- end}}
}
{{end}}
{{- range .Services}}
virtual_server {{.VIP}} {{.Port}} {
    delay_loop {{secs .DelayLoop}}
    lb_algo {{.Algo}}
    lb_kind {{.Kind}}
{{- if .Persistence}}
    persistence_timeout {{secs .Persistence}}
{{- end}}
    protocol TCP
{{range .Reals}}
    real_server {{.Addr}} {{.Port}} {
        weight {{.Weight}}
        TCP_CHECK {
            connect_port {{.Port}}
            connect_timeout {{secs .Check.ConnectTimeout}}
            retry {{.Check.Retry}}
            delay_before_retry {{secs .Check.DelayBeforeRetry}}
        }
    }
{{end -}}
}
{{end}}`))

// Render returns the configuration text.
func (c Conf) Render() string {
	for _, in := range c.Instances {
		if len(in.VIPs) == 0 {
			panic(fmt.Sprintf("rig: vrrp_instance %s has no VIP", in.Name))
		}
	}
	var b strings.Builder
	if err := confTemplate.Execute(&b, c); err != nil {
		panic(fmt.Sprintf("rig: render configuration: %v", err)) // the template is static
	}
	return b.String()
}

// seconds writes d as keepalived's decimal seconds ("1", "0.2").
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// SkewTime is RFC 5798's Skew_Time for a backup of priority prio: VRRPv3
// scales it by the advert interval, VRRPv2 (RFC 3768) uses seconds.
func (in Instance) SkewTime(prio int) time.Duration {
	if in.Version == 2 {
		return time.Duration(int64(256-prio) * int64(time.Second) / 256)
	}
	return time.Duration(int64(256-prio) * int64(in.AdvertInt) / 256)
}

// MasterDownInterval is how long a backup of priority prio waits without
// adverts before it takes over: 3 * Advertisement_Interval + Skew_Time.
func (in Instance) MasterDownInterval(prio int) time.Duration {
	return 3*in.AdvertInt + in.SkewTime(prio)
}

// DownBound is the longest a TCP_CHECK takes to declare a real server
// that died right after a passing check down: the next check after
// delay_loop, then retry more attempts delay_before_retry apart, each
// allowed connect_timeout.
func (vs VirtualServer) DownBound(rs RealServer) time.Duration {
	c := rs.Check
	return vs.DelayLoop + time.Duration(c.Retry+1)*c.ConnectTimeout + time.Duration(c.Retry)*c.DelayBeforeRetry
}

// UpBound is the longest a TCP_CHECK takes to see a recovered real
// server: while down it keeps probing, at most delay_loop (or
// delay_before_retry, when longer) apart, each allowed connect_timeout.
func (vs VirtualServer) UpBound(rs RealServer) time.Duration {
	return max(vs.DelayLoop, rs.Check.DelayBeforeRetry) + rs.Check.ConnectTimeout
}
