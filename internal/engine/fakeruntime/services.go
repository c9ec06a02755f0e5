package fakeruntime

import (
	"context"
	"net/netip"
	"slices"

	"github.com/kubeyard/kubeyard/internal/cluster"
)

// services is a cluster's LoadBalancer Services as a test sets them, and
// the load balancers served.
type services struct {
	changed func()
	lbs     []cluster.ServiceLB
	// served are the addresses served, by Service UID; failed what the
	// Services were told when they could not be.
	served map[string]netip.Addr
	failed map[string][]string
}

func (r *Runtime) servicesOf(name string) *services {
	if r.services == nil {
		r.services = map[string]*services{}
	}
	sv := r.services[name]
	if sv == nil {
		sv = &services{served: map[string]netip.Addr{}, failed: map[string][]string{}}
		r.services[name] = sv
	}
	return sv
}

// SetServices makes lbs cluster name's LoadBalancer Services and tells
// the engine that follows them.
func (r *Runtime) SetServices(name string, lbs []cluster.ServiceLB) {
	r.mu.Lock()
	sv := r.servicesOf(name)
	sv.lbs = slices.Clone(lbs)
	changed := sv.changed
	r.mu.Unlock()
	if changed != nil {
		changed()
	}
}

// Served are the load balancers served for cluster name, by Service UID.
func (r *Runtime) Served(name string) map[string]netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]netip.Addr{}
	for uid, ip := range r.servicesOf(name).served {
		out[uid] = ip
	}
	return out
}

func (r *Runtime) FollowServices(s cluster.Spec, changed func()) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servicesOf(s.Name).changed = changed
	return nil
}

func (r *Runtime) LoadBalancerServices(s cluster.Spec) ([]cluster.ServiceLB, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servicesOf(s.Name).lbs), true
}

func (r *Runtime) ServeLoadBalancer(ctx context.Context, s cluster.Spec, lb cluster.ServiceLB, ip netip.Addr) error {
	if err := r.enter(ctx, "ServeLoadBalancer", s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servicesOf(s.Name).served[lb.UID] = ip
	return nil
}

func (r *Runtime) ReleaseLoadBalancer(ctx context.Context, s cluster.Spec, namespace, name, uid string, ip netip.Addr, internal bool) error {
	if err := r.enter(ctx, "ReleaseLoadBalancer", s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sv := r.servicesOf(s.Name)
	delete(sv.served, uid)
	// The finalizer goes: a Service being released is gone after.
	sv.lbs = slices.DeleteFunc(sv.lbs, func(lb cluster.ServiceLB) bool { return lb.UID == uid && lb.Releasing })
	return nil
}

// LoadBalancerServicesOf are cluster name's LoadBalancer Services now.
func (r *Runtime) LoadBalancerServicesOf(name string) []cluster.ServiceLB {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servicesOf(name).lbs)
}

func (r *Runtime) LoadBalancerFailed(ctx context.Context, s cluster.Spec, lb cluster.ServiceLB, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sv := r.servicesOf(s.Name)
	if !slices.Contains(sv.failed[lb.UID], message) {
		sv.failed[lb.UID] = append(sv.failed[lb.UID], message)
	}
	return nil
}

// LoadBalancerFailures are what cluster name's Service with uid was told
// of its load balancer.
func (r *Runtime) LoadBalancerFailures(name, uid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servicesOf(name).failed[uid])
}
