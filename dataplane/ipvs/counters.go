package ipvs

import "github.com/moby/ipvs"

// counter turns the kernel's counters of one service or destination into
// totals that only grow, across:
//   - wrap-around: moby/ipvs reads IPVS's 32-bit connection and packet
//     counters (the byte counters are 64-bit), so deltas are taken modulo
//     2^32; reading at least once per 2^32 packets (minutes at 10 Mpps:
//     every Stats call and every Apply reads) keeps them exact;
//   - the kernel object going away and coming back: a service this package
//     removes (VIP not served) and re-adds starts again from zero, and the
//     totals continue from where they were.
//
// A kernel object reset behind our back (ipvsadm -Z, a destination re-added
// after IPVS dropped it from its trash) shows as byte counters going down:
// the new values are then counted from zero.
type counter struct {
	last ipvs.SvcStats

	Conns   uint64
	Packets uint64 // in + out: DR and TUN see only "in"
	Bytes   uint64
}

// observe adds what happened since the last reading.
func (c *counter) observe(s ipvs.SvcStats) {
	if s.BytesIn < c.last.BytesIn || s.BytesOut < c.last.BytesOut {
		c.restart()
	}
	c.Conns += uint64(s.Connections - c.last.Connections)
	c.Packets += uint64(s.PacketsIn-c.last.PacketsIn) + uint64(s.PacketsOut-c.last.PacketsOut)
	c.Bytes += (s.BytesIn - c.last.BytesIn) + (s.BytesOut - c.last.BytesOut)
	c.last = s
}

// restart marks the kernel object as new: its next reading counts from 0.
func (c *counter) restart() { c.last = ipvs.SvcStats{} }
