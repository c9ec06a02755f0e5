// Package podruntime runs pods' containers on a node, as containerd's CRI
// plugin does for a kubelet: a sandbox per pod (its network namespace with
// the pod's address, its hostname, hosts and resolv.conf files), and the
// pod's containers in it, each a runc container on an overlay root whose
// lower layer is its image unpacked, watched over by a kubeyard-shim
// process of its own. Everything it knows is on disk under its folder, so
// a node agent that restarts finds its pods' containers where they were,
// running or ended, with their PIDs unchanged.
package podruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/runc"
)

// ErrImageNotFound is a container whose image is not in the store.
var ErrImageNotFound = images.ErrNotFound

// Config configures a node's Runtime.
type Config struct {
	// Dir holds the node's pods: pods/<uid>/ for each sandbox and its
	// containers, logs/ for their logs.
	Dir       string
	Images    *images.Store
	Snapshots *images.Snapshots
	// Shim is the kubeyard-shim binary.
	Shim string
	Runc runc.Runtime
	// NodeNS is the node's network namespace, where host-network pods
	// run; the other pods' namespaces are named after it.
	NodeNS string
	// CgroupParent is the cgroup (below every controller) of the node's
	// pods: CgroupParent/pod<uid>/<container id>.
	CgroupParent string
}

// Runtime runs one node's pods.
type Runtime struct {
	cfg Config

	mu    sync.Mutex
	wired netip.Prefix // the pod range the node's side was set up for
}

// New returns a node's Runtime.
func New(cfg Config) (*Runtime, error) {
	if cfg.Dir == "" || cfg.Images == nil || cfg.Snapshots == nil || cfg.Shim == "" || cfg.NodeNS == "" || cfg.CgroupParent == "" {
		return nil, errors.New("podruntime: Dir, Images, Snapshots, Shim, NodeNS and CgroupParent are required")
	}
	if cfg.Runc.Root == "" {
		cfg.Runc.Root = filepath.Join(cfg.Dir, "runc")
	}
	return &Runtime{cfg: cfg}, nil
}

// Config is the runtime's configuration, defaults filled in.
func (r *Runtime) Config() Config { return r.cfg }

func (r *Runtime) podDir(uid string) string { return filepath.Join(r.cfg.Dir, "pods", uid) }

func (r *Runtime) containerDir(uid, name string, attempt int) string {
	return filepath.Join(r.podDir(uid), "containers", fmt.Sprintf("%s-%d", name, attempt))
}

// logDir is a pod's log folder, named as the kubelet names it.
func (r *Runtime) logDir(sb *Sandbox) string {
	return filepath.Join(r.cfg.Dir, "logs", sb.Namespace+"_"+sb.Name+"_"+sb.UID)
}

// LogPath is where a container attempt's output is logged (CRI format).
func (r *Runtime) LogPath(sb *Sandbox, name string, attempt int) string {
	return filepath.Join(r.logDir(sb), name, fmt.Sprintf("%d.log", attempt))
}

// containerID is a container attempt's ID, as long as containerd's and
// the same each time it is asked for.
func containerID(uid, name string, attempt int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", uid, name, attempt))
	return hex.EncodeToString(sum[:])
}

// cgroupPath is a pod's cgroup below every controller.
func (r *Runtime) cgroupPath(uid string) string { return r.cfg.CgroupParent + "/pod" + uid }
