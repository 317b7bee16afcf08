package config

import "strings"

// node is a configuration line: a keyword, its arguments, and the block
// that followed it, if any. The tree is syntax only; build.go gives it
// meaning. keepalived's process_stream() reads the same shape: a '{' line
// directly after a keyword line opens that keyword's block.
type node struct {
	kw       token
	args     []token
	block    []*node
	hasBlock bool
	open     Pos // position of the block's '{'
}

func (n *node) name() string { return n.kw.Text }

// argText joins the arguments as written (for messages).
func (n *node) argText() string {
	parts := make([]string, len(n.args))
	for i, a := range n.args {
		parts[i] = a.Text
	}
	return strings.Join(parts, " ")
}

// words returns the keyword and the arguments: a line of a value block such
// as virtual_ipaddress is all words.
func (n *node) words() []token { return append([]token{n.kw}, n.args...) }

// parseTree builds the block tree from token lines.
func parseTree(lines [][]token, d *diagSink) []*node {
	root := &node{hasBlock: true}
	stack := []*node{root}
	var last *node // keyword node on the line just before
	for _, ln := range lines {
		top := stack[len(stack)-1]
		first := ln[0]
		switch {
		case first.is("{"):
			if last == nil || last.hasBlock {
				d.errorf(first.Pos, "unexpected '{' (a block must follow its keyword, as in \"vrrp_instance VI_1 {\")")
				// Read the block so its '}' balances, then drop it.
				last = &node{kw: first}
			}
			last.hasBlock = true
			last.open = first.Pos
			stack = append(stack, last)
			last = nil
		case first.is("}"):
			if len(stack) == 1 {
				d.errorf(first.Pos, "unexpected '}' (no block is open)")
			} else {
				stack = stack[:len(stack)-1]
			}
			last = nil
		default:
			n := &node{kw: first, args: ln[1:]}
			top.block = append(top.block, n)
			last = n
		}
	}
	for _, n := range stack[1:] {
		d.errorf(n.open, "block %q is not closed (missing '}')", n.kw.Text)
	}
	return root.block
}
