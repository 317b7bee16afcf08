package vrrp

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseTrackValue(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1\n": 1, "  -42 trailing": -42, "+7": 7, "": 0, "abc": 0, "-": 0,
		"\t\n 12x": 12, "99999999999999999999999": 1<<63 - 1, "-99999999999999999999999": -1 << 63,
	} {
		if got := parseTrackValue(in); got != want {
			t.Errorf("parseTrackValue(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestLinuxFiles: init_file creates (and with overwrite rewrites) a
// file, Read reads its number, and Watch reports each file once watched,
// then a write in place, a replacement by rename, and a removal.
func TestLinuxFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "maint")
	var files LinuxFiles
	if err := files.Init(path, 5, false); err != nil {
		t.Fatal(err)
	}
	if err := files.Init(path, 6, false); err != nil { // exists: kept
		t.Fatal(err)
	}
	if v, err := files.Read(path); err != nil || v != 5 {
		t.Fatalf("Read = %d, %v; want 5", v, err)
	}
	if err := files.Init(path, 0, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := files.Read(path); v != 0 {
		t.Fatalf("after init_file 0 overwrite: %d", v)
	}
	if _, err := files.Read(filepath.Join(dir, "none")); err == nil {
		t.Fatal("reading a missing file: no error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- files.Watch(ctx, []string{path}, func(p string) { changed <- p }) }()
	wait := func(what string) {
		t.Helper()
		select {
		case p := <-changed:
			if p != path {
				t.Fatalf("%s: changed %q, want %q", what, p, path)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change reported", what)
		}
		for len(changed) > 0 { // one change may be several events
			<-changed
		}
	}
	// Each file is reported once the watch is in place.
	wait("watch in place")
	if err := os.WriteFile(path, []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("write")
	tmp := filepath.Join(dir, ".maint.tmp")
	if err := os.WriteFile(tmp, []byte("4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	wait("rename")
	if v, _ := files.Read(path); v != 4 {
		t.Fatalf("after rename: %d", v)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wait("remove")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
