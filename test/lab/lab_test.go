package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/internal/testnet"
	"github.com/xkeep/xkeep/test/lab/rig"
)

var xkeepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xkeep-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if os.Geteuid() == 0 || testnet.InCI() {
			if xkeepBin, err = rig.BuildXkeep(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// TestDemoStory runs `make demo`'s story as a smoke test: every step must
// happen as it should, within the lab's three minutes.
func TestDemoStory(t *testing.T) {
	testnet.RequireRoot(t)
	var out bytes.Buffer
	start := time.Now()
	err := story(t.Context(), t, options{bin: xkeepBin, out: &out, dataplane: "xdp"})
	t.Logf("the lab's timeline:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 170*time.Second {
		t.Errorf("the story took %v: `make demo` promises under three minutes", took)
	}
	for step := 1; step <= 7; step++ {
		if !strings.Contains(out.String(), fmt.Sprintf("step %d:", step)) {
			t.Errorf("the timeline lacks step %d", step)
		}
	}
}
