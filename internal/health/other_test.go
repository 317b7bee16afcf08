package health_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xkeep/xkeep/internal/health"
)

func single(addr string, spec health.CheckSpec, tm health.Timing) health.Config {
	return oneServer(health.RealServer{Addr: ap(addr), Weight: 1, Checks: []health.Check{{Spec: spec, Timing: tm}}})
}

// udpEcho answers every datagram with reply, and remembers what it got.
type udpEcho struct {
	mu    sync.Mutex
	got   [][]byte
	reply []byte
}

func newUDPEcho(t *testing.T, l *lab, addr string, reply []byte) *udpEcho {
	e := &udpEcho{reply: reply}
	c := listenPacket(t, l.rs, addr)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.got = append(e.got, append([]byte(nil), buf[:n]...))
			reply := e.reply
			e.mu.Unlock()
			if reply != nil {
				c.WriteTo(reply, from)
			}
		}
	}()
	return e
}

func TestUDPCheck(t *testing.T) {
	l := newLab(t)
	echo := newUDPEcho(t, l, "10.77.0.2:7", []byte("PONG"))
	newUDPEcho(t, l, "10.77.0.2:9", nil) // silent
	tm := timing(5*time.Second, time.Second, 0)
	for _, tc := range []struct {
		name string
		addr string
		spec health.UDPCheck
		// waitTimeout: the outcome comes only when connect_timeout passes.
		waitTimeout bool
		ok          bool
		err         string
	}{
		{"closed port", "10.77.0.3:9999", health.UDPCheck{}, false, false, "connection refused"},
		{"silent open port", "10.77.0.2:9", health.UDPCheck{}, true, true, ""},
		{"reply not required", "10.77.0.2:7", health.UDPCheck{Payload: []byte("PING")}, false, true, ""},
		{"reply matches", "10.77.0.2:7", health.UDPCheck{RequireReply: true, Reply: []byte("PONG")}, false, true, ""},
		{"reply matches under mask", "10.77.0.2:7", health.UDPCheck{RequireReply: true, Reply: []byte("PXNG"), ReplyMask: []byte{0, 0xff, 0, 0}}, false, true, ""},
		{"reply differs", "10.77.0.2:7", health.UDPCheck{RequireReply: true, Reply: []byte("PING")}, false, false, "byte 1 is 0x4f, want 0x49"},
		{"reply too short", "10.77.0.2:7", health.UDPCheck{RequireReply: true, MinReplyLength: 5}, false, false, "4 bytes, want 5..255"},
		{"reply missing", "10.77.0.2:9", health.UDPCheck{RequireReply: true}, true, false, "timeout waiting for reply from udp 10.77.0.2:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, l.lb, single(tc.addr, tc.spec, tm), health.Options{})
			var st health.CheckStatus
			if tc.waitTimeout {
				h.clk.Advance(time.Second)
				h.waitReading(1)
				h.waitPending(3 * time.Second)
				if st := h.check(ap(tc.addr), 0); st.Probes != 0 {
					t.Fatalf("finished before the timeout: %+v", st)
				}
				h.clk.Advance(3 * time.Second)
				st = h.waitProbes(ap(tc.addr), 0, 1)
			} else {
				st = h.probe(ap(tc.addr), 0, time.Second)
			}
			if st.OK != tc.ok || !strings.Contains(st.Error, tc.err) {
				t.Errorf("probe %+v, want ok %v error ~%q", st, tc.ok, tc.err)
			}
		})
	}
	echo.mu.Lock()
	defer echo.mu.Unlock()
	if string(echo.got[0]) != "PING" {
		t.Errorf("server got payload %q, want PING", echo.got[0])
	}
}

func TestPingCheck(t *testing.T) {
	l := newLab(t)
	tm := timing(5*time.Second, time.Second, 0)
	h := start(t, l.lb, health.Config{VirtualServers: []health.VirtualServer{{Name: "UDP 10.77.9.9:1358", Quorum: 1, RealServers: []health.RealServer{
		{Addr: ap("10.77.0.2:1358"), Weight: 1, Checks: []health.Check{{Spec: health.PingCheck{}, Timing: tm}}},
		{Addr: ap(blackhole + ":1358"), Weight: 1, Checks: []health.Check{{Spec: health.PingCheck{}, Timing: tm}}},
	}}}}, health.Options{})
	h.clk.Advance(time.Second)
	if st := h.waitProbes(ap("10.77.0.2:1358"), 0, 1); !st.OK || st.Target != "10.77.0.2" {
		t.Fatalf("ping to a live host: %+v", st)
	}
	h.waitReading(1)
	h.waitPending(3*time.Second, 5*time.Second) // the blackhole's echo wait, the live host's next check
	h.clk.Advance(3 * time.Second)
	st := h.waitProbes(ap(blackhole+":1358"), 0, 1)
	if st.OK || !strings.Contains(st.Error, "timeout waiting for echo reply from "+blackhole) {
		t.Fatalf("ping to nowhere: %+v", st)
	}
	h.waitState(ap(blackhole+":1358"), health.StateDown, 0)
}

