package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// Prefix begins the names of the engine's network namespaces and cgroups
// on this machine.
func (e *Engine) Prefix() string { return cluster.EnginePrefix(e.DataDir) }

// Leftovers lists what the engine's nodes have on the machine: container
// shims, kube-proxies, network namespaces, cgroups and mounts under the engine's folder.
func (e *Engine) Leftovers() []string {
	var out []string
	for _, pid := range e.ShimPIDs() {
		out = append(out, "shim process "+strconv.Itoa(pid))
	}
	for _, pid := range e.KubeProxyPIDs() {
		out = append(out, "kube-proxy process "+strconv.Itoa(pid))
	}
	names, _ := netns.List(e.Prefix())
	for _, n := range names {
		out = append(out, "network namespace "+n)
	}
	for _, name := range cgroups.Named(e.Prefix() + "-") {
		out = append(out, "cgroup "+name)
	}
	for _, m := range e.mounts() {
		out = append(out, "mount "+m)
	}
	for _, s := range e.attachSockets() {
		out = append(out, "attach socket "+s)
	}
	return out
}

// attachSockets are the shims' attach sockets still on the machine: they
// live outside the data folder (a socket's path must be short), and a
// killed shim leaves its own.
func (e *Engine) attachSockets() []string {
	var out []string
	configs, _ := filepath.Glob(e.containerFiles("shim.json"))
	for _, path := range configs {
		var cfg shim.Config
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &cfg) == nil && cfg.AttachSocket != "" {
			if _, err := os.Stat(cfg.AttachSocket); err == nil {
				out = append(out, cfg.AttachSocket)
			}
		}
	}
	return out
}

// ShimPIDs are the shims of the engine's containers.
func (e *Engine) ShimPIDs() []int { return e.pidsOf("kubeyard-shim") }

// KubeProxyPIDs are the kube-proxies of the engine's nodes.
func (e *Engine) KubeProxyPIDs() []int { return e.pidsOf("kube-proxy") }

// pidsOf are the processes whose command line names program and a file
// of the engine's.
func (e *Engine) pidsOf(program string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(cmdline), program) && strings.Contains(string(cmdline), e.DataDir+"/") {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

func (e *Engine) mounts() []string {
	data, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], e.Dir+"/") {
			out = append(out, f[1])
		}
	}
	return out
}

// removeLeftovers kills and removes what Leftovers lists: the shims and
// every process in the engine's cgroups (its containers), the namespaces,
// the cgroups, the mounts, the attach sockets.
func (e *Engine) removeLeftovers() {
	for _, pid := range append(e.ShimPIDs(), e.KubeProxyPIDs()...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, s := range e.attachSockets() {
		_ = os.Remove(s)
	}
	for _, name := range cgroups.Named(e.Prefix() + "-") {
		_ = cgroups.Remove("/" + name)
	}
	names, _ := netns.List(e.Prefix())
	for _, n := range names {
		_ = netns.Delete(n)
	}
	mounts := e.mounts()
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// SimulatedDeployment is a Deployment whose pods run on the node pool named
// sim, a simulated one (kubeyard.dev/simulated=true): no image is pulled.
func SimulatedDeployment(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeSelector: {cloud.google.com/gke-nodepool: sim}
      containers: [{name: c, image: "nginx:1.27"}]
`, name, replicas)
}
