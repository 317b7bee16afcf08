package health

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpProber is UDP_CHECK.
type udpProber struct {
	d       *deps
	spec    UDPCheck
	ep      Endpoint
	timeout time.Duration
}

func (u UDPCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	return &udpProber{d: d, spec: u, ep: c.Connect.endpoint(rs.Addr), timeout: c.Timing.ConnectTimeout},
		newRetryPolicy(c.Timing, c.Alpha, false)
}

func (p *udpProber) probe(ctx context.Context, _ int) outcome {
	remote := p.ep.Remote.String()
	s := startStep(ctx, p.d.clock, p.timeout, "connecting to udp "+remote)
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "udp", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	defer conn.Close()
	defer s.bind(conn)()
	payload := p.spec.Payload
	if len(payload) == 0 {
		payload = binary.BigEndian.AppendUint64(nil, uint64(p.d.random(1<<62)))
	}
	s.next("sending to udp " + remote)
	if _, err := conn.Write(payload); err != nil {
		return failed(s.fail(err))
	}
	s.next("waiting for reply from udp " + remote)
	maxLen := p.spec.MaxReplyLength
	if maxLen == 0 {
		maxLen = 255
	}
	buf := make([]byte, maxLen+1)
	n, err := conn.Read(buf)
	if err != nil {
		if s.timedOut() && !p.spec.RequireReply {
			// No ICMP error within the timeout: keepalived counts the
			// port as open.
			return passed()
		}
		return failed(s.fail(err))
	}
	if !p.spec.RequireReply {
		return passed()
	}
	if n < p.spec.MinReplyLength || n > maxLen {
		return failedf("reply from udp %s: %d bytes, want %d..%d", remote, n, p.spec.MinReplyLength, maxLen)
	}
	for i := 0; i < min(n, len(p.spec.Reply)); i++ {
		var ignore byte
		if i < len(p.spec.ReplyMask) {
			ignore = p.spec.ReplyMask[i]
		}
		if (buf[i]^p.spec.Reply[i])&^ignore != 0 {
			return failedf("reply from udp %s: byte %d is %#02x, want %#02x", remote, i, buf[i], p.spec.Reply[i])
		}
	}
	return passed()
}

// pingProber is PING_CHECK.
type pingProber struct {
	d       *deps
	ep      Endpoint
	timeout time.Duration
}

func (PingCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	ep := c.Connect.endpoint(rs.Addr)
	ep.Remote = netip.AddrPortFrom(ep.Remote.Addr(), 0)
	return &pingProber{d: d, ep: ep, timeout: c.Timing.ConnectTimeout}, newRetryPolicy(c.Timing, c.Alpha, false)
}

func (p *pingProber) probe(ctx context.Context, _ int) outcome {
	remote := p.ep.Remote.Addr().String()
	s := startStep(ctx, p.d.clock, p.timeout, "opening icmp socket to "+remote)
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "ping", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	defer conn.Close()
	defer s.bind(conn)()

	v6 := p.ep.Remote.Addr().Is6() && !p.ep.Remote.Addr().Is4In6()
	var request icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if v6 {
		request, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	seq := int(p.d.random(1 << 16))
	data := binary.BigEndian.AppendUint64([]byte("xkeep"), uint64(p.d.random(1<<62)))
	// The kernel sets the identifier and, for ICMPv6, the checksum.
	msg, err := (&icmp.Message{Type: request, Body: &icmp.Echo{Seq: seq, Data: data}}).Marshal(nil)
	if err != nil {
		return failedf("build echo request: %w", err)
	}
	s.next("sending echo request to " + remote)
	if _, err := conn.Write(msg); err != nil {
		return failed(s.fail(err))
	}
	s.next("waiting for echo reply from " + remote)
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return failed(s.fail(err))
		}
		reply, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		switch reply.Type {
		case ipv4.ICMPTypeEchoReply, ipv6.ICMPTypeEchoReply:
			if e, ok := reply.Body.(*icmp.Echo); ok && e.Seq == seq && bytes.Equal(e.Data, data) {
				return passed()
			}
		case ipv4.ICMPTypeDestinationUnreachable, ipv6.ICMPTypeDestinationUnreachable,
			ipv4.ICMPTypeTimeExceeded, ipv6.ICMPTypeTimeExceeded:
			return failedf("%s: %v", s.phase, reply.Type)
		}
	}
}

