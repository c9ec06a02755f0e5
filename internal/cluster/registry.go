package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/loadbalancer"
)

// RegistryConfigMap (kube-system) holds what a control-plane machine
// joining from outside the engine needs to know about the cluster (kubeadm
// keeps the like in its kubeadm-config ConfigMap) and the list of replicas
// serving it. A machine that joins adds itself; the engine's load balancer
// follows the list.
const RegistryConfigMap = "kubeyard-control-plane"

const registryKey = "registry.json"

// Registry is the content of RegistryConfigMap.
type Registry struct {
	ClusterName     string `json:"clusterName"`
	EndpointIP      string `json:"endpointIP"`
	ServiceCIDR     string `json:"serviceCIDR"`
	PodCIDR         string `json:"podCIDR"`
	NodeMaskSize    int    `json:"nodeMaskSize"`
	AuthnWebhookURL string `json:"authnWebhookURL"`
	// ExternalEtcd are the external etcd members' hosts; none when etcd is
	// stacked.
	ExternalEtcd []Replica `json:"externalEtcd,omitempty"`
	Replicas     []Replica `json:"replicas"`
}

// Replica is one control-plane replica.
type Replica struct {
	Index int    `json:"index"`
	IP    string `json:"ip"`
	// Joined marks a machine joined with `kubeyard join --control-plane`
	// rather than run by the engine.
	Joined bool `json:"joined,omitempty"`
}

func (r Replica) host() controlplane.Host {
	return controlplane.Host{Index: r.Index, IP: net.ParseIP(r.IP)}
}

// machineSpec is the cluster as the registry describes it, seen from a
// machine whose folder is dir and which runs host h alone.
func (g Registry) machineSpec(dir string, h controlplane.Host, endpointPort int) Spec {
	s := Spec{
		Cluster: controlplane.Cluster{
			Name: g.ClusterName, Dir: dir, EndpointIP: net.ParseIP(g.EndpointIP),
			ServiceCIDR: g.ServiceCIDR, PodCIDR: g.PodCIDR, NodeMaskSize: g.NodeMaskSize,
			AuthnWebhookURL: g.AuthnWebhookURL,
		},
		ID: "machine", Hosts: []controlplane.Host{h}, EndpointPort: endpointPort,
	}
	for _, e := range g.ExternalEtcd {
		eh := e.host()
		eh.EtcdOnly = true
		s.EtcdHosts = append(s.EtcdHosts, eh)
	}
	return s
}

// ReadRegistry reads the registry with any client allowed to: admins, and
// bootstrap tokens for joining.
func ReadRegistry(ctx context.Context, client kubernetes.Interface) (Registry, *corev1.ConfigMap, error) {
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, RegistryConfigMap, metav1.GetOptions{})
	if err != nil {
		return Registry{}, nil, fmt.Errorf("cluster: read %s: %w", RegistryConfigMap, err)
	}
	var g Registry
	if err := json.Unmarshal([]byte(cm.Data[registryKey]), &g); err != nil {
		return Registry{}, nil, fmt.Errorf("cluster: %s: %w", RegistryConfigMap, err)
	}
	return g, cm, nil
}

