package health_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

func httpCheck(spec health.HTTPCheck, tm health.Timing) health.Check {
	return health.Check{Spec: spec, Timing: tm}
}

// TestHTTPGetServerFailures drives HTTP_GET against a real server told to
// answer 500, close the connection, hang, and recover.
func TestHTTPGetServerFailures(t *testing.T) {
	l := newLab(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/health"}}}, timing(5*time.Second, 2*time.Second, 1)),
	}}), health.Options{})

	st := h.probe(rs, 0, time.Second)
	if !st.OK || !st.Up {
		t.Fatalf("first probe %+v", st)
	}
	// keepalived's request: HTTP/1.0, its User-Agent, Host = address:port.
	r := web.lastRequest()
	if r.URL.Path != "/health" || r.Proto != "HTTP/1.0" || r.Host != "10.77.0.2:8080" || r.UserAgent() != "KeepAliveClient" {
		t.Errorf("request %s %s Host %q UA %q", r.Proto, r.URL, r.Host, r.UserAgent())
	}
	h.next(5 * time.Second)

	web.setMode(webFail)
	st = h.probe(rs, 0, 5*time.Second)
	if st.OK || !st.Up || !strings.Contains(st.Error, "status 500, want 200-299") {
		t.Fatalf("500: %+v, want a failed probe still retrying", st)
	}
	h.next(2 * time.Second) // delay_before_retry
	st = h.probe(rs, 0, 2*time.Second)
	if st.Up {
		t.Fatalf("still up after retry: %+v", st)
	}
	h.waitState(rs, health.StateDown, 0)
	h.next(5 * time.Second) // max(delay_before_retry, delay_loop) once failed

	web.setMode(webClose)
	st = h.probe(rs, 0, 5*time.Second)
	if st.OK || !strings.Contains(st.Error, "no data received") {
		t.Fatalf("closed connection: %+v", st)
	}

	web.setMode(webHang)
	h.clk.Advance(5 * time.Second)
	<-web.hung
	h.waitReading(1)
	h.waitPending(3 * time.Second) // the read timeout of the probe in flight
	h.clk.Advance(3 * time.Second)
	st = h.waitProbes(rs, 0, 5)
	if st.OK || !strings.Contains(st.Error, "timeout reading /health from 10.77.0.2:8080") {
		t.Fatalf("hung server: %+v", st)
	}

	// Recovery: the failed URL passes, then every URL is checked again.
	web.setMode(webOK)
	h.next(5 * time.Second)
	st = h.probe(rs, 0, 5*time.Second)
	if !st.OK || st.Up {
		t.Fatalf("first pass after failure %+v, want ok but not up yet", st)
	}
	st = h.probe(rs, 0, 5*time.Second)
	if !st.Up {
		t.Fatalf("second pass %+v, want up", st)
	}
	h.waitState(rs, health.StateUp, 1)
}

func TestHTTPStatusCodes(t *testing.T) {
	l := newLab(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		// status_code 200-299 400-499 503 505, as keepalived.conf.status_code.
		httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/", StatusCodes: []health.StatusRange{{200, 299}, {400, 499}, {503, 503}, {505, 505}}}}},
			timing(5*time.Second, 2*time.Second, 0)),
	}}), health.Options{})
	d := time.Second
	for _, tc := range []struct {
		status int
		ok     bool
	}{{204, true}, {404, true}, {503, true}, {500, false}, {504, false}, {505, true}, {301, false}} {
		web.set(webOK, tc.status, "x")
		st := h.probe(rs, 0, d)
		if st.OK != tc.ok {
			t.Errorf("status %d: ok %v (%s), want %v", tc.status, st.OK, st.Error, tc.ok)
		}
		d = h.mustNext()
	}
}

