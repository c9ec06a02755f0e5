package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/images"
	"github.com/kubeyard/kubeyard/internal/jsonfile"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// Pods configures real nodes: where their containers' images come from,
// the shim that watches each container, and the prefix of everything the
// engine makes on the machine (network namespaces, cgroups), which keeps
// engines apart and lets what one left be found.
type Pods struct {
	Images    *images.Store
	Snapshots *images.Snapshots
	Shim      string
	// Prefix begins the names of the engine's network namespaces and
	// cgroups: <prefix>-<node> for a node's, <prefix>-vpc-... for a VPC
	// network's.
	Prefix          string
	AllowPrivileged bool
}

// EnginePrefix is the prefix of what an engine with this data dir makes
// on the machine.
func EnginePrefix(dataDir string) string {
	abs, _ := filepath.Abs(dataDir)
	sum := sha256.Sum256([]byte(abs))
	return "ky" + hex.EncodeToString(sum[:3])
}

// dataplane is a real node's part of the machine: its network namespace
// on its VPC network and the runtime of its pods.
type dataplane struct {
	dir        string // the node's folder
	runtime    *podruntime.Runtime
	attachment vpcnet.Attachment
	// name, tags and network (Node.Network) are the instance's, for its
	// network's firewall.
	name, network string
	tags          []string
}

func (r *Runtime) nodeNS(n Node) string { return r.cfg.Pods.Prefix + "-" + n.Name }

// networkNS names a VPC network's namespace.
func (r *Runtime) networkNS(network string) string {
	sum := sha256.Sum256([]byte(network))
	name := network[strings.LastIndexByte(network, '/')+1:]
	return fmt.Sprintf("%s-vpc-%.20s-%s", r.cfg.Pods.Prefix, name, hex.EncodeToString(sum[:3]))
}

