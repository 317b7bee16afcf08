package health

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Config is what the health checker watches: keepalived's virtual_server
// blocks reduced to what checking needs. The daemon builds it from the
// parsed configuration, with every inherited value (virtual server ->
// real server -> checker) already resolved.
type Config struct {
	VirtualServers []VirtualServer
}

// VirtualServer is one virtual_server: its real servers and the quorum
// rules over them.
type VirtualServer struct {
	// Name identifies the virtual server in results, e.g. "TCP
	// 192.0.2.1:80" or "FWM 7". Unique within a Config.
	Name string
	// Quorum is the least total weight of alive real servers for the
	// service to count as up (keepalived default 1).
	Quorum int
	// Hysteresis dampens quorum flaps: quorum is gained at Quorum +
	// Hysteresis and lost below Quorum - Hysteresis.
	Hysteresis int
	// QuorumUp and QuorumDown run when quorum is gained and lost.
	QuorumUp, QuorumDown Script
	// Omega runs notify_down of alive real servers and quorum_down when
	// the checker shuts down.
	Omega bool
	// Sorry replaces the real servers while quorum is lost.
	Sorry *SorryServer
	// RealServers are checked independently of each other.
	RealServers []RealServer
}

// SorryServer is a virtual server's sorry_server.
type SorryServer struct {
	Addr netip.AddrPort
	// Weight is the sorry server's weight while it is active (default 1).
	Weight int
	// Inhibit keeps the sorry server in the pool with weight 0 while it
	// is not needed (sorry_server_inhibit).
	Inhibit bool
}

// RealServer is one real_server and its checkers.
type RealServer struct {
	Addr netip.AddrPort
	// Weight is the configured weight (keepalived default 1).
	Weight int
	// Inhibit is inhibit_on_failure: a failed server stays in the pool
	// with weight 0 (draining) instead of being removed.
	Inhibit bool
	// NotifyUp and NotifyDown run when the server goes up or down.
	NotifyUp, NotifyDown Script
	// Checks are the server's checkers; the server is alive while every
	// one of them passes. A server without checks is always alive.
	Checks []Check
}

// Check is one checker of a real server.
type Check struct {
	// Spec says what to check: TCPCheck, HTTPCheck, MiscCheck, UDPCheck,
	// PingCheck, SMTPCheck or DNSCheck.
	Spec CheckSpec
	// Alpha starts the checker failed: the server needs a passing check
	// before it enters the pool.
	Alpha  bool
	Timing Timing
	// Connect says where network checks connect to and from; MISC_CHECK
	// ignores it.
	Connect Connect
}

// Timing is a checker's schedule. The daemon resolves keepalived's
// inheritance; DefaultTiming gives keepalived's defaults for a kind.
type Timing struct {
	// DelayLoop is the time between checks (delay_loop).
	DelayLoop time.Duration
	// Warmup bounds the random delay before the first check; 0 disables
	// it (keepalived default: DelayLoop).
	Warmup time.Duration
	// Retry is how many more failed attempts a passing checker makes
	// before it declares failure (retry, nb_get_retry).
	Retry int
	// DelayBeforeRetry is the time between those attempts.
	DelayBeforeRetry time.Duration
	// ConnectTimeout bounds connecting and, for protocol checks, each
	// following step (connect_timeout, default 5 s).
	ConnectTimeout time.Duration
}

// keepalived's defaults.
const (
	DefaultDelayLoop      = 60 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// BootstrapDelay precedes every checker's first check (keepalived's
	// BOOTSTRAP_DELAY), before the random warmup.
	BootstrapDelay = time.Second
)

// DefaultTiming returns keepalived's defaults for a checker of spec's kind
// under a virtual server with the given delay_loop (DefaultDelayLoop when
// zero): retry 1 (MISC_CHECK 0, DNS_CHECK 3), delay_before_retry 1 s
// (HTTP_GET/SSL_GET 3 s, DNS_CHECK delay_loop), warmup delay_loop.
func DefaultTiming(spec CheckSpec, delayLoop time.Duration) Timing {
	if delayLoop <= 0 {
		delayLoop = DefaultDelayLoop
	}
	t := Timing{
		DelayLoop:        delayLoop,
		Warmup:           delayLoop,
		Retry:            1,
		DelayBeforeRetry: time.Second,
		ConnectTimeout:   DefaultConnectTimeout,
	}
	switch spec.Kind() {
	case "HTTP_GET", "SSL_GET":
		t.DelayBeforeRetry = 3 * time.Second
	case "MISC_CHECK":
		t.Retry = 0
	case "DNS_CHECK":
		t.Retry = 3
		t.DelayBeforeRetry = delayLoop
	}
	return t
}

