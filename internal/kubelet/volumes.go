package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/utils/ptr"

	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// unsupportedVolume is a volume of a type this node cannot mount: the pod
// fails, as it would wait forever otherwise.
type unsupportedVolume struct{ name, kind string }

func (u unsupportedVolume) Error() string {
	return fmt.Sprintf("volume %q: %s volumes are not supported on kubeyard nodes", u.name, u.kind)
}

func (k *Kubelet) volumePath(pod *corev1.Pod, name string) (string, error) {
	for _, v := range pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		if v.HostPath != nil {
			return v.HostPath.Path, nil
		}
		return filepath.Join(k.cfg.Runtime.VolumeDir(string(pod.UID)), name), nil
	}
	return "", fmt.Errorf("volumeMounts: the pod has no volume %q", name)
}

// readOnlyVolume says whether a volume is read-only whatever its mount
// says: the API's data volumes are.
func readOnlyVolume(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
		}
	}
	return false
}

// setUpVolumes makes the pod's volumes, and rewrites those of API data
// every VolumeRefresh.
func (k *Kubelet) setUpVolumes(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox) error {
	uid := string(pod.UID)
	k.mu.Lock()
	last, seen := k.volumesAt[uid]
	k.mu.Unlock()
	if seen && k.now().Sub(last) < k.cfg.VolumeRefresh {
		return nil
	}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(k.cfg.Runtime.VolumeDir(uid), v.Name)
		var files map[string]file
		var err error
		switch {
		case v.EmptyDir != nil:
			err = emptyDir(dir, v.EmptyDir)
		case v.HostPath != nil:
			err = hostPath(v.HostPath)
		case v.ConfigMap != nil:
			files, err = k.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, mode(v.ConfigMap.DefaultMode))
		case v.Secret != nil:
			files, err = k.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, mode(v.Secret.DefaultMode))
		case v.DownwardAPI != nil:
			files, err = k.downwardFiles(pod, sb, v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode))
		case v.Projected != nil:
			files, err = k.projectedFiles(ctx, pod, sb, v.Name, v.Projected)
		default:
			return unsupportedVolume{v.Name, volumeKind(v)}
		}
		if err == nil && files != nil {
			err = writeAtomic(dir, files, k.now())
		}
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	k.mu.Lock()
	k.volumesAt[uid] = k.now()
	k.mu.Unlock()
	return nil
}

// volumeKind names a volume's type as its field does.
func volumeKind(v corev1.Volume) string {
	switch {
	case v.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case v.NFS != nil:
		return "nfs"
	case v.CSI != nil:
		return "csi"
	case v.Ephemeral != nil:
		return "ephemeral"
	case v.Image != nil:
		return "image"
	case v.ISCSI != nil:
		return "iscsi"
	}
	return "this kind of"
}

func mode(m *int32) fs.FileMode {
	if m == nil {
		return 0o644
	}
	return fs.FileMode(*m)
}

