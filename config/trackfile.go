package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// trackFileEntry is a line of an instance's track_file block, kept until
// every track_file is read and its defaults are known.
type trackFileEntry struct {
	ref TrackFileRef
	// weightSet and reverseSet tell what the line wrote from what it takes
	// from the track_file block.
	weightSet, reverseSet bool
	// definedBefore records that the track_file block came before the
	// instance: keepalived looks the name up while reading the instance.
	definedBefore bool
}

// trackFile reads a top-level track_file block, or its deprecated synonym
// vrrp_track_file.
func (b *builder) trackFile(n *node) {
	name, ok := b.blockName(n)
	if !ok || !b.needBlock(n) {
		return
	}
	if n.name() == "vrrp_track_file" {
		b.d.warnf(n.kw.Pos, "vrrp_track_file is deprecated (use track_file)")
	}
	if prev := b.trackFiles[name]; prev != nil {
		b.d.errorf(n.args[0].Pos, "%s %q is already defined at %s", n.name(), name, prev.Pos)
		return
	}
	f := &TrackFile{Name: name, Weight: 1, Pos: n.kw.Pos}
	var filePos Pos // where file was set, to report a second one
	fileWritten := false
	for _, c := range n.block {
		switch c.name() {
		case "file":
			fileWritten = true
			t, ok := b.value(c, "a file path")
			if !ok {
				continue
			}
			if t.Text == "" {
				b.invalid(c, t, "a file path")
				continue
			}
			if filePos.IsValid() {
				b.d.warnf(c.kw.Pos, "file already set at %s (this one is ignored, as keepalived ignores it)", filePos)
				continue
			}
			f.Path, filePos = t.Text, c.kw.Pos
		case "weight":
			b.noBlock(c)
			if w, rev, ok := b.weightArgs(c, c.args, -math.MaxInt32, math.MaxInt32); ok {
				f.Weight, f.Reverse = w, rev
			}
		case "init_file":
			b.initFile(c, f)
		default:
			b.other(c, "in "+n.name(), nil)
		}
	}
	if f.Path == "" && !fileWritten {
		// An invalid file line was reported where it was written.
		b.d.errorf(n.kw.Pos, "%s %q has no file (keepalived drops it; add file \"/path/to/file\")", n.name(), name)
	}
	// Kept even without a file, so instances naming it are not reported
	// again as tracking an undefined track_file.
	b.trackFiles[name] = f
	b.cfg.TrackFiles = append(b.cfg.TrackFiles, f)
}

// initFile reads "init_file [VALUE] [overwrite]". Each line starts afresh,
// as in keepalived: the last one counts.
func (b *builder) initFile(n *node, f *TrackFile) {
	b.noBlock(n)
	f.InitFile, f.InitValue, f.InitOverwrite = true, 0, false
	var valuePos Pos
	for _, t := range n.args {
		switch {
		case t.Text == "overwrite":
			f.InitOverwrite = true
		case t.Text != "" && (t.Text[0] == '-' || (t.Text[0] >= '0' && t.Text[0] <= '9')):
			// keepalived writes the value with %d: an int.
			v, err := strconv.ParseInt(t.Text, 10, 32)
			if err != nil {
				b.d.errorf(t.Pos, "invalid init_file value %q (want an integer from %d to %d)", t.Text, math.MinInt32, math.MaxInt32)
				continue
			}
			if valuePos.IsValid() {
				b.d.warnf(t.Pos, "init_file has a value already, at %s (the last one is used, as keepalived uses it)", valuePos)
			}
			f.InitValue, valuePos = v, t.Pos
		default:
			b.d.errorf(t.Pos, "unknown init_file option %q (want init_file [VALUE] [overwrite])", t.Text)
		}
	}
}

// trackFileEntries reads the lines of a vrrp_instance's or
// vrrp_sync_group's track_file block: "NAME [weight N
// [reverse|noreverse]]". owner names it in messages ("vrrp_instance
// VI_1"); key is the instance or group, for trackFileLines.
func (b *builder) trackFileEntries(n *node, owner string, key any) {
	b.extra(n, 0)
	if !b.needBlock(n) {
		return
	}
	for _, c := range n.block {
		b.noBlock(c)
		e := trackFileEntry{
			ref:           TrackFileRef{Name: c.kw.Text, Pos: c.kw.Pos},
			definedBefore: b.trackFiles[c.kw.Text] != nil,
		}
		if len(c.args) > 0 {
			if c.args[0].Text != "weight" {
				b.d.errorf(c.args[0].Pos, "unexpected %q after track_file %s (want NAME [weight N [reverse|noreverse]])", c.args[0].Text, e.ref.Name)
				continue
			}
			w, rev, ok := b.weightArgs(c, c.args[1:], -254, 254)
			if !ok {
				continue
			}
			e.ref.Weight, e.ref.Reverse, e.weightSet = w, rev, true
			// weightArgs reads the run of reverse/noreverse words that
			// starts right after the value; without one the track_file's
			// direction stays.
			e.reverseSet = len(c.args) > 2 && (c.args[2].Text == "reverse" || c.args[2].Text == "noreverse")
		}
		if prev := b.trackFileEntryAt(key, e.ref.Name); prev.IsValid() {
			b.d.warnf(e.ref.Pos, "%s: track_file %s is already tracked at %s (this one is ignored, as keepalived ignores it)", owner, e.ref.Name, prev)
			continue
		}
		b.trackFileLines[key] = append(b.trackFileLines[key], e)
	}
}

// trackFileEntryAt returns where the instance or group already tracks
// the named track_file, or an invalid Pos.
func (b *builder) trackFileEntryAt(key any, name string) Pos {
	for _, e := range b.trackFileLines[key] {
		if e.ref.Name == name {
			return e.ref.Pos
		}
	}
	return Pos{}
}

// resolveTrackFiles checks that the tracked files of an instance or group
// exist and returns them, each with the track_file's weight and direction
// unless its line wrote its own.
func (b *builder) resolveTrackFiles(owner string, key any) []TrackFileRef {
	var out []TrackFileRef
	for _, e := range b.trackFileLines[key] {
		f := b.trackFiles[e.ref.Name]
		if f == nil {
			b.d.errorf(e.ref.Pos, "%s: track_file %q is not a defined track_file%s", owner, e.ref.Name, b.trackFileNames())
			continue
		}
		if !e.definedBefore {
			b.d.warnf(e.ref.Pos, "%s: track_file %q is defined after it, at %s (keepalived ignores it there, xkeep does not; move the track_file block above)", owner, e.ref.Name, f.Pos)
		}
		ref := e.ref
		if !e.weightSet {
			ref.Weight = f.Weight
		}
		if !e.reverseSet {
			ref.Reverse = f.Reverse
		}
		out = append(out, ref)
	}
	return out
}

func (b *builder) trackFileNames() string {
	names := make([]string, len(b.cfg.TrackFiles))
	for i, f := range b.cfg.TrackFiles {
		names[i] = f.Name
	}
	return definedNames(names)
}

// definedNames ends an "is not defined" message with the names that are.
func definedNames(names []string) string {
	if len(names) == 0 {
		return " (none is defined)"
	}
	return fmt.Sprintf(" (defined: %s)", strings.Join(names, ", "))
}
