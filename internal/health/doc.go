// Package health is xkeep's real server health checker: what keepalived's
// checker child does for its virtual_server blocks.
//
// A Manager runs one goroutine per checker (TCP_CHECK, HTTP_GET, SSL_GET,
// MISC_CHECK, UDP_CHECK, PING_CHECK, SMTP_CHECK, DNS_CHECK), so a slow or
// hung server never delays another's checks. Only MISC_CHECK starts a
// process per probe. Each checker follows keepalived's scheduling: a
// bootstrap second plus a random warmup before the first probe, delay_loop
// between probes, retry attempts delay_before_retry apart before a passing
// checker declares failure, alpha (start failed), and connect_timeout on
// every step of a probe.
//
// From the checkers' verdicts the Manager keeps keepalived's pool state:
// a real server is alive while all its checkers pass; inhibit_on_failure
// keeps a failed server with weight 0 (draining); misc_dynamic sets
// weights; quorum with hysteresis switches to the sorry server and runs
// quorum_up/quorum_down; notify_up/notify_down run on changes; omega runs
// the down scripts at shutdown. Snapshot reports, per virtual server, each
// backend's state (up, draining, down) and weight for the dataplane, and
// each checker's last result and latency for metrics and `xkeep status`.
//
// Time, sockets and processes are behind Clock, Dialer and ScriptRunner,
// so tests drive the schedule with healthtest.Clock and connect from
// inside network namespaces. The package depends on no other xkeep part:
// the daemon translates the configuration into Config and Snapshot into
// the dataplane's desired state.
package health
