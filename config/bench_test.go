package config

import (
	"os"
	"testing"
)

// bigConfig is keepalived.conf(5)'s ~SEQ example: 8 x 32 x 254 = 65024
// vrrp_instances from one multiline definition.
const bigConfig = `$VI4= \
vrrp_instance vrrp4.${IF}.${NUM}.${ID} { \
    interface bond${IF}.${NUM} \
    virtual_router_id ${ID} \
    priority 130 \
    virtual_ipaddress { \
        10.${IF}.${NUM}.${ID}/24 \
    } \
}

~SEQ(IF,0,7) ~SEQ(NUM,0,31) ~SEQ(ID,1,254) $VI4
`

func BenchmarkParse(b *testing.B) {
	seed, err := os.ReadFile("testdata/seed/master.conf")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name      string
		src       []byte
		instances int
	}{
		{"seed", seed, 1},
		{"seq-65024-instances", []byte(bigConfig), 65024},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.src)))
			for b.Loop() {
				cfg, _, err := Parse("bench.conf", bc.src, LoadOptions{})
				if err != nil || len(cfg.Instances) != bc.instances {
					b.Fatalf("err %v, %d instances", err, len(cfg.Instances))
				}
			}
		})
	}
}
