// Command pktgen sends UDP frames out of an interface at line rate with
// BPF_PROG_TEST_RUN live frames (see package test/pktgen). The far end of
// a veth needs an XDP program of its own to receive them.
//
//	pktgen -dev veth0 -dst-mac 02:00:00:00:00:01 -src 10.0.0.1:1000 -dst 10.0.0.2:2000 -count 10000000 -threads 2
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/xkeep/xkeep/test/pktgen"
)

func main() {
	var (
		nsPath  = flag.String("netns", "", "network namespace path (default: this one)")
		dev     = flag.String("dev", "", "interface to send from")
		dstMAC  = flag.String("dst-mac", "ff:ff:ff:ff:ff:ff", "destination MAC")
		src     = flag.String("src", "10.0.0.1:1000", "source address:port")
		dst     = flag.String("dst", "10.0.0.2:2000", "destination address:port")
		size    = flag.Int("payload", 18, "UDP payload bytes")
		count   = flag.Uint("count", 10_000_000, "frames per thread")
		threads = flag.Int("threads", 1, "sending threads (one per CPU)")
		random  = flag.Bool("random-sport", false, "a random source port per frame (many flows)")
	)
	flag.Parse()
	if err := run(*nsPath, *dev, *dstMAC, *src, *dst, *size, uint32(*count), *threads, *random); err != nil {
		fmt.Fprintln(os.Stderr, "pktgen:", err)
		os.Exit(1)
	}
}

func run(nsPath, dev, dstMAC, src, dst string, size int, count uint32, threads int, random bool) error {
	if dev == "" {
		return fmt.Errorf("-dev is required")
	}
	mac, err := net.ParseMAC(dstMAC)
	if err != nil {
		return fmt.Errorf("-dst-mac: %w", err)
	}
	s, err := netip.ParseAddrPort(src)
	if err != nil {
		return fmt.Errorf("-src: %w", err)
	}
	d, err := netip.ParseAddrPort(dst)
	if err != nil {
		return fmt.Errorf("-dst: %w", err)
	}
	if s.Addr().Is4() != d.Addr().Is4() {
		return fmt.Errorf("-src and -dst must be the same address family")
	}
	var ifc *net.Interface
	if nsPath == "" {
		if ifc, err = net.InterfaceByName(dev); err != nil {
			return err
		}
	} else if ifc, err = interfaceIn(nsPath, dev); err != nil {
		return err
	}
	cfg := pktgen.Config{
		NetNS: nsPath, Interface: ifc.Index, Count: count, Threads: threads,
		Frame: pktgen.UDPFrame(mac, ifc.HardwareAddr, s, d, size),
	}
	if random {
		cfg.RandomSourcePort = 14 + 20
		if s.Addr().Is6() {
			cfg.RandomSourcePort = 14 + 40
		}
	}
	res, err := pktgen.Run(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("%d frames in %v: %.2f Mpps\n", res.Sent, res.Elapsed, res.PPS()/1e6)
	return nil
}
