package health

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// runPolicy feeds a policy a sequence of outcomes ("ok"/"fail") and
// renders each answer as "outcome>decision/delay[/url]".
func runPolicy(p policy, outcomes string) string {
	var out []string
	for _, o := range strings.Fields(outcomes) {
		url := p.url()
		d, delay := p.result(o == "ok")
		s := fmt.Sprintf("%s>%s/%v", o, d, delay)
		if _, isHTTP := p.(*httpPolicy); isHTTP {
			s = fmt.Sprintf("u%d:%s", url, s)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

var timing = Timing{DelayLoop: 6 * time.Second, Retry: 2, DelayBeforeRetry: 3 * time.Second, ConnectTimeout: time.Second}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   policy
		outcomes string
		want     string
	}{{
		// keepalived: at start one failure is enough; a passing checker
		// retries twice, 3 s apart, before it declares failure.
		name:     "tcp first failure is enough",
		policy:   newRetryPolicy(timing, false, true),
		outcomes: "fail ok fail fail fail ok",
		want:     "fail>down/6s ok>up/6s fail>none/3s fail>none/3s fail>down/6s ok>up/6s",
	}, {
		name:     "tcp passes quietly while up",
		policy:   newRetryPolicy(timing, false, true),
		outcomes: "ok ok fail ok",
		want:     "ok>up/6s ok>none/6s fail>none/3s ok>none/6s",
	}, {
		// TCP_CHECK keeps cycling through its retries while down.
		name:     "tcp retries while down",
		policy:   newRetryPolicy(timing, false, true),
		outcomes: "fail fail fail fail fail ok",
		want:     "fail>down/6s fail>none/3s fail>none/3s fail>none/6s fail>none/3s ok>up/6s",
	}, {
		name:     "alpha waits for a pass",
		policy:   newRetryPolicy(timing, true, true),
		outcomes: "ok fail",
		want:     "ok>up/6s fail>none/3s",
	}, {
		// Alpha: the first failure confirms the starting state.
		name:     "alpha first failure",
		policy:   newRetryPolicy(timing, true, false),
		outcomes: "fail fail ok",
		want:     "fail>down/6s fail>none/6s ok>up/6s",
	}, {
		// MISC/UDP/DNS/PING/SMTP probe a failed server once per loop.
		name:     "misc does not retry while down",
		policy:   newRetryPolicy(timing, false, false),
		outcomes: "ok fail fail fail fail fail ok",
		want:     "ok>up/6s fail>none/3s fail>none/3s fail>down/6s fail>none/6s fail>none/6s ok>up/6s",
	}, {
		name:     "retry 0",
		policy:   newRetryPolicy(Timing{DelayLoop: 5 * time.Second, DelayBeforeRetry: time.Second}, false, false),
		outcomes: "ok fail ok",
		want:     "ok>up/5s fail>down/5s ok>up/5s",
	}, {
		// HTTP: one URL per probe a delay loop apart; up after the last.
		name:     "http walks the urls",
		policy:   newHTTPPolicy(timing, false, 2, false),
		outcomes: "ok ok ok ok",
		want:     "u0:ok>none/6s u1:ok>up/6s u0:ok>none/6s u1:ok>none/6s",
	}, {
		// A failing URL is retried (retry+1 failures in all) 3 s apart,
		// then the failed URL is probed every max(3 s, 6 s); once it
		// passes, every URL is checked again before the server is up.
		name:     "http failure and recovery",
		policy:   newHTTPPolicy(timing, false, 2, false),
		outcomes: "ok ok ok fail fail fail fail ok ok ok",
		want:     "u0:ok>none/6s u1:ok>up/6s u0:ok>none/6s u1:fail>none/3s u1:fail>none/3s u1:fail>down/6s u1:fail>none/6s u1:ok>none/6s u0:ok>none/6s u1:ok>up/6s",
	}, {
		// After a failure the failed URL passes, then all are checked
		// again: two passes with a single URL.
		name:     "http first failure is enough",
		policy:   newHTTPPolicy(timing, false, 1, false),
		outcomes: "fail ok ok",
		want:     "u0:fail>down/6s u0:ok>none/6s u0:ok>up/6s",
	}, {
		// fast_recovery checks the URLs of a recovering server back to
		// back.
		name:     "http fast recovery",
		policy:   newHTTPPolicy(timing, true, 3, true),
		outcomes: "ok ok ok ok",
		want:     "u0:ok>none/0s u1:ok>none/0s u2:ok>up/6s u0:ok>none/6s",
	}, {
		name:     "http fast recovery after failure",
		policy:   newHTTPPolicy(Timing{DelayLoop: 6 * time.Second, DelayBeforeRetry: 3 * time.Second}, false, 2, true),
		outcomes: "ok ok fail fail ok ok ok",
		want:     "u0:ok>none/0s u1:ok>up/6s u0:fail>down/6s u0:fail>none/6s u0:ok>none/0s u0:ok>none/0s u1:ok>up/6s",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runPolicy(tc.policy, tc.outcomes); got != tc.want {
				t.Errorf("\ngot  %s\nwant %s", got, tc.want)
			}
		})
	}
}
