package podruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/jsonfile"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/podnet"
)

// SandboxConfig is what a pod's containers share.
type SandboxConfig struct {
	UID       string `json:"uid"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Hostname is the pod's (its name, or spec.hostname).
	Hostname    string `json:"hostname"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	// IP is the pod's address in PodCIDR, the node's pod range (unused
	// with HostNetwork).
	IP      netip.Addr   `json:"ip"`
	PodCIDR netip.Prefix `json:"podCIDR"`
	// HostAliases are more lines of /etc/hosts: an address, its names.
	HostAliases [][]string `json:"hostAliases,omitempty"`
	// ResolvConf is the pod's /etc/resolv.conf.
	ResolvConf string `json:"resolvConf"`
}

// Sandbox is a pod's sandbox on the node.
type Sandbox struct {
	SandboxConfig
	// NetNS names the pod's network namespace (the node's with
	// HostNetwork).
	NetNS     string    `json:"netns"`
	CreatedAt time.Time `json:"createdAt"`
}

func (r *Runtime) sandboxFile(uid string) string { return filepath.Join(r.podDir(uid), "sandbox.json") }

// etcFile is one of the files the sandbox mounts in each container.
func (r *Runtime) etcFile(uid, name string) string { return filepath.Join(r.podDir(uid), "etc-"+name) }

// RunSandbox makes a pod's sandbox, or returns the one it has: its
// network namespace with loopback up and eth0 on the node's bridge with
// the pod's address, and its etc files.
func (r *Runtime) RunSandbox(cfg SandboxConfig) (*Sandbox, error) {
	if sb, err := r.Sandbox(cfg.UID); err == nil {
		return sb, nil
	}
	if cfg.UID == "" || strings.ContainsAny(cfg.UID, "/.") {
		return nil, fmt.Errorf("podruntime: a pod UID is required, without / or .: %q", cfg.UID)
	}
	sb := &Sandbox{SandboxConfig: cfg, NetNS: r.cfg.NodeNS, CreatedAt: time.Now().UTC()}
	if err := os.MkdirAll(filepath.Join(r.podDir(cfg.UID), "containers"), 0o700); err != nil {
		return nil, fmt.Errorf("podruntime: %w", err)
	}
	if !cfg.HostNetwork {
		sb.NetNS = r.podNetNS(cfg.UID)
		if err := netns.Create(sb.NetNS); err != nil {
			return nil, err
		}
		if err := r.ensureNodeNet(cfg.PodCIDR); err != nil {
			return nil, err
		}
		if err := podnet.AddPod(r.cfg.NodeNS, sb.NetNS, cfg.IP, cfg.PodCIDR); err != nil {
			return nil, err
		}
	}
	files := map[string]string{"hostname": cfg.Hostname + "\n", "hosts": hostsFile(cfg), "resolv.conf": cfg.ResolvConf}
	for name, content := range files {
		if err := os.WriteFile(r.etcFile(cfg.UID, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("podruntime: %w", err)
		}
	}
	// Recorded last: a sandbox on disk is a whole one.
	if err := jsonfile.Write(r.sandboxFile(cfg.UID), sb); err != nil {
		return nil, fmt.Errorf("podruntime: %w", err)
	}
	return sb, nil
}

// ensureNodeNet sets up the node's side of pod networking for its range,
// once per range this runtime sees rather than for every pod.
func (r *Runtime) ensureNodeNet(podCIDR netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wired == podCIDR {
		return nil
	}
	if err := podnet.EnsureNode(r.cfg.NodeNS, podCIDR); err != nil {
		return err
	}
	r.wired = podCIDR
	return nil
}

// podNetNS names a pod's network namespace after its node's.
func (r *Runtime) podNetNS(uid string) string { return r.cfg.NodeNS + "-" + uid }

// hostsFile is the pod's /etc/hosts as the kubelet writes it.
func hostsFile(cfg SandboxConfig) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if !cfg.HostNetwork && cfg.IP.IsValid() {
		fmt.Fprintf(&b, "%s\t%s\n", cfg.IP, cfg.Hostname)
	}
	for _, alias := range cfg.HostAliases {
		if len(alias) > 1 {
			fmt.Fprintf(&b, "\n# Entries added by HostAliases.\n%s\t%s\n", alias[0], strings.Join(alias[1:], "\t"))
		}
	}
	return b.String()
}

// Sandbox returns a pod's sandbox; os.ErrNotExist when it has none.
func (r *Runtime) Sandbox(uid string) (*Sandbox, error) {
	sb, err := jsonfile.Read[Sandbox](r.sandboxFile(uid))
	if err != nil {
		return nil, err
	}
	return &sb, nil
}

// Sandboxes lists the node's sandboxes.
func (r *Runtime) Sandboxes() ([]*Sandbox, error) {
	entries, err := os.ReadDir(filepath.Join(r.cfg.Dir, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("podruntime: %w", err)
	}
	var out []*Sandbox
	for _, e := range entries {
		if sb, err := r.Sandbox(e.Name()); err == nil {
			out = append(out, sb)
		}
	}
	return out, nil
}

// RemoveSandbox kills the pod's containers and removes them, its network
// namespace, its cgroups, its logs and its folder. A pod with no sandbox
// is removed already.
func (r *Runtime) RemoveSandbox(ctx context.Context, uid string) error {
	cs, err := r.Containers(uid)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, r.StopContainer(ctx, c, 0), r.RemoveContainer(c))
	}
	if sb, err := r.Sandbox(uid); err == nil {
		if !sb.HostNetwork {
			errs = append(errs, netns.Delete(sb.NetNS))
		}
		errs = append(errs, os.RemoveAll(r.logDir(sb)))
	} else if ns := r.podNetNS(uid); netns.Exists(ns) { // a sandbox half made
		errs = append(errs, netns.Delete(ns))
	}
	// Never remove through a mount: unmount first.
	if err := unmountUnder(r.podDir(uid)); err != nil {
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, cgroups.Remove(r.cgroupPath(uid)), os.RemoveAll(r.podDir(uid)))
	return errors.Join(errs...)
}

// PortForward copies between stream and a connection to port on the
// pod's loopback, as a CRI runtime does for kubectl port-forward, until
// the pod's side ends (or the client's fails).
func (r *Runtime) PortForward(ctx context.Context, uid string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := r.Dial(ctx, uid, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() {
		if _, err := io.Copy(conn, stream); err != nil {
			done <- err
			return
		}
		// The client has said all it will; the answer may still come.
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return err
}

// Dial connects from inside the pod's network namespace (its loopback,
// or any address the pod reaches), as probes and port-forward do.
func (r *Runtime) Dial(ctx context.Context, uid, network, address string) (net.Conn, error) {
	sb, err := r.Sandbox(uid)
	if err != nil {
		return nil, fmt.Errorf("podruntime: pod %s has no sandbox: %w", uid, err)
	}
	var conn net.Conn
	err = netns.Do(sb.NetNS, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("podruntime: pod %s: %w", sb.Name, err)
	}
	return conn, nil
}

// VolumeDir is where a pod's volumes are made (the kubelet's
// pods/<uid>/volumes); they go with the sandbox.
func (r *Runtime) VolumeDir(uid string) string { return filepath.Join(r.podDir(uid), "volumes") }

// unmountUnder unmounts whatever is mounted below dir, deepest first
// (containers' roots, memory-backed volumes).
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("podruntime: unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
