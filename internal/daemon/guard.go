package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"

	"github.com/xkeep/xkeep/dataplane"
	"github.com/xkeep/xkeep/dataplane/ipvs"
	"github.com/xkeep/xkeep/vrrp"
)

// The crash guard is a small process `xkeep run` starts beside itself
// (the same binary, `xkeep guard`, in a session of its own, in the same
// network namespace). A SIGKILLed, crashed or OOM-killed daemon cannot
// remove what it installed: its VIPs stay on the interface, where the
// kernel keeps answering ARP for them against the new master, and with
// IPVS its services stay and bounce back the DR packets the new master
// sends this node as a real server (a forwarding loop). The guard
// removes them.
//
// Protocol: the daemon writes JSON lines to the guard's stdin, each the
// full current state (guardMessage: the VIPs the VRRP engine added, the
// IPVS services the dataplane owns), so a line cut short by the daemon's
// death is ignored without losing anything; on a graceful stop it writes
// {"goodbye":true} and the guard exits touching nothing. End of file
// without goodbye means the daemon died: the guard removes the last
// state's VIPs (netlink) and IPVS services (only those, never foreign
// ones), logs what it did and exits. It never polls: it blocks reading
// the pipe, whose write end only the daemon holds (close-on-exec, so
// scripts the daemon runs do not keep it open).
//
// A new daemon waits for a previous one's guard to finish before it adds
// anything: the guard holds a lock (flock on a file beside the control
// socket) for as long as it lives.

// guardMessage is one line of the protocol.
type guardMessage struct {
	guardState
	// Goodbye: the daemon stopped and removed what it held itself.
	Goodbye bool `json:"goodbye,omitempty"`
}

// GuardCleaner removes what a dead daemon held. NewGuardCleaner is the
// real one; tests record instead.
type GuardCleaner interface {
	// RemoveVIP removes an address from its interface (v.Dev); an address
	// or interface that is gone is no error.
	RemoveVIP(v vrrp.VIP) error
	// RemoveServices removes those of the IPVS services that exist.
	RemoveServices(keys []dataplane.ServiceKey) error
}

// RunGuard is the guard: it reads the daemon's reports from r until
// goodbye (it returns nil, having touched nothing) or end of file, when
// it removes what the last complete report named and returns the
// removals' errors.
func RunGuard(r io.Reader, c GuardCleaner, log *slog.Logger) error {
	var (
		last    guardState
		reports int
	)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err == nil {
			var m guardMessage
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				log.Error("unreadable report from the daemon; keeping the previous one", "err", jerr)
				continue
			}
			if m.Goodbye {
				// The goodbye carries the daemon's final state (it may
				// come without a report of its own before it).
				log.Debug("the daemon said goodbye: it stopped and removed what it held itself; nothing to do",
					"vips", len(m.VIPs), "ipvs_services", len(m.Services))
				return nil
			}
			last = m.guardState
			reports++
			log.Debug("daemon holds", "vips", len(last.VIPs), "ipvs_services", len(last.Services))
			continue
		}
		if !errors.Is(err, io.EOF) {
			log.Error("reading from the daemon failed; taking it for dead", "err", err)
		} else if len(line) > 0 {
			log.Warn("the daemon's last report was cut short; using the one before")
		}
		return cleanUp(last, c, log)
	}
}

// cleanUp removes what the dead daemon held.
func cleanUp(st guardState, c GuardCleaner, log *slog.Logger) error {
	if len(st.VIPs) == 0 && len(st.Services) == 0 {
		log.Info("the daemon is gone without saying goodbye; it held nothing to remove")
		return nil
	}
	log.Warn("the daemon is gone without saying goodbye (killed or crashed): removing what it held",
		"vips", len(st.VIPs), "ipvs_services", len(st.Services))
	var errs []error
	for _, gv := range st.VIPs {
		v := gv.vip()
		if err := c.RemoveVIP(v); err != nil {
			errs = append(errs, err)
			log.Error("remove virtual address", "vip", v.Prefix, "interface", v.Dev, "err", err)
			continue
		}
		log.Warn("removed virtual address", "vip", v.Prefix, "interface", v.Dev)
	}
	if len(st.Services) > 0 {
		keys := make([]dataplane.ServiceKey, len(st.Services))
		for i, s := range st.Services {
			keys[i] = s.key()
		}
		if err := c.RemoveServices(keys); err != nil {
			errs = append(errs, err)
			log.Error("remove ipvs services", "err", err)
		}
	}
	return errors.Join(errs...)
}

// NewGuardCleaner removes addresses with netlink and IPVS services
// through dataplane/ipvs, in the process's network namespace.
func NewGuardCleaner(log *slog.Logger) GuardCleaner {
	return netlinkCleaner{log: log, addrs: &vrrp.NetlinkAddrs{}}
}

type netlinkCleaner struct {
	log   *slog.Logger
	addrs *vrrp.NetlinkAddrs
}

func (c netlinkCleaner) RemoveVIP(v vrrp.VIP) error { return c.addrs.RemoveVIP(v, v.Dev) }

func (c netlinkCleaner) RemoveServices(keys []dataplane.ServiceKey) error {
	// ipvs logs each service it removes.
	_, err := ipvs.RemoveServices(ipvs.Config{Logger: c.log}, keys)
	return err
}
