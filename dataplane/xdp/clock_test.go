package xdp

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
)

// TestDetectHZ checks the detected tick rate against jiffies counted over
// a measured interval.
func TestDetectHZ(t *testing.T) {
	testnet.RequireRoot(t)
	c, err := newClockProbe()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	hz, err := c.detectHZ()
	if err != nil {
		t.Fatal(err)
	}
	j1, m1, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	var j2, m2 uint64
	testnet.Eventually(t, 5*time.Second, "300 ms of kernel time", func() error {
		if j2, m2, err = c.read(); err != nil {
			t.Fatal(err)
		}
		if time.Duration(m2-m1) < 300*time.Millisecond {
			return fmt.Errorf("only %v passed", time.Duration(m2-m1))
		}
		return nil
	})
	measured := float64(j2-j1) / (float64(m2-m1) / 1e9)
	if math.Abs(measured-float64(hz)) > float64(hz)*0.05+2 {
		t.Errorf("detected HZ %d, but jiffies advanced at %.1f per second", hz, measured)
	}
	t.Logf("HZ %d (measured %.1f)", hz, measured)
	if got := ticks(1500*time.Millisecond, 250); got != 375 {
		t.Errorf("ticks(1.5s, 250) = %d", got)
	}
}
