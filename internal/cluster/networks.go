package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/flows"
	"github.com/kubeyard/kubeyard/internal/netns"
	"github.com/kubeyard/kubeyard/internal/vpcnet"
)

// SetFirewall enforces a VPC network's firewall rules (network as
// Node.Network: "P/N") on the packets between its real nodes and their
// pods. It applies at once, and again whenever a node joins the network,
// gets its pod range or leaves. Until it is first called for a network,
// nothing there is filtered.
func (r *Runtime) SetFirewall(network string, rules []firewall.Rule) error {
	if r.cfg.Pods == nil {
		return nil
	}
	r.mu.Lock()
	if r.firewalls == nil {
		r.firewalls = map[string][]firewall.Rule{}
	}
	r.firewalls[network] = rules
	r.mu.Unlock()
	return r.applyFirewall(network)
}

// SetRoutes gives a VPC network (as Node.Network) its routes, to its real
// nodes: at once, and again whenever a node joins or leaves.
func (r *Runtime) SetRoutes(network string, routes []vpcnet.Route) error {
	if r.cfg.Pods == nil {
		return nil
	}
	r.mu.Lock()
	if r.routes == nil {
		r.routes = map[string][]vpcnet.Route{}
	}
	r.routes[network] = routes
	r.mu.Unlock()
	return r.applyNetwork(network)
}

// applyNetwork brings a network's namespace to its firewall rules and
// routes, after a node joined or left (the namespace may be new), or they
// changed.
func (r *Runtime) applyNetwork(network string) error {
	r.mu.Lock()
	var routes []vpcnet.Route
	for _, rt := range r.routes[network] {
		if rt.Peer != "" {
			rt.Peer = r.networkNS(rt.Peer)
		}
		routes = append(routes, rt)
	}
	r.mu.Unlock()
	return errors.Join(r.applyFirewall(network), vpcnet.SetRoutes(r.networkNS(network), routes))
}

// peered are the ranges the network routes to peered networks.
func (r *Runtime) peered(network string) []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Prefix
	for _, rt := range r.routes[network] {
		if rt.Peer != "" {
			out = append(out, rt.Dst)
		}
	}
	return out
}

// applyFirewall compiles the network's rules for the instances on it now,
// unless that is what it last applied.
func (r *Runtime) applyFirewall(network string) error {
	ns := r.networkNS(network)
	r.mu.Lock()
	rules, set := r.firewalls[network]
	r.mu.Unlock()
	instances := r.instances(ns)
	if !set {
		return nil
	}
	st, err := os.Stat(netns.Path(ns))
	if err != nil {
		return nil // no node on the network yet
	}
	policy := firewall.Policy{Instances: instances, Rules: rules, Peered: r.peered(network)}
	r.firewallMu.Lock()
	defer r.firewallMu.Unlock()
	// The namespace's inode too: a network made again gets its rules.
	said := fmt.Sprintf("%d %+v", st.Sys().(*syscall.Stat_t).Ino, policy)
	if r.applied[ns] == said {
		return nil
	}
	// Conntrack tracks the network's connections from the first rules on:
	// counted from their first packet, flow logs turned on later see them
	// whole.
	if err := flows.EnableAccounting(ns); err != nil {
		return err
	}
	if err := firewall.Apply(ns, policy); err != nil {
		return err
	}
	if r.applied == nil {
		r.applied = map[string]string{}
	}
	r.applied[ns] = said
	return nil
}

// instances are the real nodes on the network namespace ns.
func (r *Runtime) instances(ns string) []firewall.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []firewall.Instance
	for _, d := range r.dataplanes {
		a := d.attachment
		if a.Network != ns || d.name == "" {
			continue
		}
		in := firewall.Instance{Name: d.name, IP: a.IP, Tags: d.tags}
		if a.PodRange.IsValid() {
			in.Ranges = append(in.Ranges, a.PodRange)
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b firewall.Instance) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// FirewallHits are the connections the network's logging rules decided
// lately (none before its first rules).
func (r *Runtime) FirewallHits(network string) ([]firewall.Hit, error) {
	if r.cfg.Pods == nil {
		return nil, nil
	}
	ns := r.networkNS(network)
	r.firewallMu.Lock()
	_, applied := r.applied[ns]
	r.firewallMu.Unlock()
	if !applied || !netns.Exists(ns) {
		return nil, nil
	}
	return firewall.Logged(ns)
}

// Connections returns the connections crossing a VPC network now (network
// as Node.Network), and its instances: each real node with its address
// and pod range (named as nodes are).
func (r *Runtime) Connections(network string) ([]flows.Flow, []firewall.Instance, error) {
	if r.cfg.Pods == nil {
		return nil, nil, nil
	}
	ns := r.networkNS(network)
	instances := r.instances(ns)
	if len(instances) == 0 || !netns.Exists(ns) {
		return nil, instances, nil
	}
	conns, err := flows.Dump(ns)
	return conns, instances, err
}
