package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
)

// This file turns configuration files into lines of tokens the way
// keepalived's read_line() does (lib/parser.c): line by line, it removes
// comments, keeps or drops @conditional lines, records $NAME=value
// definitions and substitutes $NAME / ${NAME}, expands ~SEQ and ~LST
// blocks, follows include, and splits lines at '{' and '}' (outside double
// quotes) so that "httpd_check{" and "a { b }" read as separate lines. Every
// byte keeps the column it came from so that tokens carry file:line:col.

// Limits that keep hostile or broken input (and the fuzzer) from hanging the
// reader. keepalived has a 1024-byte line buffer instead.
const (
	maxLineLen        = 64 << 10 // bytes in one line after $NAME expansion
	maxExpansions     = 1000     // $NAME substitutions in one line
	maxIncludeDepth   = 32       // nested include levels
	defaultLineBudget = 4 << 20  // lines produced in one load
	maxExpandedBytes  = 64 << 20 // text written by $NAME expansion in one load
)

// token is a word of a configuration line.
type token struct {
	Text string
	// Quoted is true when the word was written in double quotes, so "{"
	// is a word and not a brace.
	Quoted bool
	Pos    Pos
}

func (t token) is(s string) bool { return !t.Quoted && t.Text == s }

// rline is a line of text being preprocessed. cols[i] is the column text[i]
// came from.
type rline struct {
	file string
	line int
	text []byte
	cols []int
}

func (l rline) pos(i int) Pos {
	switch {
	case i < len(l.cols):
		return Pos{File: l.file, Line: l.line, Col: l.cols[i]}
	case len(l.cols) > 0:
		return Pos{File: l.file, Line: l.line, Col: l.cols[len(l.cols)-1] + 1}
	}
	return Pos{File: l.file, Line: l.line, Col: 1}
}

