package xdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// loadObjects loads the program and its maps, sized from opts. With a pin
// directory, maps pinned there by a previous daemon are reused (the flow
// table survives a restart); maps that no longer fit this build (another
// layout or size) are replaced, with a warning, losing their contents.
func loadObjects(opts Options, cfg balancerConfig) (*balancerObjects, *ebpf.CollectionSpec, error) {
	spec, err := loadBalancer()
	if err != nil {
		return nil, nil, err
	}
	sizes := map[string]int{
		balancerMapServices:     opts.MaxServices,
		balancerMapFragServices: opts.MaxServices,
		balancerMapSchedTables:  opts.MaxServices,
		balancerMapRrCursors:    opts.MaxServices,
		balancerMapServiceStats: opts.MaxServices,
		balancerMapBackends:     opts.MaxBackends,
		balancerMapBackendConns: opts.MaxBackends,
		balancerMapBackendStats: opts.MaxBackends,
		balancerMapFlows4:       opts.FlowTableSize,
		balancerMapFlows6:       opts.FlowTableSize,
		balancerMapPersistence:  opts.PersistTableSize,
	}
	for name, n := range sizes {
		spec.Maps[name].MaxEntries = uint32(n)
	}
	if err := spec.Variables[balancerVarCfg].Set(cfg); err != nil {
		return nil, nil, fmt.Errorf("set program config: %w", err)
	}
	collOpts := &ebpf.CollectionOptions{}
	if opts.PinDir == "" {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	} else {
		collOpts.Maps.PinPath = opts.PinDir
	}
	var objs balancerObjects
	err = spec.LoadAndAssign(&objs, collOpts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && opts.PinDir != "" {
		opts.Logger.Warn("pinned maps do not fit this build: starting with empty maps (existing flows will be rescheduled)",
			"pin_dir", opts.PinDir, "error", err)
		for name, m := range spec.Maps {
			if m.Pinning == ebpf.PinByName {
				_ = os.Remove(filepath.Join(opts.PinDir, name))
			}
		}
		err = spec.LoadAndAssign(&objs, collOpts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, nil, fmt.Errorf("load xdp program: %w", err)
		}
		return nil, nil, fmt.Errorf("load xdp program and maps: %w", err)
	}
	return &objs, spec, nil
}

// statNames names the global counters from the program's enum stat
// ("STAT_PASS_VRRP" becomes "pass_vrrp"), so the names live in the C only.
func statNames(spec *ebpf.CollectionSpec) ([]string, error) {
	var e *btf.Enum
	if err := spec.Types.TypeByName("stat", &e); err != nil {
		return nil, fmt.Errorf("enum stat in program BTF: %w", err)
	}
	names := make([]string, balancerStatSTAT_MAX)
	for _, v := range e.Values {
		if v.Value >= uint64(len(names)) {
			continue
		}
		names[v.Value] = strings.ToLower(strings.TrimPrefix(v.Name, "STAT_"))
	}
	return names, nil
}

// ensureBPFFS makes sure dir can hold pins: its nearest existing ancestor
// must be on a bpf filesystem. When that is not so and dir lies under
// /sys/fs/bpf, bpffs is mounted there (as systemd and cilium do); the
// mount is left in place for the next daemon.
func ensureBPFFS(dir string) error {
	const root = "/sys/fs/bpf"
	dir = filepath.Clean(dir)
	if onBPFFS(dir) {
		return os.MkdirAll(dir, 0o700)
	}
	if dir == root || strings.HasPrefix(dir, root+"/") {
		if !onBPFFS(root) {
			if err := os.MkdirAll(root, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", root, err)
			}
			if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("mount bpffs on %s: %w", root, err)
			}
		}
		return os.MkdirAll(dir, 0o700)
	}
	return fmt.Errorf("pin directory %s is not on a bpf filesystem (mount one: mount -t bpf bpf DIR)", dir)
}

// lockPinDir takes an exclusive lock on the pin directory itself, held
// until Close or Release (or the process dies): two daemons adopting the
// same pinned maps and links would undo each other's work.
func lockPinDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pin directory %s is in use by another xkeep (give each daemon its own --pin-dir)", dir)
		}
		return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
	}
	return f, nil
}

func onBPFFS(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil {
			return st.Type == unix.BPF_FS_MAGIC
		}
		if p == "/" {
			return false
		}
	}
}