// UpdateRegistry applies change to the registry, retrying on conflicts.
func UpdateRegistry(ctx context.Context, client kubernetes.Interface, change func(*Registry)) error {
	for {
		g, cm, err := ReadRegistry(ctx, client)
		if err != nil {
			return err
		}
		change(&g)
		data, err := json.Marshal(g)
		if err != nil {
			return err
		}
		cm.Data[registryKey] = string(data)
		_, err = client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

// ensureRegistry writes the cluster's configuration and the engine's
// replicas into the registry, keeping the machines that joined, and lets
// joining machines read it (as kubeadm lets them read kubeadm-config).
func ensureRegistry(ctx context.Context, client kubernetes.Interface, s Spec) error {
	want := Registry{
		ClusterName: s.Name, EndpointIP: s.EndpointIP.String(), ServiceCIDR: s.ServiceCIDR, PodCIDR: s.PodCIDR,
		NodeMaskSize: s.NodeMaskSize, AuthnWebhookURL: s.AuthnWebhookURL,
	}
	for _, h := range s.EtcdHosts {
		want.ExternalEtcd = append(want.ExternalEtcd, Replica{Index: h.Index, IP: h.IP.String()})
	}
	for _, h := range s.Hosts {
		want.Replicas = append(want.Replicas, Replica{Index: h.Index, IP: h.IP.String()})
	}
	data, err := json.Marshal(want)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RegistryConfigMap, Namespace: metav1.NamespaceSystem},
		Data:       map[string]string{registryKey: string(data)},
	}
	if _, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		err = UpdateRegistry(ctx, client, func(g *Registry) {
			joined := slices.DeleteFunc(g.Replicas, func(r Replica) bool { return !r.Joined })
			*g = want
			g.Replicas = append(slices.Clone(want.Replicas), joined...)
		})
		if err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("cluster: %s: %w", RegistryConfigMap, err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeyard:control-plane-registry-reader", Namespace: metav1.NamespaceSystem},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{RegistryConfigMap}}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: join.NodeBootstrapGroup}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// followRegistry keeps the cluster's load balancer frontend in step with
// the registry, watched (a GET a second per cluster was a fifth of an idle
// control plane's requests): machines that join or leave are added or
// removed as soon as they write it. It runs until ctx ends.
func (r *Runtime) followRegistry(ctx context.Context, s Spec) {
	for ctx.Err() == nil {
		// A watch that fails starts again with a new client: the cluster
		// may be restarting, its admin credentials on another host (a
		// replaced replica).
		if client, err := r.AdminClient(s); err == nil {
			r.watchRegistry(ctx, s, client)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// watchRegistry applies the registry as it changes, until ctx ends or the
// watch fails.
func (r *Runtime) watchRegistry(ctx context.Context, s Spec, client kubernetes.Interface) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespaceSystem),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RegistryConfigMap).String()
		}))
	informer := factory.Core().V1().ConfigMaps().Informer()
	_ = informer.SetWatchErrorHandlerWithContext(func(context.Context, *cache.Reflector, error) { cancel() })
	apply := func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			r.applyRegistry(s, cm)
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: apply, UpdateFunc: func(_, obj any) { apply(obj) }})
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

// applyRegistry serves the joined replicas that the registry lists, when
// they changed.
func (r *Runtime) applyRegistry(s Spec, cm *corev1.ConfigMap) {
	var g Registry
	if err := json.Unmarshal([]byte(cm.Data[registryKey]), &g); err != nil {
		r.cfg.Logger.Warn("registry", "cluster", s.Name, "err", err)
		return
	}
	var joined []loadbalancer.Backend
	for _, rep := range g.Replicas {
		if rep.Joined {
			joined = append(joined, backend(rep.host()))
		}
	}
	r.mu.Lock()
	changed := !slices.Equal(r.joined[s.ID], joined)
	r.joined[s.ID] = joined
	r.mu.Unlock()
	if changed {
		if err := r.writeFrontend(s); err != nil {
			r.cfg.Logger.Warn("load balancer", "cluster", s.Name, "err", err)
		} else {
			r.cfg.Logger.Info("control-plane replicas joined from outside", "cluster", s.Name, "count", len(joined))
		}
	}
}

// JoinedReplicas lists the kube-apiservers of control-plane replicas that
// joined cluster s from other machines (kubeyard join --control-plane).
func (r *Runtime) JoinedReplicas(s Spec) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.joined[s.ID] {
		out = append(out, b.Addr)
	}
	return out
}

// backend is host h's kube-apiserver as a load balancer backend.
func backend(h controlplane.Host) loadbalancer.Backend {
	return loadbalancer.Backend{
		Addr:     net.JoinHostPort(h.IP.String(), fmt.Sprint(controlplane.APIServerPort)),
		ReadyURL: h.APIServerURL() + "/readyz",
	}
}
