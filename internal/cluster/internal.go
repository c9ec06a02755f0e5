package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/loadbalancer"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// A cluster's internal endpoint is where its nodes and pods reach the API
// from inside the VPC network: an address of the nodes' subnetwork that
// the network serves itself (vpcnet.AddService), on which the load
// balancer listens inside the network's namespace, forwarding to the same
// replicas as the cluster's other endpoints. Every kube-apiserver
// advertises it, so it is the "kubernetes" Service's endpoint: port 443
// for clients that use it directly, and the kube-apiservers' port, which
// the Service's endpoint names.

// internalPorts are the ports the internal endpoint serves.
var internalPorts = []int{443, controlplane.APIServerPort}

// internalFrontends names the internal endpoint's frontend files (none
// without one, or without real nodes: then there is no VPC namespace).
func (r *Runtime) internalFrontends(s Spec) []string {
	if s.InternalEndpointIP == nil || s.Network == "" || r.cfg.Pods == nil {
		return nil
	}
	var out []string
	for _, port := range internalPorts {
		out = append(out, fmt.Sprintf("%s-internal-%d", s.ID, port))
	}
	return out
}

// internalAllow is what the internal endpoint admits: with authorized
// networks, those networks and the cluster's own nodes and pods, which
// always reach their control plane (as on GKE's private endpoint).
func (s Spec) internalAllow() []string {
	allow := s.allow()
	if allow == nil {
		return nil
	}
	if s.NodeRange.IsValid() {
		allow = append(allow, s.NodeRange.String())
	}
	if s.PodCIDR != "" {
		allow = append(allow, s.PodCIDR)
	}
	return allow
}

// writeInternalFrontends serves the internal endpoint, forwarding to
// backends.
func (r *Runtime) writeInternalFrontends(s Spec, backends []loadbalancer.Backend) error {
	names := r.internalFrontends(s)
	if len(names) == 0 {
		return nil
	}
	ns := r.networkNS(s.Network)
	ip, _ := netip.AddrFromSlice(s.InternalEndpointIP.To4())
	if err := vpcnet.AddService(ns, ip); err != nil {
		return fmt.Errorf("cluster %s: internal endpoint: %w", s.Name, err)
	}
	for i, port := range internalPorts {
		fe := loadbalancer.Frontend{
			Addr: net.JoinHostPort(ip.String(), fmt.Sprint(port)), Namespace: ns,
			Backends: backends, Allow: s.internalAllow(),
		}
		if err := loadbalancer.WriteFrontend(r.cfg.LoadBalancerDir, names[i], fe); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return nil
}

// removeInternalEndpoint stops serving the internal endpoint and gives its
// address back to the network (whose namespace goes if nothing else uses
// it).
func (r *Runtime) removeInternalEndpoint(ctx context.Context, s Spec) error {
	names := r.internalFrontends(s)
	if len(names) == 0 {
		return nil
	}
	for _, name := range names {
		if err := loadbalancer.RemoveFrontend(r.cfg.LoadBalancerDir, name); err != nil {
			return err
		}
	}
	if err := loadbalancer.WaitRemoved(ctx, r.cfg.LoadBalancerDir, names...); err != nil {
		return err
	}
	ns := r.networkNS(s.Network)
	ip, _ := netip.AddrFromSlice(s.InternalEndpointIP.To4())
	if err := vpcnet.RemoveService(ns, ip); err != nil {
		return err
	}
	return removeIfUnused(ns)
}