func emptyDir(dir string, v *corev1.EmptyDirVolumeSource) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	// World-writable, as the kubelet makes them: any user of the pod's
	// containers may write.
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	if v.Medium != corev1.StorageMediumMemory {
		return nil
	}
	opts := "mode=0777"
	if v.SizeLimit != nil && !v.SizeLimit.IsZero() {
		opts += fmt.Sprintf(",size=%d", v.SizeLimit.Value())
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

func hostPath(v *corev1.HostPathVolumeSource) error {
	switch ptr.Deref(v.Type, corev1.HostPathUnset) {
	case corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(v.Path, 0o755)
	case corev1.HostPathFileOrCreate:
		f, err := os.OpenFile(v.Path, os.O_CREATE|os.O_RDONLY, 0o644)
		if err == nil {
			f.Close()
		}
		return err
	case corev1.HostPathDirectory, corev1.HostPathFile, corev1.HostPathSocket:
		_, err := os.Stat(v.Path)
		return err
	}
	return nil
}

// file is one file of an API data volume.
type file struct {
	data []byte
	mode fs.FileMode
}

func keyFiles(data map[string][]byte, items []corev1.KeyToPath, m fs.FileMode) (map[string]file, error) {
	out := map[string]file{}
	if len(items) == 0 {
		for key, v := range data {
			out[key] = file{v, m}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("no key %q", it.Key)
		}
		fm := m
		if it.Mode != nil {
			fm = fs.FileMode(*it.Mode)
		}
		out[it.Path] = file{v, fm}
	}
	return out, nil
}

func (k *Kubelet) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, m fs.FileMode) (map[string]file, error) {
	cm, err := k.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && ptr.Deref(optional, false) {
		return map[string]file{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := map[string][]byte{}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return keyFiles(data, items, m)
}

func (k *Kubelet) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, m fs.FileMode) (map[string]file, error) {
	s, err := k.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && ptr.Deref(optional, false) {
		return map[string]file{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keyFiles(s.Data, items, m)
}

func (k *Kubelet) downwardFiles(pod *corev1.Pod, sb *podruntime.Sandbox, items []corev1.DownwardAPIVolumeFile, m fs.FileMode) (map[string]file, error) {
	out := map[string]file{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = k.podField(pod, sb, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("%s: no container %q", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resource.ExtractContainerResourceValue(it.ResourceFieldRef, c)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Path, err)
		}
		fm := m
		if it.Mode != nil {
			fm = fs.FileMode(*it.Mode)
		}
		out[it.Path] = file{[]byte(v), fm}
	}
	return out, nil
}

// projectedFiles are a projected volume's sources together: bound
// service account tokens (renewed at 80% of their life, as the kubelet
// renews them), ConfigMaps, Secrets and downward API files.
func (k *Kubelet) projectedFiles(ctx context.Context, pod *corev1.Pod, sb *podruntime.Sandbox, volume string, v *corev1.ProjectedVolumeSource) (map[string]file, error) {
	out := map[string]file{}
	m := mode(v.DefaultMode)
	add := func(files map[string]file, err error) error {
		for p, f := range files {
			out[p] = f
		}
		return err
	}
	for _, src := range v.Sources {
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			var token []byte
			token, err = k.token(ctx, pod, volume, src.ServiceAccountToken)
			out[src.ServiceAccountToken.Path] = file{token, m}
		case src.ConfigMap != nil:
			err = add(k.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, m))
		case src.Secret != nil:
			err = add(k.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, m))
		case src.DownwardAPI != nil:
			err = add(k.downwardFiles(pod, sb, src.DownwardAPI.Items, m))
		default:
			return nil, unsupportedVolume{volume, "this projected source of"}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

type cachedToken struct {
	token    []byte
	issued   time.Time
	expires  time.Time
	audience string
}

// token is a service account token bound to the pod, from the API
// server's TokenRequest.
func (k *Kubelet) token(ctx context.Context, pod *corev1.Pod, volume string, p *corev1.ServiceAccountTokenProjection) ([]byte, error) {
	key := string(pod.UID) + "/" + volume + "/" + p.Path
	k.mu.Lock()
	t, ok := k.tokens[key]
	k.mu.Unlock()
	if ok && k.now().Before(t.issued.Add(t.expires.Sub(t.issued)*8/10)) {
		return t.token, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: p.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		req.Spec.Audiences = []string{p.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	got, err := k.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of service account %q: %w", sa, err)
	}
	t = cachedToken{token: []byte(got.Status.Token), issued: k.now(), expires: got.Status.ExpirationTimestamp.Time}
	k.mu.Lock()
	k.tokens[key] = t
	k.mu.Unlock()
	return t.token, nil
}

// writeAtomic writes a data volume as the kubelet's AtomicWriter does:
// the files in a timestamped folder, ..data a link to it swapped by a
// rename, and each name a link through ..data, so that a reader sees
// the old set of files or the new one, never a mix. Unchanged data is
// not rewritten.
func writeAtomic(dir string, files map[string]file, now time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	current := filepath.Join(dir, "..data")
	if same(current, files) {
		return nil
	}
	stamp := filepath.Join(dir, ".."+now.UTC().Format("2006_01_02_15_04_05.000000000"))
	for p, f := range files {
		clean := filepath.Clean(p)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("path %q must be relative, within the volume", p)
		}
		full := filepath.Join(stamp, clean)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(current)
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(stamp), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, current); err != nil {
		return err
	}
	top := map[string]bool{}
	for p := range files {
		name, _, _ := strings.Cut(filepath.Clean(p), "/")
		top[name] = true
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name())) // a key that went
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// same says whether the volume's current files are these.
func same(current string, files map[string]file) bool {
	n := 0
	err := filepath.WalkDir(current+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(current, p)
		f, ok := files[rel]
		info, _ := d.Info()
		data, rerr := os.ReadFile(p)
		if !ok || rerr != nil || !bytes.Equal(data, f.data) || info == nil || info.Mode().Perm() != f.mode.Perm() {
			return fs.ErrInvalid
		}
		n++
		return nil
	})
	return err == nil && n == len(files)
}
