// Package runc runs containers with runc (Debian's runc package): the OCI
// runtime spec of a container, written from what a pod's container asks
// for, and the runc commands that create, start, signal, inspect and
// delete it. The spec is a pure function of the container; the commands
// run the real runc (tests run real containers).
package runc

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Container is what a pod's container asks of the runtime.
type Container struct {
	// ID names the container to runc, unique on the machine.
	ID string
	// Rootfs is its root file system (an image unpacked).
	Rootfs       string
	ReadOnlyRoot bool
	Args         []string
	Env          []string
	Cwd          string
	// Hostname is the pod's name.
	Hostname string
	UID, GID uint32
	// AddCaps and DropCaps change the default capabilities (those
	// container runtimes give: CHOWN, NET_BIND_SERVICE, ...); "ALL" drops
	// them all.
	AddCaps, DropCaps []string
	// NetNS is the pod's network namespace, shared by its containers.
	NetNS  string
	Mounts []Mount
	// MemoryLimit (bytes) and CPUQuota (millicores) are cgroup limits; 0
	// is none. CPUShares follows the CPU request.
	MemoryLimit int64
	CPUMillis   int64
	CPUShares   uint64
	// CgroupsPath is the container's cgroup, below every controller.
	CgroupsPath string
	Terminal    bool
}

// Mount is a volume: a folder or file of the node bind-mounted in.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
}

// defaultCaps are the capabilities container runtimes give by default.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// capabilities applies adds and drops to the defaults.
func capabilities(add, drop []string) []string {
	caps := slices.Clone(defaultCaps)
	for _, d := range drop {
		if d == "ALL" {
			caps = nil
			break
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == "CAP_"+d || c == d })
	}
	for _, a := range add {
		c := a
		if len(c) < 4 || c[:4] != "CAP_" {
			c = "CAP_" + c
		}
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps
}

// Spec is the OCI runtime spec of c: its own mount, PID, UTS and IPC
// namespaces, the pod's network namespace, the paths container runtimes
// mask, and its cgroup limits.
func Spec(c Container) *specs.Spec {
	caps := capabilities(c.AddCaps, c.DropCaps)
	noNewPrivs := true
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: c.Hostname,
		Root:     &specs.Root{Path: c.Rootfs, Readonly: c.ReadOnlyRoot},
		Process: &specs.Process{
			Terminal: c.Terminal,
			User:     specs.User{UID: c.UID, GID: c.GID},
			Args:     c.Args,
			Env:      c.Env,
			Cwd:      cwd(c.Cwd),
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: noNewPrivs,
		},
		Mounts: append(defaultMounts(), volumeMounts(c.Mounts)...),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: c.NetNS},
			},
			CgroupsPath:   c.CgroupsPath,
			Resources:     resources(c),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	return s
}

func cwd(dir string) string {
	if dir == "" {
		return "/"
	}
	return filepath.Clean("/" + dir)
}

func resources(c Container) *specs.LinuxResources {
	r := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if c.MemoryLimit > 0 {
		limit := c.MemoryLimit
		swap := c.MemoryLimit // no swap beyond the limit
		r.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if c.CPUMillis > 0 || c.CPUShares > 0 {
		r.CPU = &specs.LinuxCPU{}
		if c.CPUShares > 0 {
			shares := c.CPUShares
			r.CPU.Shares = &shares
		}
		if c.CPUMillis > 0 {
			period := uint64(100000)
			quota := c.CPUMillis * int64(period) / 1000
			r.CPU.Period, r.CPU.Quota = &period, &quota
		}
	}
	return r
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

func volumeMounts(ms []Mount) []specs.Mount {
	var out []specs.Mount
	for _, m := range ms {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return out
}

// maskedPaths and readonlyPaths are what container runtimes hide from a
// container and keep it from writing.
var (
	maskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)
