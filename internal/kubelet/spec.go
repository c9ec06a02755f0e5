package kubelet

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"

	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc"
)

// containerConfig is what the runtime is asked to run for one attempt of
// a container: its command and environment with $(VAR) expanded as the
// kubelet expands them, its volumes, its security context and its
// resources as limits.
func (k *Kubelet) containerConfig(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, spec *corev1.Container, attempt int) (podruntime.ContainerConfig, error) {
	env, err := k.env(ctx, pod, sb, spec)
	if err != nil {
		return podruntime.ContainerConfig{}, err
	}
	vars := map[string]string{}
	var envList []string
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	for _, e := range env {
		envList = append(envList, e.Name+"="+e.Value)
	}
	mapping := expansion.MappingFuncFor(vars)
	expand := func(in []string) []string {
		var out []string
		for _, s := range in {
			out = append(out, expansion.Expand(s, mapping))
		}
		return out
	}
	cfg := podruntime.ContainerConfig{
		Name: spec.Name, Attempt: attempt, Image: spec.Image,
		Command: expand(spec.Command), Args: expand(spec.Args), Env: envList, WorkingDir: spec.WorkingDir,
		Stdin: spec.Stdin, StdinOnce: spec.StdinOnce, TTY: spec.TTY,
	}
	psc, sc := pod.Spec.SecurityContext, spec.SecurityContext
	if psc != nil {
		cfg.RunAsUser, cfg.RunAsGroup = psc.RunAsUser, psc.RunAsGroup
	}
	if sc != nil {
		if sc.RunAsUser != nil {
			cfg.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			cfg.RunAsGroup = sc.RunAsGroup
		}
		cfg.ReadOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		if c := sc.Capabilities; c != nil {
			for _, a := range c.Add {
				cfg.AddCaps = append(cfg.AddCaps, string(a))
			}
			for _, d := range c.Drop {
				cfg.DropCaps = append(cfg.DropCaps, string(d))
			}
		}
	}
	if m, ok := spec.Resources.Limits[corev1.ResourceMemory]; ok {
		cfg.MemoryLimit = m.Value()
	}
	if c, ok := spec.Resources.Limits[corev1.ResourceCPU]; ok {
		cfg.CPUMillis = c.MilliValue()
	}
	if c, ok := spec.Resources.Requests[corev1.ResourceCPU]; ok {
		cfg.CPUShares = max(uint64(c.MilliValue())*1024/1000, 2) // the kubelet's MilliCPUToShares
	}
	for _, m := range spec.VolumeMounts {
		src, err := k.volumePath(pod, m.Name)
		if err != nil {
			return cfg, err
		}
		if sub := expansion.Expand(m.SubPath+m.SubPathExpr, mapping); sub != "" {
			if filepath.IsAbs(sub) || strings.HasPrefix(filepath.Clean(sub), "..") {
				return cfg, fmt.Errorf("volumeMounts[%s].subPath %q must be a relative path within the volume", m.Name, sub)
			}
			src = filepath.Join(src, sub)
		}
		cfg.Mounts = append(cfg.Mounts, runc.Mount{Source: src, Destination: m.MountPath, ReadOnly: m.ReadOnly || readOnlyVolume(pod, m.Name)})
	}
	return cfg, nil
}

// env is a container's environment as the kubelet gives it: Service
// variables, then envFrom, then env, each value expanded against those
// before it.
func (k *Kubelet) env(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, spec *corev1.Container) ([]corev1.EnvVar, error) {
	var out []corev1.EnvVar
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			out[i].Value = value
			return
		}
		index[name] = len(out)
		out = append(out, corev1.EnvVar{Name: name, Value: value})
	}
	for _, e := range k.serviceEnv(pod) {
		set(e.Name, e.Value)
	}
	for _, from := range spec.EnvFrom {
		data, err := k.envSource(ctx, pod.Namespace, from)
		if err != nil {
			return nil, err
		}
		for name, v := range data {
			set(from.Prefix+name, v)
		}
	}
	vars := map[string]string{}
	for _, e := range out {
		vars[e.Name] = e.Value
	}
	for _, e := range spec.Env {
		value := e.Value
		if e.ValueFrom == nil {
			value = expansion.Expand(value, expansion.MappingFuncFor(vars))
		} else {
			var err error
			if value, err = k.envValueFrom(ctx, pod, sb, spec, e.Name, e.ValueFrom); err != nil {
				return nil, err
			}
		}
		vars[e.Name] = value
		set(e.Name, value)
	}
	return out, nil
}

