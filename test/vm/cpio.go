package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks as
// an initramfs. Parent directories are created on demand, so entries can be
// added in any order.
type cpioWriter struct {
	w    *bufio.Writer
	off  int64
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), dirs: map[string]bool{".": true, "/": true}}
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// Dir adds a directory (and its parents).
func (c *cpioWriter) Dir(name string, perm uint32) {
	name = clean(name)
	if c.dirs[name] {
		return
	}
	c.Dir(path.Dir(name), 0o755)
	c.dirs[name] = true
	c.header(name, modeDir|perm, 0, 0, 0)
}

// File adds a regular file with the given content.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	name = clean(name)
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeFile|perm, int64(len(data)), 0, 0)
	c.write(data)
	c.pad()
}

// CopyFile adds the host file src as name, keeping its permission bits.
func (c *cpioWriter) CopyFile(name, src string) {
	if c.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		c.err = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.err = err
		return
	}
	name = clean(name)
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeFile|uint32(st.Mode().Perm()), st.Size(), 0, 0)
	if c.err != nil {
		return
	}
	n, err := io.Copy(c.w, f)
	c.off += n
	if err == nil && n != st.Size() {
		err = fmt.Errorf("%s changed size while being archived", src)
	}
	if err != nil {
		c.err = err
		return
	}
	c.pad()
}

// Symlink adds a symbolic link.
func (c *cpioWriter) Symlink(name, target string) {
	name = clean(name)
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeSymlink|0o777, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad()
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	name = clean(name)
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeCharDev|perm, 0, major, minor)
}

// Close writes the trailer and flushes; it returns the first error met.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rmajor, rminor uint32) {
	if c.err != nil {
		return
	}
	if size > 0xffffffff {
		c.err = fmt.Errorf("%s: too large for cpio (%d bytes)", name, size)
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if rem := c.off % 4; rem != 0 {
		c.write(make([]byte, 4-rem))
	}
}

// clean makes an archive path: relative, slash-separated, no "./".
func clean(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		return "."
	}
	return name
}
