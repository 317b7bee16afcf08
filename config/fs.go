package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// maxFileSize bounds what one configuration file may hold, so a stray
// include of a huge (or endless) file cannot exhaust memory.
const maxFileSize = 16 << 20

// fileSystem is where configuration files come from: the OS, or an fs.FS
// for tests and embedded configurations.
type fileSystem interface {
	// readFile reads a regular, non-executable file (keepalived refuses
	// anything else).
	readFile(name string) ([]byte, error)
	glob(pattern string) ([]string, error)
	isDir(name string) bool
	// abs makes name absolute for ${_PWD} and include cycle detection.
	abs(name string) string
}

var errNotRegular = errors.New("not a regular non-executable file")

func checkRegular(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 != 0 {
		return errNotRegular
	}
	if fi.Size() > maxFileSize {
		return fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return nil
}

type osFS struct{}

func (osFS) readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkRegular(fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

func (osFS) glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

func (osFS) isDir(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

func (osFS) abs(name string) string {
	if a, err := filepath.Abs(name); err == nil {
		return a
	}
	return filepath.Clean(name)
}

// ioFS serves files from an fs.FS. Absolute names are taken relative to the
// FS root.
type ioFS struct{ fsys fs.FS }

func (f ioFS) name(n string) string {
	n = path.Clean("/" + filepath.ToSlash(n))
	if n == "/" {
		return "."
	}
	return strings.TrimPrefix(n, "/")
}

func (f ioFS) readFile(name string) ([]byte, error) {
	fi, err := fs.Stat(f.fsys, f.name(name))
	if err != nil {
		return nil, err
	}
	if err := checkRegular(fi); err != nil {
		return nil, err
	}
	return fs.ReadFile(f.fsys, f.name(name))
}

func (f ioFS) glob(pattern string) ([]string, error) {
	matches, err := fs.Glob(f.fsys, f.name(pattern))
	if err != nil {
		return nil, err
	}
	// Keep the caller's spelling: relative stays relative, absolute stays
	// absolute.
	if strings.HasPrefix(pattern, "/") {
		for i, m := range matches {
			matches[i] = "/" + m
		}
	}
	return matches, nil
}

func (f ioFS) isDir(name string) bool {
	fi, err := fs.Stat(f.fsys, f.name(name))
	return err == nil && fi.IsDir()
}

func (f ioFS) abs(name string) string { return "/" + strings.TrimPrefix(f.name(name), ".") }

// maxBraceExpansions bounds csh-style {a,b} expansion of include patterns.
const maxBraceExpansions = 1024

// expandBraces expands csh-style brace alternatives as glob(3) with
// GLOB_BRACE does: "a{b,c{d,e}}f" gives abf, acdf, acef. A backslash
// escapes a brace or comma. Unbalanced braces are left as they are.
func expandBraces(pattern string) []string {
	open := -1
	depth := 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth > 0 {
				continue
			}
			// pattern[open:i+1] is the outermost first group.
			var alts []string
			start := open + 1
			d := 0
			for j := open + 1; j < i; j++ {
				switch pattern[j] {
				case '\\':
					j++
				case '{':
					d++
				case '}':
					d--
				case ',':
					if d == 0 {
						alts = append(alts, pattern[start:j])
						start = j + 1
					}
				}
			}
			alts = append(alts, pattern[start:i])
			var out []string
			for _, alt := range alts {
				for _, rest := range expandBraces(pattern[:open] + alt + pattern[i+1:]) {
					if len(out) >= maxBraceExpansions {
						return out
					}
					out = append(out, rest)
				}
			}
			return out
		}
	}
	return []string{pattern}
}

// globFiles expands pattern (braces, then wildcards) into file names in
// glob(3) order: each alternative's matches sorted, alternatives in order.
// A pattern without wildcards that names no file yields nothing.
func globFiles(fsys fileSystem, pattern string) ([]string, error) {
	var out []string
	for _, p := range expandBraces(pattern) {
		matches, err := fsys.glob(p)
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		out = append(out, matches...)
	}
	return out, nil
}
