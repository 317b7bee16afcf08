package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/internal/health"
)

// HealthConfig translates the configuration's virtual servers into the
// health checker's types. config has already resolved keepalived's
// inheritance (virtual server -> real server -> checker timings,
// virtualhost, connect_ip/connect_port), so this maps field by field, and:
// loads the SSL block's CA and client certificate with readFile, turns
// each SMTP_CHECK host{} into a checker of its own, compiles url regexes,
// and leaves out checkers xkeep does not implement (with a warning saying
// what that means for the real server).
func HealthConfig(cfg *config.Config, readFile func(string) ([]byte, error)) (health.Config, []string, error) {
	var out health.Config
	var warns, errs []string
	warn := func(pos config.Pos, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("%s: %s", pos, fmt.Sprintf(format, args...)))
	}
	fail := func(pos config.Pos, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s: %s", pos, fmt.Sprintf(format, args...)))
	}
	g := cfg.Global
	script := func(c *config.Command) health.Script {
		if c == nil || len(c.Args) == 0 {
			return health.Script{}
		}
		s := health.Script{Args: c.Args, User: c.User, Group: c.Group}
		if s.User == "" {
			s.User = g.ScriptUser
		}
		if s.Group == "" {
			s.Group = g.ScriptGroup
		}
		return s
	}

	var tlsBase *health.TLSOptions // loaded once, copied per checker
	sslLoaded := false
	loadSSL := func() *health.TLSOptions {
		if !sslLoaded {
			sslLoaded = true
			opts, err := loadSSLContext(cfg.SSL, readFile)
			if err != nil {
				fail(cfg.SSL.Pos, "SSL: %v", err)
			}
			tlsBase = opts
		}
		t := health.TLSOptions{}
		if tlsBase != nil {
			t = *tlsBase
		}
		return &t
	}

	for _, vs := range cfg.VirtualServers {
		if len(vs.RealServers) == 0 {
			continue // nothing to check; config warns about it
		}
		hv := health.VirtualServer{
			Name:       healthName(vs),
			Quorum:     vs.Quorum,
			Hysteresis: vs.Hysteresis,
			QuorumUp:   script(vs.QuorumUp),
			QuorumDown: script(vs.QuorumDown),
			Omega:      vs.Omega,
		}
		if s := vs.SorryServer; s != nil {
			hv.Sorry = &health.SorryServer{Addr: netip.AddrPortFrom(s.Addr.Unmap(), sorryPort(vs)), Inhibit: s.Inhibit}
		}
		for _, rs := range vs.RealServers {
			hr := health.RealServer{
				Addr:       netip.AddrPortFrom(rs.Addr.Unmap(), rs.Port),
				Weight:     rs.Weight,
				Inhibit:    rs.InhibitOnFailure,
				NotifyUp:   script(rs.NotifyUp),
				NotifyDown: script(rs.NotifyDown),
			}
			var skipped []string
			for _, chk := range rs.Checkers {
				checks, err := healthChecks(chk, script, loadSSL)
				if err != nil {
					fail(chk.Pos, "%s: %v", chk.Type, err)
					continue
				}
				if checks == nil {
					skipped = append(skipped, string(chk.Type))
					continue
				}
				hr.Checks = append(hr.Checks, checks...)
			}
			if len(skipped) > 0 {
				consequence := "it is judged by its other checkers"
				if len(hr.Checks) == 0 {
					consequence = "it has no other checker, so it is always up"
				}
				warn(rs.Pos, "real_server %s: %s not implemented and left out: %s",
					netip.AddrPortFrom(rs.Addr, rs.Port), strings.Join(skipped, ", "), consequence)
			}
			hv.RealServers = append(hv.RealServers, hr)
		}
		out.VirtualServers = append(out.VirtualServers, hv)
	}
	if len(errs) > 0 {
		return health.Config{}, warns, configErrors(errs)
	}
	if err := out.Validate(); err != nil {
		return health.Config{}, warns, fmt.Errorf("%s: health checks: %w", mainFile(cfg), err)
	}
	return out, warns, nil
}