// smtpServer speaks just enough SMTP; banner is its greeting code.
type smtpServer struct {
	mu     sync.Mutex
	banner int
	helos  []string
}

func newSMTPServer(t *testing.T, l *lab, addr string) *smtpServer {
	s := &smtpServer{banner: 220}
	ln := listen(t, l.rs, "tcp4", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	banner := s.banner
	s.mu.Unlock()
	fmt.Fprintf(c, "%d mta.test ESMTP\r\n", banner)
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(cmd) {
		case "HELO":
			s.mu.Lock()
			s.helos = append(s.helos, arg)
			s.mu.Unlock()
			fmt.Fprintf(c, "250-mta.test Hello %s\r\n250 pleased to meet you\r\n", arg)
		case "QUIT":
			fmt.Fprint(c, "221 2.0.0 closing connection\r\n")
			return
		default:
			fmt.Fprint(c, "500 what\r\n")
		}
	}
}

func TestSMTPCheck(t *testing.T) {
	l := newLab(t)
	srv := newSMTPServer(t, l, "10.77.0.2:25")
	rs := ap("10.77.0.2:25")
	h := start(t, l.lb, single("10.77.0.2:25", health.SMTPCheck{HeloName: "foo.bar.com"}, timing(5*time.Second, time.Second, 0)), health.Options{})
	if st := h.probe(rs, 0, time.Second); !st.OK {
		t.Fatalf("smtp dialogue: %+v", st)
	}
	srv.mu.Lock()
	srv.banner = 554
	helos := srv.helos
	srv.mu.Unlock()
	if len(helos) != 1 || helos[0] != "foo.bar.com" {
		t.Errorf("HELO %v", helos)
	}
	st := h.probe(rs, 0, 5*time.Second)
	if st.OK || !strings.Contains(st.Error, "got 554") {
		t.Fatalf("refusing server: %+v", st)
	}
}

// dnsServer answers queries with rcode, first sending a decoy with a
// wrong ID, which the checker must ignore.
type dnsServer struct {
	mu        sync.Mutex
	rcode     dnsmessage.RCode
	questions []dnsmessage.Question
	rd        []bool
}

func newDNSServer(t *testing.T, l *lab, addr string) *dnsServer {
	s := &dnsServer{}
	c := listenPacket(t, l.rs, addr)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.questions = append(s.questions, q)
			s.rd = append(s.rd, h.RecursionDesired)
			rcode := s.rcode
			s.mu.Unlock()
			for _, id := range []uint16{h.ID + 1, h.ID} {
				b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: rcode})
				b.StartQuestions()
				b.Question(q)
				msg, _ := b.Finish()
				c.WriteTo(msg, from)
			}
		}
	}()
	return s
}

func TestDNSCheck(t *testing.T) {
	l := newLab(t)
	srv := newDNSServer(t, l, "10.77.0.2:53")
	tm := timing(5*time.Second, time.Second, 0)
	h := start(t, l.lb, oneServer(
		health.RealServer{Addr: ap("10.77.0.2:53"), Weight: 1, Checks: []health.Check{
			{Spec: health.DNSCheck{}, Timing: tm},
			{Spec: health.DNSCheck{Type: "a", Name: "www.example.com"}, Timing: tm},
		}},
	), health.Options{})
	h.clk.Advance(time.Second)
	for k := range 2 {
		if st := h.waitProbes(ap("10.77.0.2:53"), k, 1); !st.OK {
			t.Fatalf("check %d: %+v", k, st)
		}
	}
	srv.mu.Lock()
	var qs []string
	for _, q := range srv.questions {
		qs = append(qs, fmt.Sprintf("%s/%v/%v", q.Name, q.Type, q.Class))
	}
	rd := srv.rd
	srv.rcode = dnsmessage.RCodeNameError
	srv.mu.Unlock()
	slices.Sort(qs)
	if got := strings.Join(qs, " "); got != "./TypeSOA/ClassINET www.example.com./TypeA/ClassINET" {
		t.Errorf("questions %s", got)
	}
	if !rd[0] || !rd[1] {
		t.Errorf("recursion desired %v", rd)
	}
	h.clk.Advance(5 * time.Second)
	st := h.waitProbes(ap("10.77.0.2:53"), 0, 2)
	if st.OK || !strings.Contains(st.Error, "rcode RCodeNameError") {
		t.Fatalf("NXDOMAIN: %+v", st)
	}
}
