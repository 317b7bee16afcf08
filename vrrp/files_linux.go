package vrrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LinuxFiles is the FileWatcher on the real file system. It watches the
// directories holding the files with inotify, as keepalived does, so a
// file replaced by a rename (how editors and `mv` write) is seen too.
type LinuxFiles struct{}

// maxTrackFileBytes bounds how much of a track file is read: a number.
const maxTrackFileBytes = 128

func (LinuxFiles) Read(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, maxTrackFileBytes)
	n, err := f.Read(buf)
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return parseTrackValue(string(buf[:n])), nil
}

// parseTrackValue reads a number as strtol does: blanks, a sign, digits;
// anything after is ignored and no digits is 0. A value past 64 bits is
// the nearest 64-bit one.
func parseTrackValue(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	digits := end
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == digits {
		return 0
	}
	v, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		if s[0] == '-' {
			return -1 << 63
		}
		return 1<<63 - 1
	}
	return v
}

func (LinuxFiles) Init(path string, value int64, overwrite bool) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.WriteFile(path, []byte(strconv.FormatInt(value, 10)+"\n"), 0o644)
}

func (LinuxFiles) Watch(ctx context.Context, paths []string, changed func(path string)) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	// The file goes to Go's poller, so the read below parks the
	// goroutine and closing the file ends it.
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()

	byDir := map[int]map[string][]string{} // watch → base name → paths
	for _, p := range paths {
		dir, base := filepath.Split(filepath.Clean(p))
		if dir == "" {
			dir = "."
		}
		wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_CREATE|unix.IN_DELETE|unix.IN_ATTRIB)
		if err != nil {
			return fmt.Errorf("watch %s for track_file %s: %w", dir, p, err)
		}
		if byDir[wd] == nil {
			byDir[wd] = map[string][]string{}
		}
		byDir[wd][base] = append(byDir[wd][base], p)
	}
	// Once watched, every file counts as changed: a change between the
	// caller's last read and the watch is not lost.
	for _, p := range paths {
		changed(p)
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read inotify events: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameStart := off + unix.SizeofInotifyEvent
			nameEnd := min(nameStart+int(ev.Len), n)
			name := strings.TrimRight(string(buf[nameStart:nameEnd]), "\x00")
			off = nameEnd
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				// Events were lost: every file may have changed.
				for _, names := range byDir {
					for _, ps := range names {
						for _, p := range ps {
							changed(p)
						}
					}
				}
				continue
			}
			for _, p := range byDir[int(ev.Wd)][name] {
				changed(p)
			}
		}
	}
}
