package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// vmModules are loaded by the VM's init before the tests run. Their
// dependencies (nf_conntrack, nf_defrag_*, libcrc32c, llc, stp, ...) come
// along. Every IPVS scheduler is a module of its own, ip_vs_<name>.
var vmModules = []string{
	"ip_vs",
	"ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_mh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf",
	"veth", "bridge", "dummy",
	// A vishvananda/netlink Handle opens NETLINK_XFRM and NETLINK_NETFILTER
	// sockets besides NETLINK_ROUTE; their protocols are modules here.
	"xfrm_user", "nfnetlink",
	// IPVS tunnel forwarding (TUN) and the real server's ipip decapsulation.
	"ipip",
}

// stageModules copies the modules and their dependency closure out of the
// kernel's module tree into cache/modules/<release>-<hash>/lib/modules/
// <release>, and runs depmod on that small tree, so busybox modprobe (and
// the kernel's request_module, e.g. for ip_vs_<scheduler>) can load them.
// It returns the staged root (the directory holding lib/).
func stageModules(ctx context.Context, cache, modDir, release string, want []string) (string, error) {
	sorted := append([]string(nil), want...)
	sort.Strings(sorted)
	sum := sha256.Sum256([]byte(strings.Join(sorted, ",")))
	root := filepath.Join(cache, "modules", release+"-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(root, ".staged")); err == nil {
		return root, nil
	}

	index, err := indexModules(modDir)
	if err != nil {
		return "", err
	}
	closure := map[string]string{} // name -> path relative to modDir
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = modName(name)
		if _, ok := closure[name]; ok {
			return nil
		}
		rel, ok := index[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) is not in %s", name, from, modDir)
			}
			return fmt.Errorf("module %s is not in %s (built in? then drop it from vmModules)", name, modDir)
		}
		closure[name] = rel
		deps, err := moduleDepends(filepath.Join(modDir, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range sorted {
		if err := visit(m, ""); err != nil {
			return "", err
		}
	}

	err = publishDir(root, ".staged", func(tmp string) error {
		dst := filepath.Join(tmp, "lib", "modules", release)
		for _, rel := range closure {
			if err := copyFile(filepath.Join(dst, rel), filepath.Join(modDir, rel)); err != nil {
				return err
			}
		}
		for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
			if _, err := os.Stat(filepath.Join(modDir, f)); err == nil {
				if err := copyFile(filepath.Join(dst, f), filepath.Join(modDir, f)); err != nil {
					return err
				}
			}
		}
		if out, err := exec.CommandContext(ctx, "depmod", "-b", tmp, release).CombinedOutput(); err != nil {
			return fmt.Errorf("depmod -b %s %s: %w\n%s", tmp, release, err, out)
		}
		return nil
	})
	return root, err
}

// indexModules maps module names to their paths relative to modDir.
func indexModules(modDir string) (map[string]string, error) {
	index := map[string]string{}
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(modDir, p)
		index[modName(strings.TrimSuffix(d.Name(), ".ko"))] = rel
		return nil
	})
	return index, err
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// modName normalises a module name as the kernel does ('-' and '_' are the
// same).
func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func copyFile(dst, src string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