// ensureDataplane attaches a real node to its VPC network and returns the
// runtime of its pods.
func (r *Runtime) ensureDataplane(s Spec, n Node) (*dataplane, error) {
	ip, ok := netip.AddrFromSlice(n.InternalIP.To4())
	if !ok || !n.Subnet.IsValid() || n.Network == "" {
		return nil, fmt.Errorf("node %s: a real node needs its network, subnet and InternalIP", n.Name)
	}
	a := vpcnet.Attachment{Network: r.networkNS(n.Network), Node: r.nodeNS(n), Subnet: n.Subnet, IP: ip, RoutesBased: n.RoutesBased}
	if err := vpcnet.Attach(a); err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	dir := r.nodeDir(s, n.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Kept beside the node: whoever removes it later (a cluster deleted
	// after a restart) finds what to undo.
	if err := jsonfile.Write(filepath.Join(dir, dataplaneFile), a); err != nil {
		return nil, err
	}
	d, err := r.dataplaneOf(dir, a)
	if err != nil {
		return nil, err
	}
	d.name, d.network, d.tags = n.Name, n.Network, n.Tags
	return d, nil
}

// dataplaneFile records a node's VPC attachment in its folder.
const dataplaneFile = "dataplane.json"

func (r *Runtime) dataplaneOf(nodeDir string, a vpcnet.Attachment) (*dataplane, error) {
	rt, err := podruntime.New(podruntime.Config{
		Dir: filepath.Join(nodeDir, "pods"), Images: r.cfg.Pods.Images, Snapshots: r.cfg.Pods.Snapshots,
		Shim: r.cfg.Pods.Shim, NodeNS: a.Node, CgroupParent: "/" + a.Node,
	})
	if err != nil {
		return nil, err
	}
	return &dataplane{dir: nodeDir, runtime: rt, attachment: a}, nil
}

// loadDataplane is the dataplane recorded in a node's folder
// (os.ErrNotExist: none).
func (r *Runtime) loadDataplane(nodeDir string) (*dataplane, error) {
	a, err := jsonfile.Read[vpcnet.Attachment](filepath.Join(nodeDir, dataplaneFile))
	if err != nil {
		return nil, err
	}
	return r.dataplaneOf(nodeDir, a)
}

// routePods routes the node's pod range to it, once it has one, and
// returns its attachment with the range (the caller records it).
func (d *dataplane) routePods(cidr netip.Prefix) (vpcnet.Attachment, error) {
	a := d.attachment
	a.PodRange = cidr
	return a, vpcnet.Attach(a)
}

// remove stops and removes every pod of the node, takes it off its
// network (the network's namespace goes with its last user), and removes
// its namespace and cgroups: the machine is switched off.
func (d *dataplane) remove(ctx context.Context) error {
	var errs []error
	sbs, err := d.runtime.Sandboxes()
	errs = append(errs, err)
	for _, sb := range sbs {
		errs = append(errs, d.runtime.RemoveSandbox(ctx, sb.UID))
	}
	errs = append(errs, vpcnet.Detach(d.attachment), netns.Delete(d.attachment.Node))
	errs = append(errs, removeIfUnused(d.attachment.Network))
	errs = append(errs, cgroups.Remove(d.runtime.Config().CgroupParent))
	return errors.Join(errs...)
}

// removeIfUnused removes a network's namespace once nothing uses it: no
// node and no address it serves.
func removeIfUnused(network string) error {
	unused, err := vpcnet.Unused(network)
	if err != nil || !unused {
		return err
	}
	return vpcnet.RemoveNetwork(network)
}

// removeDataplanes removes the dataplanes of the agents' keys with the
// prefix, then those recorded in s's folder that no agent here ran (an
// earlier engine's).
func (r *Runtime) removeDataplanes(ctx context.Context, prefix string, s Spec) error {
	r.mu.Lock()
	var ds []*dataplane
	var keys []string
	for k, d := range r.dataplanes {
		if strings.HasPrefix(k, prefix) {
			ds = append(ds, d)
			delete(r.dataplanes, k)
			keys = append(keys, k)
		}
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.stopKubeProxy(k)
	}
	var errs []error
	removed := map[string]bool{}
	for _, d := range ds {
		errs = append(errs, d.remove(ctx), r.applyNetwork(d.network))
		removed[d.dir] = true
	}
	if s.Dir != "" && r.cfg.Pods != nil {
		files, _ := filepath.Glob(filepath.Join(s.Dir, "nodes", "*", dataplaneFile))
		for _, f := range files {
			if dir := filepath.Dir(f); !removed[dir] {
				errs = append(errs, r.removeRecorded(ctx, dir))
			}
		}
	}
	return errors.Join(errs...)
}

// removeNodeDataplane removes a node's dataplane: the one an agent here
// runs, or the one recorded in its folder.
func (r *Runtime) removeNodeDataplane(ctx context.Context, s Spec, name string) error {
	key := s.ID + "/" + name
	r.mu.Lock()
	d := r.dataplanes[key]
	delete(r.dataplanes, key)
	r.mu.Unlock()
	r.stopKubeProxy(key)
	if d != nil {
		return errors.Join(d.remove(ctx), r.applyNetwork(d.network))
	}
	if r.cfg.Pods == nil {
		return nil
	}
	return r.removeRecorded(ctx, r.nodeDir(s, name))
}

// removeRecorded removes the dataplane recorded in a node's folder, if any.
func (r *Runtime) removeRecorded(ctx context.Context, nodeDir string) error {
	// Its kube-proxy too, which an earlier engine ran.
	r.cfg.Supervisor.StopRecorded(filepath.Join(nodeDir, "kube-proxy", "kube-proxy.pid"))
	d, err := r.loadDataplane(nodeDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.remove(ctx)
}

// sweep removes what is left of the engine's nodes on the machine once
// every node it knows is gone: network namespaces and cgroups with its
// prefix (a node whose creation a crash cut short).
func (r *Runtime) sweep() error {
	if r.cfg.Pods == nil {
		return nil
	}
	var errs []error
	names, err := netns.List(r.cfg.Pods.Prefix + "-")
	errs = append(errs, err)
	for _, n := range names {
		errs = append(errs, netns.Delete(n))
	}
	for _, name := range cgroups.Named(r.cfg.Pods.Prefix + "-") {
		errs = append(errs, cgroups.Remove("/"+name))
	}
	return errors.Join(errs...)
}

// approveServing approves a node's kubelet-serving CSR, as GKE does: only
// a serving certificate for the node that asks, for its own name.
func (r *Runtime) approveServing(s Spec, node string) func(ctx context.Context, name string) error {
	return func(ctx context.Context, name string) error {
		client, err := r.AdminClient(s)
		if err != nil {
			return err
		}
		csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || csr.Spec.Username != "system:node:"+node {
			return fmt.Errorf("CSR %s is not node %s's serving certificate request (signer %s, from %s)", name, node, csr.Spec.SignerName, csr.Spec.Username)
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
			Reason: "AutoApproved", Message: "kubeyard approved the node's serving certificate",
		})
		_, err = client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, csr, metav1.UpdateOptions{})
		return err
	}
}

// clusterDNS is the resolver the cluster's pods are given: the tenth
// address of its service range, kube-dns's on GKE.
func clusterDNS(s Spec) []string {
	p, err := netip.ParsePrefix(s.ServiceCIDR)
	if err != nil {
		return nil
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return []string{a.String()}
}