// healthChecks translates one checker block; nil (no error) for kinds
// xkeep does not implement. SMTP_CHECK gives one checker per host{}.
func healthChecks(chk *config.Checker, script func(*config.Command) health.Script, loadSSL func() *health.TLSOptions) ([]health.Check, error) {
	base := health.Check{
		Alpha: chk.Alpha,
		Timing: health.Timing{
			DelayLoop:        chk.DelayLoop,
			Warmup:           chk.Warmup,
			Retry:            chk.Retry,
			DelayBeforeRetry: chk.DelayBeforeRetry,
			ConnectTimeout:   chk.ConnectTimeout,
		},
		Connect: health.Connect{
			IP:        chk.Target.Addr().Unmap(),
			Port:      chk.Target.Port(),
			BindTo:    chk.BindTo,
			BindPort:  chk.BindPort,
			Interface: chk.BindIf,
			FWMark:    chk.FWMark,
		},
	}
	one := func(spec health.CheckSpec) []health.Check {
		c := base
		c.Spec = spec
		return []health.Check{c}
	}
	switch chk.Type {
	case config.TCPCheck:
		return one(health.TCPCheck{}), nil
	case config.PingCheck:
		return one(health.PingCheck{}), nil
	case config.HTTPGet, config.SSLGet:
		h := chk.HTTP
		if h == nil {
			return nil, errors.New("no url to check (add a url block with a path)")
		}
		spec := health.HTTPCheck{
			VirtualHost:  h.VirtualHost,
			Protocol:     health.HTTPProtocol(h.Protocol),
			FastRecovery: h.FastRecovery,
		}
		for _, u := range h.URLs {
			hu := health.URL{Path: u.Path, Digest: u.Digest, VirtualHost: u.VirtualHost, RegexNoMatch: u.RegexNoMatch}
			for _, r := range u.StatusCodes {
				hu.StatusCodes = append(hu.StatusCodes, health.StatusRange{Min: r.Min, Max: r.Max})
			}
			if u.Regex != "" {
				re, err := regexp.Compile(u.Regex)
				if err != nil {
					return nil, fmt.Errorf("url %s: regex %q: %v (xkeep uses Go's RE2 syntax, not PCRE)", u.Path, u.Regex, err)
				}
				hu.Regex = re
			}
			spec.URLs = append(spec.URLs, hu)
		}
		if chk.Type == config.SSLGet {
			spec.TLS = loadSSL()
			spec.TLS.ServerName = h.SNIName
			spec.TLS.EnableSNI = h.EnableSNI
		}
		return one(spec), nil
	case config.MiscCheck:
		m := chk.Misc
		if m == nil || m.Path == nil {
			return nil, errors.New("no misc_path")
		}
		return one(health.MiscCheck{Script: script(m.Path), Timeout: m.Timeout, Dynamic: m.Dynamic}), nil
	case config.SMTPCheck:
		spec := health.SMTPCheck{}
		if chk.SMTP == nil || len(chk.SMTP.Hosts) == 0 {
			if chk.SMTP != nil {
				spec.HeloName = chk.SMTP.HeloName
			}
			return one(spec), nil
		}
		spec.HeloName = chk.SMTP.HeloName
		var out []health.Check
		for _, h := range chk.SMTP.Hosts {
			c := base
			c.Spec = spec
			c.Connect.IP, c.Connect.Port = h.Target.Addr().Unmap(), h.Target.Port()
			if h.BindTo.IsValid() {
				c.Connect.BindTo = h.BindTo
			}
			out = append(out, c)
		}
		return out, nil
	case config.DNSCheck:
		spec := health.DNSCheck{}
		if chk.DNS != nil {
			spec.Type, spec.Name = chk.DNS.Type, chk.DNS.Name
		}
		return one(spec), nil
	case config.UDPCheck:
		spec := health.UDPCheck{}
		if u := chk.UDP; u != nil {
			spec.Payload = u.Payload
			spec.RequireReply = u.RequireReply
			spec.MinReplyLength, spec.MaxReplyLength = u.MinReplyLength, u.MaxReplyLength
			if u.ReplyPattern != "" {
				reply, mask, err := replyPattern(u.ReplyPattern)
				if err != nil {
					return nil, err
				}
				spec.Reply, spec.ReplyMask = reply, mask
			}
		}
		return one(spec), nil
	}
	return nil, nil // BFD_CHECK, FILE_CHECK
}

// replyPattern reads UDP_CHECK's reply pattern: hex digits, with x for a
// nibble that may be anything.
func replyPattern(p string) (reply, mask []byte, err error) {
	if len(p)%2 != 0 {
		return nil, nil, fmt.Errorf("reply pattern %q has an odd number of hex digits", p)
	}
	anyNibble := func(c byte) bool { return c == 'x' || c == 'X' }
	for i := 0; i < len(p); i += 2 {
		var v, m byte
		for j, c := range []byte{p[i], p[i+1]} {
			shift := uint(4 * (1 - j))
			if anyNibble(c) {
				m |= 0xf << shift
				continue
			}
			b, err := hex.DecodeString("0" + string(c))
			if err != nil {
				return nil, nil, fmt.Errorf("reply pattern %q: %q is not a hex digit or x", p, c)
			}
			v |= b[0] << shift
		}
		reply, mask = append(reply, v), append(mask, m)
	}
	return reply, mask, nil
}

// loadSSLContext reads the SSL block's CA and client certificate. Like
// keepalived, SSL_GET does not verify the server's certificate: the CA
// only matters to a checker that sets Verify (none does today).
func loadSSLContext(ssl *config.SSLContext, readFile func(string) ([]byte, error)) (*health.TLSOptions, error) {
	opts := &health.TLSOptions{}
	if ssl == nil {
		return opts, nil
	}
	if ssl.CA != "" {
		pemBytes, err := readFile(ssl.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("ca %s: no PEM certificate in it", ssl.CA)
		}
		opts.RootCAs = pool
	}
	if ssl.Certificate != "" || ssl.Key != "" {
		if ssl.Certificate == "" || ssl.Key == "" {
			return nil, errors.New("certificate and key go together (set both, or neither)")
		}
		certPEM, err := readFile(ssl.Certificate)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		keyPEM, err := readFile(ssl.Key)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		if ssl.Password != "" {
			if keyPEM, err = decryptKey(keyPEM, ssl.Password); err != nil {
				return nil, fmt.Errorf("key %s: %w", ssl.Key, err)
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			hint := ""
			if ssl.Password != "" {
				hint = " (is the SSL password right?)"
			}
			return nil, fmt.Errorf("certificate %s and key %s: %w%s", ssl.Certificate, ssl.Key, err, hint)
		}
		opts.Certificates = []tls.Certificate{cert}
	}
	return opts, nil
}

// decryptKey decrypts a key in the legacy encrypted PEM form (Proc-Type:
// 4,ENCRYPTED) that keepalived's password setting is for.
func decryptKey(keyPEM []byte, password string) ([]byte, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	//lint:ignore SA1019 keepalived's password is for exactly this legacy PEM encryption.
	if !x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
		return keyPEM, nil
	}
	der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck
	if err != nil {
		return nil, fmt.Errorf("decrypt with the SSL password: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}), nil
}