// serviceEnv is the kubernetes Service's variables and, with service
// links on (the default), those of the pod's namespace's Services.
func (k *Kubelet) serviceEnv(pod *corev1.Pod) []corev1.EnvVar {
	if k.cfg.Services == nil {
		return nil
	}
	var svcs []*corev1.Service
	if kube, err := k.cfg.Services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
		svcs = append(svcs, kube)
	}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, _ := k.cfg.Services.Services(pod.Namespace).List(labels.Everything())
		for _, s := range list {
			if !(s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes") {
				svcs = append(svcs, s)
			}
		}
	}
	return envvars.FromServices(svcs)
}

// envSource is the data of an envFrom's ConfigMap or Secret.
func (k *Kubelet) envSource(ctx context.Context, ns string, from corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := k.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("configmap %q: %w", from.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := k.cfg.Client.CoreV1().Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", from.SecretRef.Name, err)
		}
		out := map[string]string{}
		for name, v := range s.Data {
			out[name] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// envValueFrom is an env var's valueFrom: a field of the pod, a
// resource of the container, or a key of a ConfigMap or Secret.
func (k *Kubelet) envValueFrom(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, spec *corev1.Container, name string, from *corev1.EnvVarSource) (string, error) {
	switch {
	case from.FieldRef != nil:
		return k.podField(pod, sb, from.FieldRef.FieldPath)
	case from.ResourceFieldRef != nil:
		c := spec
		if from.ResourceFieldRef.ContainerName != "" {
			c = findContainer(pod, from.ResourceFieldRef.ContainerName)
		}
		if c == nil {
			return "", fmt.Errorf("env %s: no container %q", name, from.ResourceFieldRef.ContainerName)
		}
		return resource.ExtractContainerResourceValue(from.ResourceFieldRef, c)
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := k.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, nil
			}
			err = fmt.Errorf("no key %q", ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", fmt.Errorf("env %s: configmap %q: %w", name, ref.Name, err)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := k.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), nil
			}
			err = fmt.Errorf("no key %q", ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", fmt.Errorf("env %s: secret %q: %w", name, ref.Name, err)
	}
	return "", nil
}

// podField is a downward API field of the pod; the addresses and the
// node are the kubelet's to tell, not yet in the pod's status.
func (k *Kubelet) podField(pod *corev1.Pod, sb *podruntime.Sandbox, path string) (string, error) {
	switch path {
	case "spec.nodeName":
		return k.cfg.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return k.cfg.NodeIP.String(), nil
	case "status.podIP", "status.podIPs":
		if sb.HostNetwork {
			return k.cfg.NodeIP.String(), nil
		}
		return sb.IP.String(), nil
	}
	return fieldpath.ExtractFieldPathAsString(pod, path)
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// resolvConf is the pod's /etc/resolv.conf by its dnsPolicy: the
// cluster's DNS with the search path of its namespace (ClusterFirst), or
// its dnsConfig alone (None).
func (k *Kubelet) resolvConf(pod *corev1.Pod) string {
	var servers, searches, options []string
	policy := pod.Spec.DNSPolicy
	if policy == corev1.DNSClusterFirstWithHostNet || (policy == corev1.DNSClusterFirst || policy == "") && !pod.Spec.HostNetwork {
		servers = k.cfg.ClusterDNS
		d := k.cfg.ClusterDomain
		searches = []string{pod.Namespace + ".svc." + d, "svc." + d, d}
		options = []string{"ndots:5"}
	}
	if c := pod.Spec.DNSConfig; c != nil {
		servers = append(servers, c.Nameservers...)
		searches = append(searches, c.Searches...)
		for _, o := range c.Options {
			if o.Value != nil {
				options = append(options, o.Name+":"+*o.Value)
			} else {
				options = append(options, o.Name)
			}
		}
	}
	var b strings.Builder
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}