// Connect holds a checker's connection options.
type Connect struct {
	// IP and Port override the real server's address (connect_ip,
	// connect_port) when set.
	IP   netip.Addr
	Port uint16
	// BindTo and BindPort set the source (bindto, bind_port).
	BindTo   netip.Addr
	BindPort uint16
	// Interface binds the socket to a device (bind_if).
	Interface string
	// FWMark marks the checker's packets (fwmark).
	FWMark uint32
}

// Endpoint is where a network checker connects: resolved from the real
// server and Connect.
type Endpoint struct {
	Remote    netip.AddrPort
	Local     netip.AddrPort // zero address: any; zero port: any
	Interface string
	FWMark    uint32
}

func (c Connect) endpoint(rs netip.AddrPort) Endpoint {
	addr, port := rs.Addr(), rs.Port()
	if c.IP.IsValid() {
		addr = c.IP
	}
	if c.Port != 0 {
		port = c.Port
	}
	return Endpoint{
		Remote:    netip.AddrPortFrom(addr, port),
		Local:     netip.AddrPortFrom(c.BindTo, c.BindPort),
		Interface: c.Interface,
		FWMark:    c.FWMark,
	}
}

// Script is a command run as a notify script or by MISC_CHECK.
type Script struct {
	// Args is the program and its arguments; empty means no script.
	Args []string
	// User and Group run the script under another identity when set.
	User, Group string
}

// IsZero reports whether no script is configured.
func (s Script) IsZero() bool { return len(s.Args) == 0 }

func (s Script) String() string { return strings.Join(s.Args, " ") }

// CheckSpec is one kind of checker. It is implemented by TCPCheck,
// HTTPCheck, MiscCheck, UDPCheck, PingCheck, SMTPCheck and DNSCheck.
type CheckSpec interface {
	// Kind is keepalived's keyword for the checker, e.g. "TCP_CHECK".
	Kind() string
	validate() error
	newProber(c *Check, rs *RealServer, d *deps) (prober, policy)
}

// TCPCheck passes when a TCP connection opens (TCP_CHECK).
type TCPCheck struct{}

// Kind returns "TCP_CHECK".
func (TCPCheck) Kind() string    { return "TCP_CHECK" }
func (TCPCheck) validate() error { return nil }

// HTTPProtocol is the HTTP version HTTP_GET speaks (http_protocol).
type HTTPProtocol string

// HTTP versions keepalived offers. "1.0C" is 1.0 with "Connection: close".
const (
	HTTP10      HTTPProtocol = "1.0"
	HTTP10Close HTTPProtocol = "1.0C"
	HTTP11      HTTPProtocol = "1.1"
)

// HTTPCheck fetches URLs over HTTP (HTTP_GET) or, with TLS set, HTTPS
// (SSL_GET), and checks each response's status code, MD5 digest and regex.
type HTTPCheck struct {
	URLs []URL
	// VirtualHost is the Host header unless a URL sets its own; empty
	// sends the address and port, as keepalived does. The daemon resolves
	// keepalived's inheritance: checker, then real server, then virtual
	// server.
	VirtualHost string
	// Protocol defaults to HTTP10.
	Protocol HTTPProtocol
	// FastRecovery checks the URLs of a recovering server back to back
	// instead of one per delay_loop.
	FastRecovery bool
	// TLS makes this an SSL_GET.
	TLS *TLSOptions
}

// Kind returns "HTTP_GET" or "SSL_GET".
func (h HTTPCheck) Kind() string {
	if h.TLS != nil {
		return "SSL_GET"
	}
	return "HTTP_GET"
}

