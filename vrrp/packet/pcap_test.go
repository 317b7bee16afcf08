package packet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// corpusDir is tcpdump's VRRP captures, in the shared/ folder that sits
// beside the repository (read-only, also in CI).
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "vrrp-pcap")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("XKEEP_CI") != "" {
			t.Fatalf("VRRP capture corpus missing in CI: %v", err)
		}
		t.Skipf("skipped: VRRP capture corpus not found beside the repository (%v)", err)
	}
	return dir
}

type pcapRecord struct {
	linkType uint32
	data     []byte
}

// readPcap reads a classic little-endian microsecond pcap file the way
// libpcap does: a record longer than the snapshot length keeps only the
// snapshot and skips the rest; a record cut short by the end of the file
// ends the reading.
func readPcap(t *testing.T, path string) []pcapRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap file", path)
	}
	snap := binary.LittleEndian.Uint32(b[16:])
	link := binary.LittleEndian.Uint32(b[20:])
	var recs []pcapRecord
	for off := 24; off+16 <= len(b); {
		caplen := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		keep := min(caplen, int(snap))
		if off+keep > len(b) {
			break
		}
		recs = append(recs, pcapRecord{link, b[off : off+keep]})
		off += caplen
	}
	return recs
}

// ipPayload strips the link-layer header: Ethernet (with 802.1Q tags) or
// Frame Relay (Q.922 address, then an Ethertype or NLPID).
func ipPayload(r pcapRecord) ([]byte, uint16, error) {
	b := r.data
	switch r.linkType {
	case 1: // Ethernet
		if len(b) < 14 {
			return nil, 0, fmt.Errorf("short ethernet frame")
		}
		et := binary.BigEndian.Uint16(b[12:])
		b = b[14:]
		for et == 0x8100 && len(b) >= 4 {
			et = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		}
		return b, et, nil
	case 107: // Frame Relay
		i := 0
		for i < len(b) && b[i]&1 == 0 {
			i++
		}
		i++
		if i+2 > len(b) {
			return nil, 0, fmt.Errorf("short frame relay header")
		}
		if b[i] == 0x03 && b[i+1] == 0xcc {
			return b[i+2:], 0x0800, nil
		}
		return b[i+2:], binary.BigEndian.Uint16(b[i:]), nil
	}
	return nil, 0, fmt.Errorf("link type %d", r.linkType)
}

func decodeFrame(r pcapRecord) (*Packet, error) {
	ip, et, err := ipPayload(r)
	if err != nil {
		return nil, err
	}
	switch et {
	case 0x0800:
		return DecodeIPv4(ip)
	case 0x86dd:
		return DecodeIPv6(ip)
	}
	return nil, fmt.Errorf("ethertype %#04x", et)
}

// tcpdumpV prints a packet the way `tcpdump -v` prints it.
func tcpdumpV(p *Packet) string {
	var s strings.Builder
	if p.Src.Is4() {
		fmt.Fprintf(&s, "IP (tos %#x, ttl %d, id %d, offset 0, flags [none], proto VRRP (112), length %d)\n    %s > %s: ",
			p.TOS, p.TTL, p.ID, 20+p.Length, p.Src, p.Dst)
	} else {
		fmt.Fprintf(&s, "IP6 (hlim %d, next-header VRRP (112), payload length %d) %s > %s: ", p.TTL, p.Length, p.Src, p.Dst)
	}
	fmt.Fprintf(&s, "VRRPv%d, Advertisement, vrid %d, prio %d, ", p.Version, p.VRID, p.Priority)
	if p.Version == 2 {
		fmt.Fprintf(&s, "authtype %s, intvl %ds, ", p.AuthType, p.Interval/time.Second)
	} else {
		fmt.Fprintf(&s, "intvl %dcs, ", p.Interval/(10*time.Millisecond))
	}
	fmt.Fprintf(&s, "length %d", p.Length)
	switch len(p.Addrs) {
	case 0:
	case 1:
		fmt.Fprintf(&s, ", addrs: %s", p.Addrs[0])
	default:
		as := make([]string, len(p.Addrs))
		for i, a := range p.Addrs {
			as[i] = a.String()
		}
		fmt.Fprintf(&s, ", addrs(%d): %s", len(as), strings.Join(as, ","))
	}
	if p.Version == 2 && p.AuthType == AuthPass {
		fmt.Fprintf(&s, " auth %q", strings.TrimRight(string(p.AuthData[:]), "\x00"))
	}
	return s.String()
}

// readTcpdumpOut splits tcpdump's output into one string per packet,
// without the packet number and timestamp.
func readTcpdumpOut(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := regexp.MustCompile(`^\s*\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ `)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if loc := head.FindStringIndex(line); loc != nil {
			out = append(out, line[loc[1]:])
		} else if len(out) > 0 {
			out[len(out)-1] += "\n" + line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecodeMatchesTcpdump decodes tcpdump's own VRRP capture and compares
// every field with what `tcpdump -v` printed for it.
func TestDecodeMatchesTcpdump(t *testing.T) {
	dir := corpusDir(t)
	recs := readPcap(t, filepath.Join(dir, "vrrp.pcap"))
	want := readTcpdumpOut(t, filepath.Join(dir, "vrrp-v.out"))
	if len(recs) != len(want) || len(recs) == 0 {
		t.Fatalf("%d packets in the capture, %d in tcpdump's output", len(recs), len(want))
	}
	versions := map[string]int{}
	for i, r := range recs {
		p, err := decodeFrame(r)
		if err != nil {
			t.Errorf("packet %d: %v\n(tcpdump: %s)", i+1, err, want[i])
			continue
		}
		if got := tcpdumpV(p); got != want[i] {
			t.Errorf("packet %d:\n got %s\nwant %s", i+1, got, want[i])
		}
		fam := "ipv4"
		if p.Src.Is6() {
			fam = "ipv6"
		}
		versions[fmt.Sprintf("v%d/%s/%s", p.Version, fam, p.AuthType)]++
	}
	t.Logf("decoded %d packets: %v", len(recs), versions)
}

// TestDecodeRejectsMalformedCaptures feeds the captures that once crashed
// tcpdump: every packet must be rejected with a reason, never a panic.
func TestDecodeRejectsMalformedCaptures(t *testing.T) {
	dir := corpusDir(t)
	for _, name := range []string{"vrrp-vrrp_print-oobr.pcap", "vrrp-vrrp_print-oobr-2.pcap"} {
		recs := readPcap(t, filepath.Join(dir, name))
		if len(recs) == 0 {
			t.Fatalf("%s: no packets read", name)
		}
		for i, r := range recs {
			p, err := decodeFrame(r)
			if err == nil {
				t.Errorf("%s packet %d: decoded %+v, want an error", name, i+1, p)
				continue
			}
			if ReasonOf(err) == "other" {
				t.Errorf("%s packet %d: error without a reason: %v", name, i+1, err)
			}
			t.Logf("%s packet %d: %v", name, i+1, err)
		}
	}
}
