package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// kernelPackage matches Debian's unsigned 6.1 cloud kernels; the number is
// the ABI, which grows with every upload.
var kernelPackage = regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-amd64-unsigned$`)

// debPackage is a Debian binary package resolved to a version.
type debPackage struct {
	Name    string
	Version string
}

// dir is the package's directory name in the cache.
func (p debPackage) dir() string {
	return p.Name + "_" + strings.NewReplacer(":", "%3a", "/", "_").Replace(p.Version)
}

// newestKernel asks apt-cache for the 6.1 cloud kernel packages it knows and
// returns the one with the highest ABI number that has a candidate version.
func newestKernel(ctx context.Context) (debPackage, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "pkgnames", "linux-image-6.1.0-").Output()
	if err != nil {
		return debPackage{}, fmt.Errorf("apt-cache pkgnames: %w", err)
	}
	type cand struct {
		name string
		abi  int
	}
	var names []cand
	for _, name := range strings.Fields(string(out)) {
		if m := kernelPackage.FindStringSubmatch(name); m != nil {
			abi, _ := strconv.Atoi(m[1])
			names = append(names, cand{name, abi})
		}
	}
	sort.Slice(names, func(i, j int) bool { return names[i].abi > names[j].abi })
	for _, c := range names {
		v, err := candidateVersion(ctx, c.name)
		if err != nil {
			return debPackage{}, err
		}
		if v != "" {
			return debPackage{Name: c.name, Version: v}, nil
		}
	}
	return debPackage{}, fmt.Errorf("apt-cache knows no linux-image-6.1.0-*-cloud-amd64-unsigned with a candidate version: run apt-get update (bookworm and bookworm-security must be in the sources)")
}

// candidateVersion is the version apt-get would install, or "" for none.
func candidateVersion(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "policy", name).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache policy %s: %w", name, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Candidate:"); ok {
			v = strings.TrimSpace(v)
			if v == "(none)" {
				return "", nil
			}
			return v, nil
		}
	}
	return "", nil
}

// fetchPackage downloads p with apt-get into cache/debs (once) and unpacks
// it into cache/<p.dir()> (once), returning the unpacked root.
func fetchPackage(ctx context.Context, cache string, p debPackage, logf func(string, ...any)) (string, error) {
	root := filepath.Join(cache, "pkg", p.dir())
	stamp := filepath.Join(root, ".unpacked")
	if _, err := os.Stat(stamp); err == nil {
		return root, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	deb, err := findDeb(debs, p)
	if err != nil {
		return "", err
	}
	if deb == "" {
		logf("downloading %s %s", p.Name, p.Version)
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q",
			// As root, apt drops to _apt, which cannot write into the cache.
			"-o", "APT::Sandbox::User=root", p.Name+"="+p.Version)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get download %s=%s: %w\n%s", p.Name, p.Version, err, out)
		}
		if deb, err = findDeb(debs, p); err != nil {
			return "", err
		}
		if deb == "" {
			return "", fmt.Errorf("apt-get download %s=%s left no .deb in %s", p.Name, p.Version, debs)
		}
	}
	err = publishDir(root, ".unpacked", func(tmp string) error {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, out)
		}
		return nil
	})
	return root, err
}

// publishDir fills a fresh directory next to dir with fill, marks it
// complete with the stamp file and renames it to dir, so that runs sharing
// the cache (two engineers' make test-vm) never see a half-filled dir or
// remove one another's.
func publishDir(dir, stamp string, fill func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, stamp), nil, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, stamp)); err == nil {
		return nil // another run published it first
	}
	// A leftover without its stamp: replace it.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// findDeb finds p's .deb in dir; apt-get names it name_version_arch.deb
// with ':' in the version escaped as %3a.
func findDeb(dir string, p debPackage) (string, error) {
	v := strings.ReplaceAll(p.Version, ":", "%3a")
	matches, err := filepath.Glob(filepath.Join(dir, p.Name+"_"+globEscape(v)+"_*.deb"))
	if err != nil || len(matches) == 0 {
		return "", err
	}
	return matches[0], nil
}

func globEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// kernelFiles locates the bzImage and the module tree in an unpacked
// linux-image package.
func kernelFiles(root string) (vmlinuz, modDir, release string, err error) {
	matches, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(matches) != 1 {
		return "", "", "", fmt.Errorf("want one boot/vmlinuz-* in %s, found %d", root, len(matches))
	}
	vmlinuz = matches[0]
	release = strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	for _, base := range []string{"lib", "usr/lib"} {
		d := filepath.Join(root, base, "modules", release)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return vmlinuz, d, release, nil
		}
	}
	return "", "", "", fmt.Errorf("no module tree for %s in %s", release, root)
}
