package health

import "time"

// decision is what a checker concluded from a probe, if anything.
type decision int8

const (
	noDecision decision = iota
	decideUp
	decideDown
)

func (d decision) String() string {
	switch d {
	case decideUp:
		return "up"
	case decideDown:
		return "down"
	}
	return "none"
}

// policy is one checker's retry and scheduling state, keepalived's
// checker_t counters (is_up, has_run, retry_it) with the epilog rules of
// its checker kind. It is pure: probes report into it, it answers with a
// decision and the delay before the next probe.
type policy interface {
	// url is the index of the URL the next probe fetches (HTTP_GET and
	// SSL_GET check one URL per probe); 0 for other kinds.
	url() int
	// result records a probe's outcome.
	result(ok bool) (decision, time.Duration)
	// retrying is how many failed attempts are counted toward the next
	// failure decision (retry_it).
	retrying() int
}

// retryPolicy is the rule of TCP_CHECK (retryWhileDown) and of MISC_CHECK,
// UDP_CHECK, PING_CHECK, SMTP_CHECK and DNS_CHECK.
//
// A passing checker that fails retries Retry more times, DelayBeforeRetry
// apart, before it declares failure; a pass clears the count. At start the
// count is already exhausted, so one failure is enough to take a server
// down (keepalived: "for non alpha mode, one failure is enough initially").
// TCP_CHECK keeps cycling through its retries while down, which makes it
// notice recovery sooner; the others probe a failed server once per
// DelayLoop.
type retryPolicy struct {
	t              Timing
	retryWhileDown bool

	isUp, hasRun bool
	retryIt      int
}

func newRetryPolicy(t Timing, alpha, retryWhileDown bool) *retryPolicy {
	return &retryPolicy{t: t, retryWhileDown: retryWhileDown, isUp: !alpha, retryIt: t.Retry}
}

func (p *retryPolicy) url() int      { return 0 }
func (p *retryPolicy) retrying() int { return p.retryIt }

func (p *retryPolicy) result(ok bool) (decision, time.Duration) {
	d := noDecision
	var delay time.Duration
	if p.retryWhileDown {
		// check_tcp.c tcp_epilog
		if ok || p.retryIt >= p.t.Retry {
			delay = p.t.DelayLoop
			p.retryIt = 0
			if ok && (!p.isUp || !p.hasRun) {
				d = decideUp
			} else if !ok && (p.isUp || !p.hasRun) {
				d = decideDown
			}
		} else {
			delay = p.t.DelayBeforeRetry
			p.retryIt++
		}
	} else {
		// check_misc.c, check_udp.c, check_dns.c
		switch {
		case ok:
			p.retryIt = 0
			delay = p.t.DelayLoop
			if !p.isUp || !p.hasRun {
				d = decideUp
			}
		case p.isUp || !p.hasRun:
			if p.retryIt < p.t.Retry {
				p.retryIt++
				delay = p.t.DelayBeforeRetry
			} else {
				p.retryIt = 0
				delay = p.t.DelayLoop
				d = decideDown
			}
		default:
			p.retryIt = 0
			delay = p.t.DelayLoop
		}
	}
	p.hasRun = true
	p.apply(d)
	return d, delay
}

func (p *retryPolicy) apply(d decision) {
	switch d {
	case decideUp:
		p.isUp = true
	case decideDown:
		p.isUp = false
	}
}

// httpPolicy is check_http.c's epilog: each probe fetches one URL, a
// passing checker moves to the next URL a delay loop later, and the
// checker is up once every URL passed in a row. A failed URL is retried
// Retry times DelayBeforeRetry apart; once the checker is down it probes
// the failed URL every max(DelayBeforeRetry, DelayLoop) and, when it
// passes, starts over from the first URL. FastRecovery drops the delays
// while a checker that has not failed a URL is not yet up.
type httpPolicy struct {
	t     Timing
	nURLs int
	fast  bool

	isUp, hasRun bool
	retryIt      int
	urlIt        int
	failedURL    int // -1: none
}

func newHTTPPolicy(t Timing, alpha bool, nURLs int, fast bool) *httpPolicy {
	return &httpPolicy{t: t, nURLs: nURLs, fast: fast, isUp: !alpha, retryIt: t.Retry, failedURL: -1}
}

func (p *httpPolicy) url() int      { return p.urlIt }
func (p *httpPolicy) retrying() int { return p.retryIt }

func (p *httpPolicy) result(ok bool) (decision, time.Duration) {
	d := noDecision
	var delay time.Duration
	if ok {
		// epilog(REGISTER_CHECKER_NEW)
		wrapped := p.urlIt == p.nURLs-1
		if !wrapped {
			p.urlIt++
		}
		p.retryIt = 0
		switch {
		case wrapped && p.failedURL < 0:
			if !p.isUp || !p.hasRun {
				d = decideUp
				p.hasRun = true
			}
			p.urlIt = 0
		case p.failedURL >= 0:
			// The failed URL passes again: check them all from the start.
			p.failedURL = -1
			p.urlIt = 0
		}
		delay = p.t.DelayLoop
		if !p.hasRun {
			p.retryIt = p.t.Retry
		}
	} else {
		// timeout_epilog
		if p.isUp || !p.hasRun {
			p.hasRun = true
			// epilog(REGISTER_CHECKER_RETRY)
			p.retryIt++
			if p.retryIt > p.t.Retry {
				if p.isUp {
					d = decideDown
				}
				p.failedURL = p.urlIt
			}
		}
		// else epilog(REGISTER_CHECKER_FAILED): already known dead
		if p.failedURL >= 0 {
			delay = max(p.t.DelayBeforeRetry, p.t.DelayLoop)
		} else {
			delay = p.t.DelayBeforeRetry
		}
	}
	switch d {
	case decideUp:
		p.isUp = true
	case decideDown:
		p.isUp = false
	}
	if p.fast && (!p.hasRun || (!p.isUp && p.failedURL < 0)) {
		delay = 0
	}
	return d, delay
}
