package runc

import (
	"strings"
	"testing"
)

// The spec of a container: its namespaces (the pod's network namespace
// shared), capabilities changed as asked, limits as cgroups.
func TestSpec(t *testing.T) {
	s := Spec(Container{ID: "c1", Rootfs: "/r", Args: []string{"sh"}, Hostname: "pod-1", NetNS: "/run/netns/pod", UID: 1000, GID: 1000,
		AddCaps: []string{"NET_ADMIN"}, DropCaps: []string{"NET_RAW"}, MemoryLimit: 64 << 20, CPUMillis: 500, ReadOnlyRoot: true,
		Mounts: []Mount{{Source: "/v", Destination: "/data", ReadOnly: true}}, CgroupsPath: "/kubeyard/c1"})
	if s.Hostname != "pod-1" || !s.Root.Readonly || s.Process.User.UID != 1000 || s.Process.Cwd != "/" {
		t.Errorf("process and root: %+v %+v", s.Process, s.Root)
	}
	var netns string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			netns = ns.Path
		}
	}
	if netns != "/run/netns/pod" || len(s.Linux.Namespaces) != 5 {
		t.Errorf("namespaces: %+v", s.Linux.Namespaces)
	}
	caps := strings.Join(s.Process.Capabilities.Bounding, ",")
	if !strings.Contains(caps, "CAP_NET_ADMIN") || strings.Contains(caps, "CAP_NET_RAW") || !strings.Contains(caps, "CAP_CHOWN") {
		t.Errorf("capabilities: %s", caps)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Quota != 50000 {
		t.Errorf("resources: %+v", s.Linux.Resources)
	}
	if last := s.Mounts[len(s.Mounts)-1]; last.Destination != "/data" || last.Options[len(last.Options)-1] != "ro" {
		t.Errorf("volume mount: %+v", last)
	}
	if got := capabilities(nil, []string{"ALL"}); len(got) != 0 {
		t.Errorf("drop ALL: %v", got)
	}
}