// URL is one url block of HTTP_GET/SSL_GET.
type URL struct {
	Path string
	// Digest is the expected MD5 of the body as hex (what genhash prints);
	// empty skips the digest check.
	Digest string
	// StatusCodes accept these codes; empty means 200-299.
	StatusCodes []StatusRange
	// VirtualHost overrides the checker's for this URL.
	VirtualHost string
	// Regex must match the body (RE2 syntax, not PCRE), or must not match
	// with RegexNoMatch. Nil skips it.
	Regex        *regexp.Regexp
	RegexNoMatch bool
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// TLSOptions configure SSL_GET. Like keepalived, the server's certificate
// is not verified unless Verify is set.
type TLSOptions struct {
	// ServerName is sent as SNI when set (keepalived's sni_name).
	ServerName string
	// EnableSNI sends the URL's virtualhost, or else the checker's, as
	// SNI when ServerName is empty (keepalived's enable_sni).
	EnableSNI bool
	// Verify checks the server's certificate chain against RootCAs (the
	// system roots when nil) and its name against ServerName.
	Verify  bool
	RootCAs *x509.CertPool
	// Certificates are client certificates (the SSL block's certificate
	// and key).
	Certificates []tls.Certificate
}

// MiscCheck runs a program (MISC_CHECK): exit 0 passes, anything else
// fails; with Dynamic, exit 2..255 passes and sets the weight to exit-2.
type MiscCheck struct {
	Script Script
	// Timeout kills the program (SIGTERM, then SIGKILL 2 s later) when it
	// runs longer; 0 uses the delay loop.
	Timeout time.Duration
	Dynamic bool
}

// Kind returns "MISC_CHECK".
func (MiscCheck) Kind() string { return "MISC_CHECK" }

// UDPCheck sends a datagram (UDP_CHECK). Without RequireReply it passes
// unless an ICMP error comes back within the connect timeout.
type UDPCheck struct {
	// Payload is sent as is; empty sends random bytes.
	Payload []byte
	// RequireReply fails the check unless a reply arrives whose length is
	// within [MinReplyLength, MaxReplyLength] and which matches Reply.
	RequireReply   bool
	Reply          []byte
	ReplyMask      []byte // bits set here are ignored in Reply
	MinReplyLength int
	MaxReplyLength int // 0 means 255, keepalived's default
}

// Kind returns "UDP_CHECK".
func (UDPCheck) Kind() string { return "UDP_CHECK" }

// PingCheck sends an ICMP echo request from an ICMP datagram socket
// (PING_CHECK); the user must be in net.ipv4.ping_group_range.
type PingCheck struct{}

// Kind returns "PING_CHECK".
func (PingCheck) Kind() string    { return "PING_CHECK" }
func (PingCheck) validate() error { return nil }

// SMTPCheck greets an SMTP server (SMTP_CHECK): 220 banner, HELO -> 250,
// QUIT -> 221.
type SMTPCheck struct {
	// HeloName is sent with HELO; empty sends "localhost".
	HeloName string
}

// Kind returns "SMTP_CHECK".
func (SMTPCheck) Kind() string    { return "SMTP_CHECK" }
func (SMTPCheck) validate() error { return nil }

// DNSCheck asks a DNS server one question over UDP (DNS_CHECK); any answer
// with RCODE 0 passes.
type DNSCheck struct {
	// Type is A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY; empty
	// means SOA.
	Type string
	// Name defaults to "." (the root).
	Name string
}

// Kind returns "DNS_CHECK".
func (DNSCheck) Kind() string { return "DNS_CHECK" }

// Validate reports every problem of the configuration, each naming the
// virtual server, real server and checker it is about.
func (c *Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		where := fmt.Sprintf("virtual server %q", vs.Name)
		if vs.Name == "" {
			where = fmt.Sprintf("virtual server %d", i+1)
			errs = append(errs, fmt.Errorf("%s: empty name (the daemon names it, e.g. \"TCP 192.0.2.1:80\")", where))
		} else if names[vs.Name] {
			errs = append(errs, fmt.Errorf("%s: defined twice", where))
		}
		names[vs.Name] = true
		if vs.Quorum < 0 || vs.Hysteresis < 0 {
			errs = append(errs, fmt.Errorf("%s: negative quorum %d or hysteresis %d", where, vs.Quorum, vs.Hysteresis))
		}
		if vs.Sorry != nil {
			if !vs.Sorry.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("%s: sorry server has no address", where))
			}
			if vs.Sorry.Weight < 0 {
				errs = append(errs, fmt.Errorf("%s: sorry server weight %d is negative", where, vs.Sorry.Weight))
			}
		}
		if len(vs.RealServers) == 0 {
			errs = append(errs, fmt.Errorf("%s: no real servers", where))
		}
		addrs := map[netip.AddrPort]bool{}
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			rwhere := fmt.Sprintf("%s: real server %s", where, rs.Addr)
			if !rs.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("%s: no address", rwhere))
			}
			if addrs[rs.Addr] {
				errs = append(errs, fmt.Errorf("%s: listed twice", rwhere))
			}
			addrs[rs.Addr] = true
			if rs.Weight < 0 || rs.Weight > maxWeight {
				errs = append(errs, fmt.Errorf("%s: weight %d out of range 0..%d", rwhere, rs.Weight, maxWeight))
			}
			for k := range rs.Checks {
				ck := &rs.Checks[k]
				if ck.Spec == nil {
					errs = append(errs, fmt.Errorf("%s: check %d: no checker kind", rwhere, k+1))
					continue
				}
				cwhere := fmt.Sprintf("%s: check %d (%s)", rwhere, k+1, ck.Spec.Kind())
				if reflect.TypeOf(ck.Spec).Kind() == reflect.Pointer {
					errs = append(errs, fmt.Errorf("%s: pass the checker by value (health.%s{...}), not a pointer", cwhere, reflect.TypeOf(ck.Spec).Elem().Name()))
					continue
				}
				if err := ck.Timing.validate(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", cwhere, err))
				}
				if err := ck.Spec.validate(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", cwhere, err))
				}
				if ck.Spec.Kind() != "MISC_CHECK" {
					ep := ck.Connect.endpoint(rs.Addr)
					if !ep.Remote.Addr().IsValid() || ep.Remote.Port() == 0 && needsPort(ck.Spec) {
						errs = append(errs, fmt.Errorf("%s: no address and port to connect to (set connect_ip/connect_port or the real server's port)", cwhere))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

func needsPort(s CheckSpec) bool { return s.Kind() != "PING_CHECK" }

func (t Timing) validate() error {
	switch {
	case t.DelayLoop <= 0:
		return fmt.Errorf("delay_loop %v must be positive", t.DelayLoop)
	case t.Warmup < 0:
		return fmt.Errorf("warmup %v is negative", t.Warmup)
	case t.Retry < 0:
		return fmt.Errorf("retry %d is negative", t.Retry)
	case t.DelayBeforeRetry < 0:
		return fmt.Errorf("delay_before_retry %v is negative", t.DelayBeforeRetry)
	case t.ConnectTimeout <= 0:
		return fmt.Errorf("connect_timeout %v must be positive", t.ConnectTimeout)
	}
	return nil
}

func (h HTTPCheck) validate() error {
	if len(h.URLs) == 0 {
		return errors.New("no url to check (add a url block with a path)")
	}
	switch h.Protocol {
	case "", HTTP10, HTTP10Close, HTTP11:
	default:
		return fmt.Errorf("http_protocol %q unknown (want 1.0, 1.0C or 1.1)", h.Protocol)
	}
	for i, u := range h.URLs {
		if u.Path == "" {
			return fmt.Errorf("url %d: empty path", i+1)
		}
		if strings.ContainsAny(u.Path, " \r\n") {
			return fmt.Errorf("url %d: path %q contains spaces or line breaks", i+1, u.Path)
		}
		if u.Digest != "" {
			if b, err := hex.DecodeString(u.Digest); err != nil || len(b) != 16 {
				return fmt.Errorf("url %d: digest %q is not an MD5 (32 hex digits, as genhash prints)", i+1, u.Digest)
			}
		}
		for _, r := range u.StatusCodes {
			if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
				return fmt.Errorf("url %d: status_code range %d-%d outside 100-599", i+1, r.Min, r.Max)
			}
		}
	}
	return nil
}

func (m MiscCheck) validate() error {
	if m.Script.IsZero() {
		return errors.New("no misc_path")
	}
	if m.Timeout < 0 {
		return fmt.Errorf("misc_timeout %v is negative", m.Timeout)
	}
	return nil
}

func (u UDPCheck) validate() error {
	if len(u.ReplyMask) != 0 && len(u.ReplyMask) != len(u.Reply) {
		return fmt.Errorf("reply mask has %d bytes, reply %d", len(u.ReplyMask), len(u.Reply))
	}
	if u.MinReplyLength < 0 || u.MaxReplyLength < 0 || u.MaxReplyLength > 65535 {
		return fmt.Errorf("reply length bounds %d..%d out of range", u.MinReplyLength, u.MaxReplyLength)
	}
	return nil
}

func (d DNSCheck) validate() error {
	if _, err := dnsType(d.Type); err != nil {
		return err
	}
	if strings.Contains(d.Name, "..") || (strings.HasPrefix(d.Name, ".") && d.Name != ".") {
		return fmt.Errorf("name %q has an empty label", d.Name)
	}
	return nil
}