// genhash runs keepalived's genhash inside ns and returns the digest it
// prints.
func genhash(t *testing.T, ns *testnet.Namespace, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("genhash"); err != nil {
		t.Fatalf("genhash (Debian package keepalived) not installed: %v", err)
	}
	out, err := ns.Run(exec.Command("genhash", args...))
	if err != nil {
		t.Fatalf("genhash %v: %v\n%s", args, err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("genhash %v printed nothing", args)
	}
	sum := fields[len(fields)-1]
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 32 {
		t.Fatalf("genhash %v printed %q", args, out)
	}
	return sum
}

// TestHTTPDigestMatchesGenhash: the digest keepalived's genhash prints for
// a page is the one HTTP_GET and SSL_GET accept, and a changed body fails.
func TestHTTPDigestMatchesGenhash(t *testing.T) {
	l := newLab(t)
	cert, _ := selfSigned(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	sweb := newWebServer(t, l.rs, "10.77.0.2:8443", &cert)
	page := strings.Repeat("<p>the real server's page</p>\n", 2000) // several reads
	web.set(webOK, 200, page)
	sweb.set(webOK, 200, page)

	plain := genhash(t, l.lb, "-s", "10.77.0.2", "-p", "8080", "-u", "/index.html")
	overTLS := genhash(t, l.lb, "-S", "-s", "10.77.0.2", "-p", "8443", "-u", "/index.html")
	sum := md5.Sum([]byte(page))
	if plain != hex.EncodeToString(sum[:]) || overTLS != plain {
		t.Fatalf("genhash printed %s (http) and %s (https), md5 of the body is %x", plain, overTLS, sum)
	}
	tm := timing(5*time.Second, 2*time.Second, 0)
	h := start(t, l.lb, oneServer(
		health.RealServer{Addr: ap("10.77.0.2:8080"), Weight: 1, Checks: []health.Check{
			httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/index.html", Digest: plain}}}, tm)}},
		health.RealServer{Addr: ap("10.77.0.2:8443"), Weight: 1, Checks: []health.Check{
			httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/index.html", Digest: strings.ToUpper(overTLS)}}, TLS: &health.TLSOptions{}}, tm)}},
	), health.Options{})
	h.clk.Advance(time.Second)
	for _, rs := range []string{"10.77.0.2:8080", "10.77.0.2:8443"} {
		if st := h.waitProbes(ap(rs), 0, 1); !st.OK {
			t.Errorf("%s with genhash's digest: %+v", rs, st)
		}
	}
	web.set(webOK, 200, page+"changed")
	sweb.set(webOK, 200, page+"changed")
	h.clk.Advance(5 * time.Second)
	for _, rs := range []string{"10.77.0.2:8080", "10.77.0.2:8443"} {
		if st := h.waitProbes(ap(rs), 0, 2); st.OK || !strings.Contains(st.Error, "md5 digest") {
			t.Errorf("%s with a changed body: %+v", rs, st)
		}
		h.waitState(ap(rs), health.StateDown, 0)
	}
}

// TestHTTPDigestStopsAtContentLength: like keepalived, bytes past
// Content-Length are not hashed.
func TestHTTPDigestStopsAtContentLength(t *testing.T) {
	l := newLab(t)
	ln := listen(t, l.rs, "tcp4", "10.77.0.2:8080")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			fmt.Fprint(c, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhelloTRAILING GARBAGE")
			c.Close()
		}
	}()
	want := genhash(t, l.lb, "-s", "10.77.0.2", "-p", "8080", "-u", "/")
	if sum := md5.Sum([]byte("hello")); want != hex.EncodeToString(sum[:]) {
		t.Fatalf("genhash %s, md5(hello) %x", want, sum)
	}
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/", Digest: want}}}, timing(5*time.Second, time.Second, 0)),
	}}), health.Options{})
	if st := h.probe(rs, 0, time.Second); !st.OK {
		t.Fatalf("probe %+v", st)
	}
}

// TestHTTPVirtualHostAndProtocol: the URL's virtualhost beats the
// checker's; http_protocol 1.1 and 1.0C add "Connection: close".
func TestHTTPVirtualHostAndProtocol(t *testing.T) {
	l := newLab(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		httpCheck(health.HTTPCheck{
			VirtualHost: "www.firewall.loc",
			Protocol:    health.HTTP11,
			URLs:        []health.URL{{Path: "/a"}, {Path: "/b", VirtualHost: "b.example"}},
		}, timing(5*time.Second, time.Second, 0)),
	}}), health.Options{})
	h.probe(rs, 0, time.Second)
	r := web.lastRequest()
	if r.Host != "www.firewall.loc" || r.URL.Path != "/a" || r.Proto != "HTTP/1.1" || !r.Close {
		t.Errorf("first request %s %s Host %q close %v", r.Proto, r.URL, r.Host, r.Close)
	}
	// One URL per probe, a delay loop apart.
	h.next(5 * time.Second)
	st := h.probe(rs, 0, 5*time.Second)
	r = web.lastRequest()
	if r.Host != "b.example" || r.URL.Path != "/b" {
		t.Errorf("second request %s Host %q", r.URL, r.Host)
	}
	if !st.Up {
		t.Errorf("not up after both URLs passed: %+v", st)
	}
	// genhash sends the same virtualhost.
	genhash(t, l.lb, "-s", "10.77.0.2", "-p", "8080", "-u", "/g", "-V", "gen.example")
	if r := web.lastRequest(); r.Host != "gen.example" || r.UserAgent() != "KeepAliveClient" {
		t.Errorf("genhash request Host %q UA %q", r.Host, r.UserAgent())
	}
}

