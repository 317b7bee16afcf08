package health

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Limits on what an HTTP probe keeps in memory.
const (
	maxHTTPHeader = 64 << 10
	maxRegexBody  = 1 << 20
)

// httpProber is HTTP_GET and SSL_GET. It speaks HTTP itself, as keepalived
// does, because the digest must cover the exact bytes keepalived hashes:
// everything after the header's blank line, up to Content-Length when the
// server sends one, with no decoding of chunked or compressed bodies. That
// is what genhash prints.
type httpProber struct {
	d       *deps
	spec    HTTPCheck
	ep      Endpoint
	timeout time.Duration
	digests [][]byte
	tls     *tls.Config
}

func (h HTTPCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	p := &httpProber{d: d, spec: h, ep: c.Connect.endpoint(rs.Addr), timeout: c.Timing.ConnectTimeout}
	for _, u := range h.URLs {
		var sum []byte
		if u.Digest != "" {
			sum, _ = hex.DecodeString(u.Digest) // validated
		}
		p.digests = append(p.digests, sum)
	}
	if o := h.TLS; o != nil {
		p.tls = &tls.Config{
			InsecureSkipVerify: !o.Verify,
			RootCAs:            o.RootCAs,
			Certificates:       o.Certificates,
			// keepalived's OpenSSL context accepts old servers too.
			MinVersion: tls.VersionTLS10,
		}
	}
	return p, newHTTPPolicy(c.Timing, c.Alpha, len(h.URLs), h.FastRecovery)
}

// tlsConfig picks the SNI (and the name verified) for a URL.
func (p *httpProber) tlsConfig(u *URL) *tls.Config {
	o := p.spec.TLS
	name := o.ServerName
	if name == "" && o.EnableSNI {
		name = u.VirtualHost
		if name == "" {
			name = p.spec.VirtualHost
		}
	}
	if name == "" && o.Verify {
		// Verify the address; Go sends no SNI for an IP.
		name = p.ep.Remote.Addr().Unmap().String()
	}
	if name == "" {
		return p.tls
	}
	c := p.tls.Clone()
	c.ServerName = name
	return c
}

// request builds keepalived's GET, byte for byte.
func (p *httpProber) request(u *URL) []byte {
	host := u.VirtualHost
	if host == "" {
		host = p.spec.VirtualHost
	}
	if host == "" {
		// No virtualhost: the address and port, the IPv6 form in brackets.
		host = p.ep.Remote.String()
	}
	minor, conn := 0, ""
	switch p.spec.Protocol {
	case HTTP10Close:
		conn = "Connection: close\r\n"
	case HTTP11:
		minor, conn = 1, "Connection: close\r\n"
	}
	return fmt.Appendf(nil, "GET %s HTTP/1.%d\r\nUser-Agent: KeepAliveClient\r\n%sHost: %s\r\n\r\n", u.Path, minor, conn, host)
}

func (p *httpProber) probe(ctx context.Context, i int) outcome {
	u := &p.spec.URLs[i]
	remote := p.ep.Remote.String()
	s := startStep(ctx, p.d.clock, p.timeout, "connecting to "+remote)
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "tcp", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	defer conn.Close()
	defer s.bind(conn)()

	var rw io.ReadWriter = conn
	if p.tls != nil {
		s.next("in tls handshake with " + remote)
		tc := tls.Client(conn, p.tlsConfig(u))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			return failed(s.fail(err))
		}
		rw = tc
	}
	s.next("sending request for " + u.Path + " to " + remote)
	if _, err := rw.Write(p.request(u)); err != nil {
		return failed(s.fail(err))
	}
	s.next("reading " + u.Path + " from " + remote)
	resp, err := readHTTPResponse(rw, s, p.tls != nil, u.Regex != nil)
	if err != nil {
		return failed(err)
	}
	if !statusOK(resp.status, u.StatusCodes) {
		return failedf("%s from %s: status %d, want %s", u.Path, remote, resp.status, statusRanges(u.StatusCodes))
	}
	if want := p.digests[i]; want != nil && !bytes.Equal(resp.md5[:], want) {
		return failedf("%s from %s: md5 digest %x, want %x", u.Path, remote, resp.md5, want)
	}
	if u.Regex != nil && u.Regex.Match(resp.body) == u.RegexNoMatch {
		if u.RegexNoMatch {
			return failedf("%s from %s: body matches %q (regex_no_match)", u.Path, remote, u.Regex)
		}
		return failedf("%s from %s: body does not match %q", u.Path, remote, u.Regex)
	}
	return passed()
}

type httpResponse struct {
	status        int
	contentLength int64 // -1: none
	md5           [md5.Size]byte
	body          []byte // kept only for a regex, up to maxRegexBody
}

// readHTTPResponse reads until the server closes the connection, as
// keepalived does (its requests never ask to keep the connection open).
// Over TLS, an error after the header ends the body instead of failing:
// keepalived's SSL reader treats it like the end of the stream.
func readHTTPResponse(r io.Reader, s *step, overTLS, keepBody bool) (*httpResponse, error) {
	resp := &httpResponse{contentLength: -1}
	var (
		head      []byte
		gotHeader bool
		received  int64
	)
	sum := md5.New()
	buf := make([]byte, 16<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.next(s.phase)
			data := buf[:n]
			if !gotHeader {
				head = append(head, data...)
				data = nil
				if end := bytes.Index(head, []byte("\r\n\r\n")); end >= 0 {
					gotHeader = true
					resp.status, resp.contentLength = parseHTTPHeader(head[:end])
					data = head[end+4:]
				} else if len(head) > maxHTTPHeader {
					return nil, fmt.Errorf("%s: no end of http header in %d bytes", s.phase, len(head))
				}
			}
			digested := data
			if resp.contentLength >= 0 {
				left := max(resp.contentLength-received, 0)
				if int64(len(digested)) > left {
					digested = digested[:left]
				}
			}
			sum.Write(digested)
			received += int64(len(data))
			if keepBody && len(resp.body) < maxRegexBody {
				resp.body = append(resp.body, data[:min(len(data), maxRegexBody-len(resp.body))]...)
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || (overTLS && gotHeader) {
			break
		}
		return nil, s.fail(err)
	}
	if !gotHeader {
		if len(head) == 0 {
			return nil, fmt.Errorf("%s: no data received", s.phase)
		}
		return nil, fmt.Errorf("%s: no http header in %q", s.phase, truncate(head, 64))
	}
	sum.Sum(resp.md5[:0])
	return resp, nil
}

// parseHTTPHeader reads the status code (the number after the status
// line's first space) and Content-Length.
func parseHTTPHeader(h []byte) (status int, contentLength int64) {
	contentLength = -1
	lines := strings.Split(string(h), "\r\n")
	if _, rest, ok := strings.Cut(lines[0], " "); ok {
		code, _, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
		status, _ = strconv.Atoi(code)
	}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && n >= 0 {
				contentLength = n
			}
		}
	}
	return status, contentLength
}

func statusOK(code int, ranges []StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

func statusRanges(ranges []StatusRange) string {
	if len(ranges) == 0 {
		return "200-299"
	}
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		if r.Min == r.Max {
			parts[i] = strconv.Itoa(r.Min)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Min, r.Max)
		}
	}
	return strings.Join(parts, " ")
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
