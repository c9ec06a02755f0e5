package kubelet

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// refuse names the first field of the pod that would reach into the
// machine the node runs on (privileged containers, the host's PID or IPC
// namespace, host paths outside the node's folder), and why, unless the
// engine allows privileged pods: a kubeyard node is the user's own
// machine, not a VM of its own.
func (k *Kubelet) refuse(pod *corev1.Pod) (field, msg string) {
	if k.cfg.AllowPrivileged {
		return "", ""
	}
	const why = "refused on kubeyard nodes, which share the machine the engine runs on; start the engine with --allow-privileged-pods to allow it"
	if pod.Spec.HostPID {
		return "spec.hostPID", why
	}
	if pod.Spec.HostIPC {
		return "spec.hostIPC", why
	}
	for i, v := range pod.Spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		p := filepath.Clean(v.HostPath.Path)
		if k.cfg.NodeDir == "" || !(p == k.cfg.NodeDir || strings.HasPrefix(p, k.cfg.NodeDir+"/")) {
			return fmt.Sprintf("spec.volumes[%d].hostPath", i), fmt.Sprintf("%s is outside the node's folder: %s", v.HostPath.Path, why)
		}
	}
	check := func(kind string, cs []corev1.Container) (string, string) {
		for i, c := range cs {
			sc := c.SecurityContext
			if sc == nil {
				continue
			}
			if ptr.Deref(sc.Privileged, false) {
				return fmt.Sprintf("spec.%s[%d].securityContext.privileged", kind, i), why
			}
			// As good as privileged: it may mount, and leave, anything.
			if sc.Capabilities != nil && slices.ContainsFunc(sc.Capabilities.Add, func(c corev1.Capability) bool {
				return c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN" || c == "ALL"
			}) {
				return fmt.Sprintf("spec.%s[%d].securityContext.capabilities.add", kind, i), why
			}
		}
		return "", ""
	}
	if f, m := check("initContainers", pod.Spec.InitContainers); f != "" {
		return f, m
	}
	return check("containers", pod.Spec.Containers)
}
