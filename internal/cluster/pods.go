package cluster

import (
	"context"
	"net/netip"
	"net/url"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// PodName is a pod's namespace and name.
type PodName struct{ Namespace, Name string }

// PodAddresses names the cluster's pods by address, as the API server's
// watch cache has them; host-network pods are left out (their address is
// their node's).
func (r *Runtime) PodAddresses(ctx context.Context, s Spec) (map[netip.Addr]PodName, error) {
	client, err := r.AdminClient(s)
	if err != nil {
		return nil, err
	}
	pods, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]PodName, len(pods.Items))
	for _, p := range pods.Items {
		if p.Spec.HostNetwork {
			continue
		}
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			out[a] = PodName{Namespace: p.Namespace, Name: p.Name}
		}
	}
	return out, nil
}

// ReadKubernetes reads path (a GET of the cluster's API: "/api/v1/pods",
// a pod's log) with query, as the cluster's admin, and returns the body.
func (r *Runtime) ReadKubernetes(ctx context.Context, s Spec, path string, query url.Values) (body []byte, err error) {
	err = withAdminClient(s, func(client kubernetes.Interface) error {
		req := client.CoreV1().RESTClient().Get().AbsPath(path)
		for k, vs := range query {
			for _, v := range vs {
				req = req.Param(k, v)
			}
		}
		body, err = req.DoRaw(ctx)
		return err
	})
	return body, err
}

// withAdminClient calls f with an admin client whose connection is closed
// once f returns: a client with its own dialer gets a transport of its
// own, whose idle connection would otherwise stay open to the cluster's
// endpoint (the console reads every few seconds; every node change
// rescales the DNS).
func withAdminClient(s Spec, f func(kubernetes.Interface) error) error {
	cfg, err := adminConfig(s)
	if err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	// Through client-go's wrappers to the transport itself:
	// http.Client.CloseIdleConnections stops at the first wrapper.
	defer utilnet.CloseIdleConnectionsFor(hc.Transport)
	client, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return err
	}
	return f(client)
}