// TestHTTPAlphaNeedsEveryURL: an alpha server comes up after each URL
// passed once.
func TestHTTPAlphaNeedsEveryURL(t *testing.T) {
	l := newLab(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 2, Checks: []health.Check{{
		Spec:   health.HTTPCheck{URLs: []health.URL{{Path: "/1"}, {Path: "/2"}, {Path: "/3"}}},
		Alpha:  true,
		Timing: timing(5*time.Second, time.Second, 0),
	}}}), health.Options{})
	for i, d := range []time.Duration{time.Second, 5 * time.Second} {
		if st := h.probe(rs, 0, d); st.Up {
			t.Fatalf("up after %d URLs", i+1)
		}
	}
	h.probe(rs, 0, 5*time.Second)
	h.waitState(rs, health.StateUp, 2)
	var paths []string
	web.mu.Lock()
	for _, r := range web.requests {
		paths = append(paths, r.URL.Path)
	}
	web.mu.Unlock()
	if strings.Join(paths, " ") != "/1 /2 /3" {
		t.Errorf("fetched %v", paths)
	}
}

func TestHTTPRegex(t *testing.T) {
	l := newLab(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8080", nil)
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/", Regex: regexp.MustCompile(`status: (ok|degraded)`)}}}, timing(5*time.Second, time.Second, 0)),
	}}), health.Options{})
	web.set(webOK, 200, "status: degraded")
	if st := h.probe(rs, 0, time.Second); !st.OK {
		t.Errorf("matching body: %+v", st)
	}
	web.set(webOK, 200, "status: down")
	if st := h.probe(rs, 0, 5*time.Second); st.OK || !strings.Contains(st.Error, "does not match") {
		t.Errorf("body without a match: %+v", st)
	}
}

// selfSigned makes a certificate for www.example.test and 10.77.0.2.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "www.example.test"},
		DNSNames:     []string{"www.example.test"},
		IPAddresses:  []net.IP{net.ParseIP("10.77.0.2")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestSSLGet: SNI, and certificate verification only when asked for (by
// default keepalived accepts any certificate).
func TestSSLGet(t *testing.T) {
	l := newLab(t)
	cert, roots := selfSigned(t)
	web := newWebServer(t, l.rs, "10.77.0.2:8443", &cert)
	tm := timing(5*time.Second, time.Second, 0)
	url := []health.URL{{Path: "/"}}
	// One manager per variant, each checking the same server.
	variants := []struct {
		name string
		tls  health.TLSOptions
		ok   bool
		sni  string
		err  string
	}{
		{"no verify, no sni", health.TLSOptions{}, true, "", ""},
		{"enable_sni", health.TLSOptions{EnableSNI: true}, true, "vhost.example.test", ""},
		{"sni", health.TLSOptions{ServerName: "www.example.test"}, true, "www.example.test", ""},
		{"verify unknown ca", health.TLSOptions{ServerName: "www.example.test", Verify: true}, false, "www.example.test", "certificate"},
		{"verify", health.TLSOptions{ServerName: "www.example.test", Verify: true, RootCAs: roots}, true, "www.example.test", ""},
		{"verify ip", health.TLSOptions{Verify: true, RootCAs: roots}, true, "", ""},
		{"verify wrong name", health.TLSOptions{ServerName: "other.test", Verify: true, RootCAs: roots}, false, "other.test", "other.test"},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			opts := v.tls
			rs := ap("10.77.0.2:8443")
			h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
				httpCheck(health.HTTPCheck{URLs: url, TLS: &opts, VirtualHost: "vhost.example.test"}, tm),
			}}), health.Options{})
			st := h.probe(rs, 0, time.Second)
			if st.OK != v.ok || (v.err != "" && !strings.Contains(st.Error, v.err)) {
				t.Fatalf("probe %+v, want ok %v error ~%q", st, v.ok, v.err)
			}
			if st.Type != "SSL_GET" {
				t.Errorf("type %q", st.Type)
			}
			web.mu.Lock()
			sni := web.sni[len(web.sni)-1]
			web.mu.Unlock()
			if sni != v.sni {
				t.Errorf("server saw SNI %q, want %q", sni, v.sni)
			}
		})
	}
}

func TestHTTPRequestFormat(t *testing.T) {
	// A raw listener shows the exact bytes, compared with genhash's.
	l := newLab(t)
	ln := listen(t, l.rs, "tcp4", "10.77.0.2:8080")
	got := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			got <- string(buf[:n])
			fmt.Fprint(c, "HTTP/1.0 200 OK\r\n\r\nok")
			c.Close()
		}
	}()
	genhash(t, l.lb, "-s", "10.77.0.2", "-p", "8080", "-u", "/x?y=1")
	fromGenhash := <-got
	rs := ap("10.77.0.2:8080")
	h := start(t, l.lb, oneServer(health.RealServer{Addr: rs, Weight: 1, Checks: []health.Check{
		httpCheck(health.HTTPCheck{URLs: []health.URL{{Path: "/x?y=1"}}}, timing(5*time.Second, time.Second, 0)),
	}}), health.Options{})
	h.probe(rs, 0, time.Second)
	if fromUs := <-got; fromUs != fromGenhash {
		t.Errorf("request\n%q\ngenhash sends\n%q", fromUs, fromGenhash)
	}
}