// smtpProber is SMTP_CHECK.
type smtpProber struct {
	d       *deps
	helo    string
	ep      Endpoint
	timeout time.Duration
}

func (m SMTPCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	helo := m.HeloName
	if helo == "" {
		helo = "localhost"
	}
	return &smtpProber{d: d, helo: helo, ep: c.Connect.endpoint(rs.Addr), timeout: c.Timing.ConnectTimeout},
		newRetryPolicy(c.Timing, c.Alpha, false)
}

func (p *smtpProber) probe(ctx context.Context, _ int) outcome {
	remote := p.ep.Remote.String()
	s := startStep(ctx, p.d.clock, p.timeout, "connecting to "+remote)
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "tcp", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	defer conn.Close()
	defer s.bind(conn)()
	r := textproto.NewReader(bufio.NewReader(conn))
	dialogue := []struct {
		send string
		want int
	}{
		{"", 220},
		{"HELO " + p.helo + "\r\n", 250},
		{"QUIT\r\n", 221},
	}
	for _, d := range dialogue {
		if d.send != "" {
			s.next("sending " + strings.Fields(d.send)[0] + " to " + remote)
			if _, err := conn.Write([]byte(d.send)); err != nil {
				return failed(s.fail(err))
			}
		}
		s.next(fmt.Sprintf("waiting for smtp %d from %s", d.want, remote))
		if _, _, err := r.ReadResponse(d.want); err != nil {
			var perr *textproto.Error
			if errors.As(err, &perr) {
				return failedf("smtp %s: got %d %s, want %d", remote, perr.Code, perr.Msg, d.want)
			}
			return failed(s.fail(err))
		}
	}
	return passed()
}

// dnsProber is DNS_CHECK.
type dnsProber struct {
	d       *deps
	qtype   dnsmessage.Type
	name    dnsmessage.Name
	ep      Endpoint
	timeout time.Duration
}

func (q DNSCheck) newProber(c *Check, rs *RealServer, d *deps) (prober, policy) {
	t, _ := dnsType(q.Type) // validated
	name := q.Name
	if name == "" {
		name = "."
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return &dnsProber{d: d, qtype: t, name: dnsmessage.MustNewName(name), ep: c.Connect.endpoint(rs.Addr), timeout: c.Timing.ConnectTimeout},
		newRetryPolicy(c.Timing, c.Alpha, false)
}

func dnsType(s string) (dnsmessage.Type, error) {
	switch strings.ToUpper(s) {
	case "", "SOA":
		return dnsmessage.TypeSOA, nil
	case "A":
		return dnsmessage.TypeA, nil
	case "NS":
		return dnsmessage.TypeNS, nil
	case "CNAME":
		return dnsmessage.TypeCNAME, nil
	case "MX":
		return dnsmessage.TypeMX, nil
	case "TXT":
		return dnsmessage.TypeTXT, nil
	case "AAAA":
		return dnsmessage.TypeAAAA, nil
	case "RRSIG":
		return 46, nil
	case "DNSKEY":
		return 48, nil
	}
	return 0, fmt.Errorf("dns type %q unknown (want A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY)", s)
}

func (p *dnsProber) probe(ctx context.Context, _ int) outcome {
	remote := p.ep.Remote.String()
	s := startStep(ctx, p.d.clock, p.timeout, "connecting to udp "+remote)
	defer s.stop()
	conn, err := p.d.dialer.DialContext(s.ctx, "udp", p.ep)
	if err != nil {
		return failed(s.fail(err))
	}
	defer conn.Close()
	defer s.bind(conn)()

	id := uint16(p.d.random(1 << 16))
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: p.name, Type: p.qtype, Class: dnsmessage.ClassINET})
	query, err := b.Finish()
	if err != nil {
		return failedf("build dns query: %w", err)
	}
	s.next("sending dns query to " + remote)
	if _, err := conn.Write(query); err != nil {
		return failed(s.fail(err))
	}
	s.next("waiting for dns answer from " + remote)
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return failed(s.fail(err))
		}
		var parser dnsmessage.Parser
		h, err := parser.Start(buf[:n])
		if err != nil || h.ID != id || !h.Response {
			continue // not our answer: keep waiting, as keepalived does
		}
		if h.RCode != dnsmessage.RCodeSuccess {
			return failedf("dns answer from %s: rcode %v", remote, h.RCode)
		}
		return passed()
	}
}
