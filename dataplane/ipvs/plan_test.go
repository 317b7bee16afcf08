package ipvs

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/dataplane"
)

// kernelOf is the kernel state after a plan ran: what plan's input for the
// next Apply would be.
func kernelOf(t *testing.T, svcs ...dataplane.Service) map[svcID]kService {
	t.Helper()
	m := map[svcID]kService{}
	for _, s := range svcs {
		ds, err := translate(s)
		if err != nil {
			t.Fatal(err)
		}
		m[ds.kernel.id] = ds.kernel
	}
	return m
}

func ids(m map[svcID]kService) map[svcID]bool {
	o := map[svcID]bool{}
	for id := range m {
		o[id] = true
	}
	return o
}

func render(ops []op) string {
	var b strings.Builder
	for _, o := range ops {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestPlan(t *testing.T) {
	base := httpService()
	dns := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: vip, Port: 53, Protocol: dataplane.UDP}, Scheduler: "rr",
		Forward: dataplane.DirectRouting, Backends: []dataplane.Backend{backend(rs1, 53, 1, dataplane.BackendUp)},
	}
	foreign := dataplane.Service{
		Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("203.0.113.5"), Port: 80, Protocol: dataplane.TCP}, Scheduler: "rr",
		Forward: dataplane.NAT, Backends: []dataplane.Backend{backend(rs2, 8080, 1, dataplane.BackendUp)},
	}
	with := func(edit func(*dataplane.Service)) dataplane.Service {
		s := httpService()
		s.Backends = append([]dataplane.Backend(nil), s.Backends...)
		edit(&s)
		return s
	}

	tests := []struct {
		name    string
		current map[svcID]kService
		owned   map[svcID]bool
		want    map[svcID]kService
		ops     string
	}{
		{
			name: "empty kernel",
			want: kernelOf(t, base),
			ops: `add service TCP 192.0.2.10:80 sched=wrr
add backend 198.51.100.1:80 to TCP 192.0.2.10:80 weight=3 fwd=DR
add backend 198.51.100.2:80 to TCP 192.0.2.10:80 weight=1 fwd=DR
`,
		},
		{
			name:    "already there: nothing to do",
			current: kernelOf(t, base, dns),
			owned:   ids(kernelOf(t, base, dns)),
			want:    kernelOf(t, base, dns),
			ops:     "",
		},
		{
			name:    "draining sets weight 0, down removes",
			current: kernelOf(t, base),
			owned:   ids(kernelOf(t, base)),
			want: kernelOf(t, with(func(s *dataplane.Service) {
				s.Backends[0].State = dataplane.BackendDraining
				s.Backends[1].State = dataplane.BackendDown
			})),
			ops: `remove backend 198.51.100.2:80 from TCP 192.0.2.10:80
update backend 198.51.100.1:80 of TCP 192.0.2.10:80 weight=0 fwd=DR
`,
		},
		{
			name:    "scheduler, persistence and a forward method change in place",
			current: kernelOf(t, base),
			owned:   ids(kernelOf(t, base)),
			want: kernelOf(t, with(func(s *dataplane.Service) {
				s.Scheduler = "sh"
				s.Persistence = time.Minute
				s.Backends[1].Forward = dataplane.Tunnel
			})),
			ops: `update service TCP 192.0.2.10:80 sched=sh flags=0x1 persistent=60s netmask=/32
update backend 198.51.100.2:80 of TCP 192.0.2.10:80 weight=1 fwd=TUN
`,
		},
		{
			name:    "owned services leave, foreign ones stay",
			current: kernelOf(t, base, dns, foreign),
			owned:   ids(kernelOf(t, base, dns)),
			want:    kernelOf(t, dns),
			ops:     "remove service TCP 192.0.2.10:80\n",
		},
		{
			name:    "a foreign service the desired state names is adopted",
			current: kernelOf(t, foreign),
			want: kernelOf(t, func() dataplane.Service {
				s := foreign
				s.Scheduler = "wlc"
				return s
			}()),
			ops: "update service TCP 203.0.113.5:80 sched=wlc\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(plan(tt.current, tt.want, tt.owned))
			if got != tt.ops {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tt.ops)
			}
		})
	}
}
