// Package config reads keepalived.conf files as keepalived reads them and
// resolves them into a typed model (Config) with keepalived's defaults
// filled in.
//
// The reader follows keepalived's own parser (lib/parser.c): blocks and
// words, double-quoted strings, '!' and '#' comments anywhere on a line,
// braces glued to words ("httpd_check{"), include with globs relative to
// the including file, @id / @^id conditional lines, $NAME=value definitions
// (multiline too) with $NAME and ${NAME} substitution, ~SEQ and ~LST.
//
// Problems come back as Diagnostics, each with its file:line:col. Errors make
// the configuration invalid; warnings (unknown keywords, keywords xkeep
// recognises but does not implement, values keepalived would adjust) do
// not, unless LoadOptions.Strict is set.
//
//	cfg, diags, err := config.Load("/etc/keepalived/keepalived.conf", config.LoadOptions{})
//	for _, d := range diags {
//		log.Print(d) // "keepalived.conf:12:5: unknown lb_algo ..."
//	}
//	if err != nil { ... } // errors.Is(err, config.ErrInvalid) when diags has errors
package config

import (
	"fmt"
	"io/fs"
	"os"
)

// Dataplane names the packet forwarder the configuration will run on; it
// decides which virtual server features are supported.
type Dataplane string

const (
	// DataplaneXDP forwards by MAC rewrite (DR) with rr, wrr, lc, wlc, sh
	// and mh. It is the default.
	DataplaneXDP Dataplane = "xdp"
	// DataplaneIPVS is the kernel's IPVS: every lb_kind and lb_algo.
	DataplaneIPVS Dataplane = "ipvs"
)

// LoadOptions control how a configuration is read.
type LoadOptions struct {
	// ConfigID is matched against @id conditional lines (keepalived's
	// -i/--config-id; keepalived defaults it to the host name up to the
	// first dot, which the caller should pass). Empty matches no @id line
	// and every @^id line.
	ConfigID string
	// Strict turns every warning into an error.
	Strict bool
	// Dataplane selects which virtual server features are supported
	// (default DataplaneXDP). Features only the other dataplane has are
	// warnings that name it.
	Dataplane Dataplane
	// FS, when set, is where the main file and includes are read from
	// (absolute names are taken from its root); nil reads the OS.
	FS fs.FS
	// Getenv serves ${_ENV NAME}; nil uses os.Getenv.
	Getenv func(string) string
	// RandomSeed seeds ${_RANDOM}, so one configuration always reads the
	// same way.
	RandomSeed uint64

	// lineBudget bounds the lines one load may produce (tests lower it).
	lineBudget int
}

func (o *LoadOptions) getenv(name string) string {
	if o.Getenv != nil {
		return o.Getenv(name)
	}
	return os.Getenv(name)
}

func (o *LoadOptions) dataplane() Dataplane {
	if o.Dataplane == "" {
		return DataplaneXDP
	}
	return o.Dataplane
}

func (o *LoadOptions) fileSystem() fileSystem {
	if o.FS != nil {
		return ioFS{o.FS}
	}
	return osFS{}
}

// Load reads the configuration file at path and everything it includes.
//
// The error is non-nil when the file cannot be read, or when the
// configuration has errors: then it wraps ErrInvalid and lists them. The
// Diagnostics hold every error and warning in file order either way; the
// Config is filled as far as it could be, for display, and must not be run
// when err is non-nil.
func Load(path string, opts LoadOptions) (*Config, Diagnostics, error) {
	data, err := opts.fileSystem().readFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return load(path, data, opts)
}

// Parse reads a configuration from memory as if it were the file name
// (includes are resolved relative to name's directory). It returns what
// Load returns.
func Parse(name string, src []byte, opts LoadOptions) (*Config, Diagnostics, error) {
	return load(name, src, opts)
}

func load(name string, src []byte, opts LoadOptions) (*Config, Diagnostics, error) {
	if opts.Dataplane != "" && opts.Dataplane != DataplaneXDP && opts.Dataplane != DataplaneIPVS {
		return nil, nil, fmt.Errorf("unknown dataplane %q (want xdp or ipvs)", opts.Dataplane)
	}
	d := &diagSink{files: map[string]int{}}
	lx := newLexer(opts.fileSystem(), &opts, d)
	lx.readMain(name, src)
	for i, f := range lx.files {
		if _, ok := d.files[f]; !ok {
			d.files[f] = i
		}
	}
	tree := parseTree(lx.out, d)
	b := newBuilder(&opts, d)
	cfg := b.build(tree)
	cfg.Files = lx.files

	diags := d.sorted()
	if opts.Strict {
		for i := range diags {
			diags[i].Severity = Error
		}
	}
	return cfg, diags, diags.Err()
}
