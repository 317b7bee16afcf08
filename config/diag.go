package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by the error Load and Parse return when the
// configuration has errors (as opposed to a file that cannot be read).
var ErrInvalid = errors.New("invalid configuration")

// Pos is a place in a configuration file. Line and Col count from 1; Col
// counts bytes, as Go's own tools do. Text that came from a $NAME expansion
// is placed where the $NAME was written.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// IsValid reports whether p refers to a place in a file.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	if !p.IsValid() {
		if p.File != "" {
			return p.File
		}
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Severity tells errors from warnings.
type Severity int

const (
	// Warning is something keepalived would also accept (possibly with a
	// warning of its own) or something xkeep recognises and ignores. The
	// configuration still loads. LoadOptions.Strict turns warnings into
	// errors.
	Warning Severity = iota + 1
	// Error makes the configuration invalid.
	Error
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("severity-%d", int(s))
}

// MarshalText makes Severity print as "warning" or "error" in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one error or warning about the configuration.
type Diagnostic struct {
	Pos      Pos      `json:"pos"`
	Severity Severity `json:"severity"`
	// Msg says what is wrong and, where it helps, what is accepted, in
	// lowercase without the position: `unknown lb_algo "wrrr" (want rr, ...)`.
	Msg string `json:"msg"`
	// Unsupported marks a keyword xkeep recognises but does not implement.
	Unsupported bool `json:"unsupported,omitempty"`
}

// String formats d as "file:line:col: msg", with "warning: " before the
// message of a warning.
func (d Diagnostic) String() string {
	if d.Severity == Warning {
		return d.Pos.String() + ": warning: " + d.Msg
	}
	return d.Pos.String() + ": " + d.Msg
}

// Diagnostics are the errors and warnings of one load, in file order.
type Diagnostics []Diagnostic

// Errors returns the diagnostics that are errors.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(Error) }

// Warnings returns the diagnostics that are warnings.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(Warning) }

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity == Error })
}

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Err returns nil when there are no errors, otherwise an error that wraps
// ErrInvalid and lists every error, one per line.
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	return &LoadError{Diagnostics: errs}
}

// LoadError is the error for a configuration with errors. Its message lists
// every error as "file:line:col: msg", one per line.
type LoadError struct {
	Diagnostics Diagnostics
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *LoadError) Unwrap() error { return ErrInvalid }

// diagSink collects diagnostics while loading.
type diagSink struct {
	list Diagnostics
	// files orders diagnostics by the order files were first read.
	files map[string]int
}

func (s *diagSink) add(sev Severity, unsupported bool, pos Pos, format string, args ...any) {
	s.list = append(s.list, Diagnostic{Pos: pos, Severity: sev, Msg: fmt.Sprintf(format, args...), Unsupported: unsupported})
}

func (s *diagSink) errorf(pos Pos, format string, args ...any) {
	s.add(Error, false, pos, format, args...)
}

func (s *diagSink) warnf(pos Pos, format string, args ...any) {
	s.add(Warning, false, pos, format, args...)
}

// unsupportedf warns about a keyword xkeep recognises but does not
// implement; the message should name what to use instead.
func (s *diagSink) unsupportedf(pos Pos, format string, args ...any) {
	s.add(Warning, true, pos, format, args...)
}

func (s *diagSink) fileIndex(name string) int {
	if i, ok := s.files[name]; ok {
		return i
	}
	return len(s.files)
}

// sorted returns the diagnostics in file, line, column order; diagnostics at
// the same place keep the order they were found in.
func (s *diagSink) sorted() Diagnostics {
	out := slices.Clone(s.list)
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(s.fileIndex(a.Pos.File), s.fileIndex(b.Pos.File)),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
		)
	})
	return out
}