func (l rline) slice(i, j int) rline {
	return rline{file: l.file, line: l.line, text: l.text[i:j:j], cols: l.cols[i:j:j]}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func (l rline) trimSpace() rline {
	i, j := 0, len(l.text)
	for i < j && isBlank(l.text[i]) {
		i++
	}
	for j > i && isBlank(l.text[j-1]) {
		j--
	}
	return l.slice(i, j)
}

// replace returns l with text[i:j] replaced by s, every new byte placed at
// column col.
func (l rline) replace(i, j int, s string, col int) rline {
	text := make([]byte, 0, len(l.text)-(j-i)+len(s))
	text = append(append(append(text, l.text[:i]...), s...), l.text[j:]...)
	cols := make([]int, 0, len(text))
	cols = append(cols, l.cols[:i]...)
	for range len(s) {
		cols = append(cols, col)
	}
	cols = append(cols, l.cols[j:]...)
	return rline{file: l.file, line: l.line, text: text, cols: cols}
}

// textLine makes an rline of s with every byte at pos (for expansions).
func textLine(s string, pos Pos) rline {
	cols := make([]int, len(s))
	for i := range cols {
		cols[i] = pos.Col
	}
	return rline{file: pos.File, line: pos.Line, text: []byte(s), cols: cols}
}

// definition is a $NAME=value parameter.
type definition struct {
	name string
	// lines holds the value; more than one line only when multiline.
	lines     []string
	multiline bool
	// fn computes the value of a pre-defined definition from its
	// ${NAME params}.
	fn        func(l rline, params []string) string
	maxParams int
}

// source yields lines: a file, the remaining lines of a multiline
// definition, the iterations of a ~SEQ or ~LST line, or the files an
// include matched.
type source interface{}

type fileSource struct {
	name string
	abs  string
	data []byte
	off  int
	line int
}

type linesSource struct {
	lines []rline
}

// seqSource repeats text once per value set, setting vars to the values
// before each repetition.
type seqSource struct {
	vars  []string
	next  func() ([]string, bool)
	text  rline
	count int
}

type includeSource struct {
	names   []string
	checked bool // include[rmwba]: problems are errors
	pos     Pos
	depth   int
}

// lexer reads configuration files into token lines.
type lexer struct {
	fsys    fileSystem
	opts    *LoadOptions
	d       *diagSink
	defs    map[string]*definition
	sources []source
	out     [][]token
	files   []string
	budget  int
	limit   int
	// expanded counts the bytes $NAME expansion has written.
	expanded int
	rnd      *rand.Rand
	// collecting is the multiline definition being read, if any.
	collecting *definition
	stopped    bool
}

func newLexer(fsys fileSystem, opts *LoadOptions, d *diagSink) *lexer {
	lx := &lexer{
		fsys:   fsys,
		opts:   opts,
		d:      d,
		defs:   map[string]*definition{},
		budget: opts.lineBudget,
		rnd:    rand.New(rand.NewPCG(opts.RandomSeed, opts.RandomSeed^0x9e3779b97f4a7c15)),
	}
	if lx.budget <= 0 {
		lx.budget = defaultLineBudget
	}
	lx.limit = lx.budget
	lx.stdDefinitions()
	return lx
}

func (lx *lexer) stdDefinitions() {
	fixed := func(name, value string) {
		lx.defs[name] = &definition{name: name, lines: []string{value}}
	}
	fixed("_HASH", "#")
	fixed("_BANG", "!")
	lx.defs["_PWD"] = &definition{name: "_PWD", fn: func(l rline, _ []string) string {
		return filepath.Dir(lx.fsys.abs(l.file))
	}}
	lx.defs["_INSTANCE"] = &definition{name: "_INSTANCE", fn: func(rline, []string) string {
		return lx.opts.ConfigID
	}}
	lx.defs["_RANDOM"] = &definition{name: "_RANDOM", maxParams: 2, fn: func(_ rline, params []string) string {
		lo, hi := uint64(0), uint64(32767)
		if len(params) > 0 {
			lo, _ = strconv.ParseUint(params[0], 10, 32)
		}
		if len(params) > 1 {
			hi, _ = strconv.ParseUint(params[1], 10, 32)
		}
		if hi < lo {
			lo, hi = hi, lo
		}
		return strconv.FormatUint(lo+lx.rnd.Uint64N(hi-lo+1), 10)
	}}
	lx.defs["_ENV"] = &definition{name: "_ENV", maxParams: 1, fn: func(_ rline, params []string) string {
		if len(params) == 0 {
			return ""
		}
		return lx.opts.getenv(params[0])
	}}
}

// readMain reads the main file and everything it includes.
func (lx *lexer) readMain(name string, data []byte) {
	lx.pushFile(name, data)
	lx.run()
}

func (lx *lexer) pushFile(name string, data []byte) {
	lx.files = append(lx.files, name)
	lx.sources = append(lx.sources, &fileSource{name: name, abs: lx.fsys.abs(name), data: data})
}

func (lx *lexer) run() {
	for len(lx.sources) > 0 && !lx.stopped {
		top := lx.sources[len(lx.sources)-1]
		switch s := top.(type) {
		case *fileSource:
			l, ok := s.nextLine()
			if !ok {
				lx.pop()
				lx.endDefinition()
				continue
			}
			lx.physical(l)
		case *linesSource:
			if len(s.lines) == 0 {
				lx.pop()
				continue
			}
			l := s.lines[0]
			if s.lines = s.lines[1:]; len(s.lines) == 0 {
				lx.pop()
			}
			lx.logical(l)
		case *seqSource:
			vals, ok := s.next()
			if !ok {
				lx.pop()
				continue
			}
			for i, v := range s.vars {
				lx.defs[v] = &definition{name: v, lines: []string{valueAt(vals, i)}}
			}
			lx.logical(s.text)
		case *includeSource:
			if len(s.names) == 0 {
				lx.pop()
				continue
			}
			name := s.names[0]
			s.names = s.names[1:]
			lx.openInclude(s, name)
		}
	}
	lx.endDefinition()
}

// valueAt returns vals[i], or "" for a variable a ~LST set leaves out.
func valueAt(vals []string, i int) string {
	if i < len(vals) {
		return vals[i]
	}
	return ""
}

func (lx *lexer) pop() { lx.sources = lx.sources[:len(lx.sources)-1] }

// spend counts a produced line against the budget.
func (lx *lexer) spend(pos Pos) bool {
	lx.budget--
	if lx.budget < 0 {
		if !lx.stopped {
			lx.d.errorf(pos, "configuration expands to too many lines (more than %d); stopped reading", lx.limit)
		}
		lx.stopped = true
		return false
	}
	return true
}

func (s *fileSource) nextLine() (rline, bool) {
	if s.off >= len(s.data) {
		return rline{}, false
	}
	rest := s.data[s.off:]
	n := bytes.IndexByte(rest, '\n')
	var text []byte
	if n < 0 {
		text = rest
		s.off = len(s.data)
	} else {
		text = rest[:n]
		s.off += n + 1
	}
	s.line++
	for len(text) > 0 && text[len(text)-1] == '\r' {
		text = text[:len(text)-1]
	}
	cols := make([]int, len(text))
	for i := range cols {
		cols[i] = i + 1
	}
	return rline{file: s.name, line: s.line, text: text, cols: cols}, true
}

// physical handles a line read from a file.
func (lx *lexer) physical(l rline) {
	if len(l.text) == 0 {
		// keepalived ends a multiline definition at an empty line, but
		// skips lines that hold only blanks or a comment.
		lx.endDefinition()
		return
	}
	if l = decomment(l); len(l.text) > 0 {
		lx.logical(l)
	}
}

// endDefinition finishes the multiline definition being collected.
func (lx *lexer) endDefinition() {
	if lx.collecting == nil {
		return
	}
	if len(lx.collecting.lines) == 0 {
		lx.collecting.multiline = false
		lx.collecting.lines = []string{""}
	}
	lx.collecting = nil
}

// collect adds a line to the multiline definition being read: lines ending
// in '\' continue it, the first one that does not ends it.
func (lx *lexer) collect(l rline) {
	text := string(l.text)
	cont := strings.HasSuffix(text, `\`)
	if cont {
		text = strings.TrimRight(strings.TrimSuffix(text, `\`), " \t")
	}
	if text != "" {
		lx.collecting.lines = append(lx.collecting.lines, text)
	}
	if !cont {
		lx.endDefinition()
	}
}

// decomment removes leading and trailing blanks and a comment ('!' or '#'
// outside double quotes to the end of the line), and unescapes \# and \!
// outside quotes. A trailing '\' (a multiline definition continues) is kept,
// with the blanks before it removed, even after a comment.
func decomment(l rline) rline {
	l = l.trimSpace()
	text := make([]byte, 0, len(l.text))
	cols := make([]int, 0, len(l.cols))
	quote, comment, cont := false, false, false
	contCol := 0
	for i := 0; i < len(l.text); i++ {
		c := l.text[i]
		switch {
		case c == '\\':
			if i+1 == len(l.text) {
				cont, contCol = true, l.cols[i]
				continue
			}
			if !comment {
				if quote || (l.text[i+1] != '#' && l.text[i+1] != '!') {
					text = append(text, c)
					cols = append(cols, l.cols[i])
				}
				text = append(text, l.text[i+1])
				cols = append(cols, l.cols[i+1])
			}
			i++
			continue
		case comment:
			continue
		case c == '"':
			quote = !quote
		case !quote && (c == '!' || c == '#'):
			comment = true
			continue
		}
		text = append(text, c)
		cols = append(cols, l.cols[i])
	}
	out := rline{file: l.file, line: l.line, text: text, cols: cols}.trimSpace()
	if cont {
		out.text = append(out.text, '\\')
		out.cols = append(out.cols, contCol)
	}
	return out
}

// logical handles a line after comment removal: conditionals, definitions,
// ~SEQ/~LST, substitution, include, and the split at braces.
func (lx *lexer) logical(l rline) {
	if !lx.spend(l.pos(0)) {
		return
	}
	if lx.collecting != nil {
		lx.collect(l)
		return
	}
	for len(l.text) > 0 && !lx.stopped {
		var ok bool
		if l, ok = lx.preprocess(l); !ok {
			return
		}
		if lx.include(l) {
			return
		}
		head, rest := splitBrace(l)
		lx.emit(head)
		l = rest
	}
}

// preprocess applies conditionals, definitions, ~SEQ/~LST and $NAME
// substitution, repeating while substitution produces more to do. It
// returns false when the line is used up.
func (lx *lexer) preprocess(l rline) (rline, bool) {
	for round := 0; ; round++ {
		if round > maxExpansions {
			lx.d.errorf(l.pos(0), "$ definitions keep expanding on this line (does a definition refer to itself?)")
			return l, false
		}
		if len(l.text) == 0 {
			return l, false
		}
		if l.text[0] == '@' {
			var keep bool
			if l, keep = lx.conditional(l); !keep {
				return l, false
			}
		}
		if l.text[0] == '$' && lx.define(l) {
			return l, false
		}
		if bytes.HasPrefix(l.text, []byte("~SEQ")) {
			lx.seq(l)
			return l, false
		}
		if bytes.HasPrefix(l.text, []byte("~LST")) {
			lx.lst(l)
			return l, false
		}
		if l.text[0] == '~' || bytes.IndexByte(l.text, '$') < 0 {
			return l, true
		}
		var changed, ok bool
		if l, changed, ok = lx.substitute(l); !ok {
			return l, false
		}
		if !changed {
			return l, true
		}
		if len(l.text) == 0 || (l.text[0] != '@' && bytes.IndexByte(l.text, '$') < 0) {
			return l, len(l.text) > 0
		}
	}
}

// conditional handles "@id rest" and "@^id rest": rest is kept when the
// config id matches (does not match, for @^). A line with nothing after the
// id is dropped, as keepalived drops it.
func (lx *lexer) conditional(l rline) (rline, bool) {
	ofs, negate := 1, false
	if len(l.text) > 1 && l.text[1] == '^' {
		ofs, negate = 2, true
	}
	end := bytes.IndexAny(l.text[ofs:], " \t")
	if end < 0 {
		return l, false
	}
	id := string(l.text[ofs : ofs+end])
	match := lx.opts.ConfigID != "" && id == lx.opts.ConfigID
	if match == negate {
		return l, false
	}
	rest := l.slice(ofs+end, len(l.text)).trimSpace()
	return rest, len(rest.text) > 0
}

func isNameStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isNameChar(c byte) bool  { return isNameStart(c) || (c >= '0' && c <= '9') }

// define records "$NAME=value" (no blank before '='). A value ending in '\'
// starts a multiline definition.
func (lx *lexer) define(l rline) bool {
	t := l.text
	if len(t) < 2 || !isNameStart(t[1]) {
		return false
	}
	i := 2
	for i < len(t) && isNameChar(t[i]) {
		i++
	}
	if i >= len(t) || t[i] != '=' {
		return false
	}
	name := string(t[1:i])
	value := strings.TrimLeft(string(t[i+1:]), " \t")
	def := &definition{name: name}
	if strings.HasSuffix(value, `\`) {
		value = strings.TrimRight(strings.TrimSuffix(value, `\`), " \t")
		def.multiline = true
		if value != "" {
			def.lines = []string{value}
		}
		lx.collecting = def
	} else {
		def.lines = []string{value}
	}
	lx.defs[name] = def
	return true
}

// ref is a $NAME or ${NAME params} reference in a line.
type ref struct {
	name   string
	params []string
	end    int // index just past the reference
}

// parseRef reads a reference after the '$' at t[i].
func parseRef(t []byte, i int) (ref, bool) {
	j := i + 1
	braces := j < len(t) && t[j] == '{'
	if braces {
		j++
	}
	if j >= len(t) || !isNameStart(t[j]) {
		return ref{}, false
	}
	start := j
	for j < len(t) && isNameChar(t[j]) {
		j++
	}
	r := ref{name: string(t[start:j])}
	if !braces {
		if j < len(t) && t[j] != ' ' && t[j] != '\t' && t[j] != ',' && t[j] != ')' {
			return ref{}, false
		}
		r.end = j
		return r, true
	}
	close := bytes.IndexByte(t[j:], '}')
	if close < 0 {
		return ref{}, false
	}
	inner := string(t[j : j+close])
	if inner != "" {
		if inner[0] != ' ' || strings.HasSuffix(inner, " ") {
			return ref{}, false
		}
		r.params = strings.Fields(inner)
	}
	r.end = j + close + 1
	return r, true
}

// substitute replaces every defined $NAME and ${NAME} in l, rescanning the
// replacement text as keepalived does. A multiline definition is only
// replaced at the end of a line; its further lines are read next.
func (lx *lexer) substitute(l rline) (rline, bool, bool) {
	changed := false
	n := 0
	for i := 0; i < len(l.text); {
		k := bytes.IndexByte(l.text[i:], '$')
		if k < 0 {
			break
		}
		i += k
		r, ok := parseRef(l.text, i)
		def := lx.defs[r.name]
		if !ok || def == nil || (def.multiline && r.end != len(l.text)) ||
			(len(r.params) > 0 && (def.fn == nil || len(r.params) > def.maxParams || (r.name != "_ENV" && !allDigits(r.params)))) {
			i++
			continue
		}
		if n++; n > maxExpansions {
			lx.d.errorf(l.pos(i), "$%s keeps expanding (does a definition refer to itself?)", r.name)
			return l, changed, false
		}
		var value string
		switch {
		case def.fn != nil:
			value = def.fn(l, r.params)
		case len(def.lines) > 0:
			value = def.lines[0]
		}
		pos := l.pos(i)
		if len(l.text)-(r.end-i)+len(value) > maxLineLen {
			lx.d.errorf(pos, "line longer than %d bytes after expanding $%s", maxLineLen, r.name)
			return l, changed, false
		}
		l = l.replace(i, r.end, value, pos.Col)
		changed = true
		if lx.expanded += len(l.text); lx.expanded > maxExpandedBytes {
			lx.d.errorf(pos, "$ definitions expand to more than %d bytes; stopped reading", maxExpandedBytes)
			lx.stopped = true
			return l, changed, false
		}
		if def.multiline && len(def.lines) > 1 {
			more := &linesSource{}
			for _, s := range def.lines[1:] {
				more.lines = append(more.lines, textLine(s, pos))
			}
			lx.sources = append(lx.sources, more)
		}
		if strings.HasPrefix(strings.TrimLeft(value, " \t"), "~") {
			break
		}
	}
	return l, changed, true
}

func allDigits(ss []string) bool {
	for _, s := range ss {
		if _, err := strconv.ParseUint(s, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// maxSeqIterations bounds one ~SEQ or ~LST.
const maxSeqIterations = 1 << 20

// seq reads "~SEQ(var, [start,] [step,] end) text" (~SEQx prints the values
// in hex) and repeats text with $var set to each value.
func (lx *lexer) seq(l rline) {
	t := string(l.text)
	bad := func(why string) {
		lx.d.errorf(l.pos(0), "invalid ~SEQ: %s (want ~SEQ(VAR, START, STEP, END) TEXT)", why)
	}
	p := t[4:]
	hex := strings.HasPrefix(p, "x")
	if hex {
		p = p[1:]
	}
	p = strings.TrimLeft(p, " \t")
	if !strings.HasPrefix(p, "(") {
		bad("missing '('")
		return
	}
	closeAt := strings.IndexByte(p, ')')
	if closeAt < 0 {
		bad("missing ')'")
		return
	}
	inner := p[1:closeAt]
	text := strings.TrimLeft(p[closeAt+1:], " \t")
	parts := strings.Split(inner, ",")
	v := strings.TrimSpace(parts[0])
	if v == "" || len(parts) < 2 || len(parts) > 4 {
		bad("wrong number of parameters")
		return
	}
	var nums []int64
	for _, s := range parts[1:] {
		s = strings.TrimSpace(s)
		if s != "" && s[0] == '$' {
			if r, ok := parseRef([]byte(s), 0); ok && r.end == len(s) {
				if def := lx.defs[r.name]; def != nil && !def.multiline && def.fn == nil && len(def.lines) == 1 {
					s = strings.TrimSpace(def.lines[0])
				}
			}
		}
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			bad(fmt.Sprintf("%q is not a number", s))
			return
		}
		nums = append(nums, n)
	}
	var start, step, end int64
	switch len(nums) {
	case 1:
		end = nums[0]
		start, step = 1, 1
		if end < 0 {
			start = -1
		}
		if end < 1 {
			step = -1
		}
	case 2:
		start, end = nums[0], nums[1]
		step = 1
		if start > end {
			step = -1
		}
	case 3:
		start, step, end = nums[0], nums[1], nums[2]
		if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
			bad("step does not lead from start to end")
			return
		}
	}
	if hex && (start < 0 || end < 0) {
		bad("~SEQx takes positive numbers only")
		return
	}
	if span := (end - start) / step; span >= maxSeqIterations || span < 0 {
		bad(fmt.Sprintf("more than %d iterations", maxSeqIterations))
		return
	}
	cur := start
	next := func() ([]string, bool) {
		if (step > 0 && cur > end) || (step < 0 && cur < end) {
			return nil, false
		}
		val := strconv.FormatInt(cur, 10)
		if hex {
			val = strconv.FormatInt(cur, 16)
		}
		cur += step
		return []string{val}, true
	}
	off := len(t) - len(text)
	lx.sources = append(lx.sources, &seqSource{vars: []string{v}, next: next, text: l.slice(off, len(l.text))})
}

// lst reads "~LST(var, v1, v2, ...) text" or
// "~LST({a, b}, {1, 2}, {3, 4}) text" and repeats text with the variables
// set to each value set in turn.
func (lx *lexer) lst(l rline) {
	t := string(l.text)
	bad := func(why string) {
		lx.d.errorf(l.pos(0), "invalid ~LST: %s (want ~LST(VAR, VALUE, ...) TEXT or ~LST({VAR, ...}, {VALUE, ...}, ...) TEXT)", why)
	}
	p := strings.TrimLeft(t[4:], " \t")
	if !strings.HasPrefix(p, "(") {
		bad("missing '('")
		return
	}
	p = p[1:]
	// Split the top level of the parenthesised list, honouring {...}.
	var items []string
	depth, start, closeAt := 0, 0, -1
	for i := 0; i < len(p) && closeAt < 0; i++ {
		switch p[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				items = append(items, strings.TrimSpace(p[start:i]))
				start = i + 1
			}
		case ')':
			if depth == 0 {
				items = append(items, strings.TrimSpace(p[start:i]))
				closeAt = i
			}
		}
	}
	if closeAt < 0 {
		bad("missing ')'")
		return
	}
	if len(items) < 2 {
		bad("no values")
		return
	}
	unbrace := func(s string) []string {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			s = s[1 : len(s)-1]
		}
		var out []string
		for _, f := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(f))
		}
		return out
	}
	vars := unbrace(items[0])
	for _, v := range vars {
		if v == "" {
			bad("empty variable name")
			return
		}
	}
	var sets [][]string
	for _, it := range items[1:] {
		vals := unbrace(it)
		if len(vals) > len(vars) {
			bad(fmt.Sprintf("%d values for %d variables", len(vals), len(vars)))
			return
		}
		sets = append(sets, vals)
	}
	text := strings.TrimLeft(p[closeAt+1:], " \t")
	off := len(t) - len(text)
	i := 0
	next := func() ([]string, bool) {
		if i >= len(sets) {
			return nil, false
		}
		i++
		return sets[i-1], true
	}
	lx.sources = append(lx.sources, &seqSource{vars: vars, next: next, text: l.slice(off, len(l.text))})
}

// include handles "include PATTERN" and the include[rmwba] variants. The
// pattern is the rest of the line, relative to the including file's
// directory.
func (lx *lexer) include(l rline) bool {
	t := l.text
	if !bytes.HasPrefix(t, []byte("include")) || len(t) < 9 {
		return false
	}
	checked := false
	switch {
	case isBlank(t[7]):
	case bytes.IndexByte([]byte("rmwba"), t[7]) >= 0 && isBlank(t[8]):
		checked = true
	default:
		return false
	}
	rest := l.slice(8, len(l.text)).trimSpace()
	pattern := string(rest.text)
	pos := rest.pos(0)
	if pattern == "" {
		lx.d.errorf(l.pos(0), "include needs a file name or pattern")
		return true
	}
	depth := 0
	for _, s := range lx.sources {
		if _, ok := s.(*fileSource); ok {
			depth++
		}
	}
	if depth > maxIncludeDepth {
		lx.d.errorf(pos, "includes nested more than %d deep (does a file include itself?)", maxIncludeDepth)
		return true
	}
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(l.file), pattern)
	}
	names, err := globFiles(lx.fsys, pattern)
	if err != nil {
		lx.d.errorf(pos, "include %s: %v", string(rest.text), err)
		return true
	}
	if len(names) == 0 {
		lx.includeProblem(checked, pos, "include %s: no file matches %s", string(rest.text), pattern)
		return true
	}
	lx.sources = append(lx.sources, &includeSource{names: names, checked: checked, pos: pos})
	return true
}

func (lx *lexer) includeProblem(checked bool, pos Pos, format string, args ...any) {
	if checked {
		lx.d.errorf(pos, format, args...)
	} else {
		lx.d.warnf(pos, format, args...)
	}
}

func (lx *lexer) openInclude(s *includeSource, name string) {
	if lx.fsys.isDir(name) {
		lx.includeProblem(s.checked, s.pos, "include: skipping %s: a directory", name)
		return
	}
	abs := lx.fsys.abs(name)
	for _, src := range lx.sources {
		if f, ok := src.(*fileSource); ok && f.abs == abs {
			lx.d.errorf(s.pos, "include cycle: %s includes itself", name)
			return
		}
	}
	data, err := lx.fsys.readFile(name)
	if err != nil {
		lx.includeProblem(s.checked, s.pos, "include: skipping %s: %v", name, err)
		return
	}
	lx.pushFile(name, data)
}

// splitBrace splits l before the first '{' or '}' outside double quotes; a
// line starting with a brace splits after it. rest is what follows.
func splitBrace(l rline) (head, rest rline) {
	t := l.text
	at := -1
	if t[0] == '{' || t[0] == '}' {
		at = 0
	} else {
		quote := false
		for i, c := range t {
			if c == '"' {
				quote = !quote
			} else if !quote && (c == '{' || c == '}') {
				at = i
				break
			}
		}
	}
	switch {
	case at < 0:
		return l, rline{}
	case at == 0:
		return l.slice(0, 1), l.slice(1, len(t)).trimSpace()
	}
	return l.slice(0, at).trimSpace(), l.slice(at, len(t))
}

// emit splits a line into tokens: blank-separated words, or double-quoted
// strings (quotes removed, no escapes).
func (lx *lexer) emit(l rline) {
	t := l.text
	var toks []token
	for i := 0; i < len(t); {
		if isSpace(t[i]) {
			i++
			continue
		}
		if t[i] == '"' {
			end := bytes.IndexByte(t[i+1:], '"')
			if end < 0 {
				lx.d.errorf(l.pos(i), "unterminated quoted string (add the closing \")")
				toks = append(toks, token{Text: string(t[i+1:]), Quoted: true, Pos: l.pos(i)})
				break
			}
			toks = append(toks, token{Text: string(t[i+1 : i+1+end]), Quoted: true, Pos: l.pos(i)})
			i += end + 2
			continue
		}
		j := i
		for j < len(t) && !isSpace(t[j]) && t[j] != '"' {
			j++
		}
		toks = append(toks, token{Text: string(t[i:j]), Pos: l.pos(i)})
		i = j
	}
	if len(toks) == 0 {
		return
	}
	lx.out = append(lx.out, toks)
}
