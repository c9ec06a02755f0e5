package vpc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// What clusters need from the VPC: the ranges a new cluster range must
// avoid, the secondary ranges GKE adds to a subnetwork for a cluster, and
// the Google-managed network a private cluster's control plane lives in,
// peered with the cluster's network.

// UsedRanges lists the ranges of a network's subnetworks and of the
// networks peered with it: what a new range in the network must not
// overlap.
func (s *Service) UsedRanges(ctx context.Context, project, network string) ([]Range, error) {
	n, _, err := s.network(ctx, project, network)
	if err != nil {
		return nil, err
	}
	own, err := s.networkRanges(ctx, project, n.SelfLink, "")
	if err != nil {
		return nil, err
	}
	peered, err := s.peeredRanges(ctx, project, n)
	if err != nil {
		return nil, err
	}
	return append(own, peered...), nil
}

// AddSecondaryRanges adds a cluster's secondary ranges to a subnetwork
// (GKE's gke-<cluster>-pods-<hash>), checked as any secondary range; a
// range already there by name is left as it is, so a retried operation
// does not fail.
func (s *Service) AddSecondaryRanges(ctx context.Context, project, region, subnet string, ranges []*compute.SubnetworkSecondaryRange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, rev, err := get[compute.Subnetwork](ctx, s.cfg.Store, subnetKey(project, region, subnet), subnetPath(project, region, subnet))
	if err != nil {
		return err
	}
	changed := false
	for _, r := range ranges {
		if !slices.ContainsFunc(sub.SecondaryIpRanges, func(o *compute.SubnetworkSecondaryRange) bool { return o.RangeName == r.RangeName }) {
			sub.SecondaryIpRanges = append(sub.SecondaryIpRanges, r)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := s.checkRanges(ctx, project, sub, "resource."); err != nil {
		return err
	}
	sub.Fingerprint = fingerprint()
	return s.cfg.Store.Commit(ctx, store.Write{Key: subnetKey(project, region, subnet), Value: sub, Revision: rev})
}

// RemoveSecondaryRanges removes the secondary ranges a cluster added, when
// the cluster goes; ranges (or a subnetwork) already gone are no error.
func (s *Service) RemoveSecondaryRanges(ctx context.Context, project, region, subnet string, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, rev, err := get[compute.Subnetwork](ctx, s.cfg.Store, subnetKey(project, region, subnet), subnetPath(project, region, subnet))
	if status.Is(err, status.NotFound) {
		return nil
	} else if err != nil {
		return err
	}
	n := len(sub.SecondaryIpRanges)
	sub.SecondaryIpRanges = slices.DeleteFunc(sub.SecondaryIpRanges, func(r *compute.SubnetworkSecondaryRange) bool { return slices.Contains(names, r.RangeName) })
	if len(sub.SecondaryIpRanges) == n {
		return nil
	}
	sub.Fingerprint = fingerprint()
	return s.cfg.Store.Commit(ctx, store.Write{Key: subnetKey(project, region, subnet), Value: sub, Revision: rev})
}

// ManagedPeering is the network GKE runs a private cluster's control
// plane in (in a project of its own) and its peering with the cluster's
// network.
type ManagedPeering struct {
	// Project and Network are the cluster's network.
	Project, Network string
	// Name names the peering on both sides (gke-<cluster>-<hash>-peer).
	Name string
	// TenantProject and TenantNetwork are the managed side; its one
	// subnetwork, in Region, is the control plane's range.
	TenantProject, TenantNetwork, Region, ControlPlaneRange string
}

// EnsureManagedPeering creates the managed network with its control-plane
// subnetwork and peers it with the cluster's network, both sides at once
// (so the peering is ACTIVE). The control-plane range must overlap nothing
// in the cluster's network. What already exists is left as it is.
func (s *Service) EnsureManagedPeering(ctx context.Context, m ManagedPeering) error {
	if _, _, err := s.network(ctx, m.TenantProject, m.TenantNetwork); status.Is(err, status.NotFound) {
		n := &compute.Network{Name: m.TenantNetwork, Description: "Control plane of a private GKE cluster", RoutingConfig: &compute.NetworkRoutingConfig{RoutingMode: "REGIONAL"}}
		writes, err := s.networkWrites(m.TenantProject, n)
		if err != nil {
			return err
		}
		sub := &compute.Subnetwork{Name: m.TenantNetwork + "-cp", IpCidrRange: m.ControlPlaneRange, Network: n.SelfLink}
		s.fillSubnet(m.TenantProject, m.Region, sub)
		n.Subnetworks = []string{sub.SelfLink}
		writes = append(writes, store.Write{Key: subnetKey(m.TenantProject, m.Region, sub.Name), Value: sub, Revision: store.Absent})
		if err := s.cfg.Store.Commit(ctx, writes...); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	} else if err != nil {
		return err
	}
	for _, side := range []struct{ project, network, peerProject, peerNetwork string }{
		{m.Project, m.Network, m.TenantProject, m.TenantNetwork},
		{m.TenantProject, m.TenantNetwork, m.Project, m.Network},
	} {
		n, _, err := s.network(ctx, side.project, side.network)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(n.Peerings, func(p *compute.NetworkPeering) bool { return p.Name == m.Name }) {
			continue
		}
		p := &compute.NetworkPeering{Name: m.Name, Network: networkPath(side.peerProject, side.peerNetwork)}
		if _, err := s.AddPeering(ctx, side.project, side.network, p, PeeringChange{}); err != nil {
			return fmt.Errorf("peering %s: %w", m.Name, err)
		}
	}
	return nil
}

// RemoveManagedPeering undoes EnsureManagedPeering; what is already gone
// is no error.
func (s *Service) RemoveManagedPeering(ctx context.Context, m ManagedPeering) error {
	for _, side := range [][2]string{{m.Project, m.Network}, {m.TenantProject, m.TenantNetwork}} {
		if _, err := s.RemovePeering(ctx, side[0], side[1], m.Name); err != nil && !status.Is(err, status.NotFound) {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, rev, err := s.network(ctx, m.TenantProject, m.TenantNetwork)
	if status.Is(err, status.NotFound) {
		return nil
	} else if err != nil {
		return err
	}
	writes := []store.Write{{Key: networkKey(m.TenantProject, m.TenantNetwork), Revision: rev},
		{Key: subnetKey(m.TenantProject, m.Region, m.TenantNetwork+"-cp"), Revision: store.Any}}
	routes, err := store.ListAs[compute.Route](ctx, s.cfg.Store, "vpc/routes/"+m.TenantProject+"/")
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.Network == n.SelfLink {
			writes = append(writes, store.Write{Key: routeKey(m.TenantProject, r.Name), Revision: store.Any})
		}
	}
	return s.cfg.Store.Commit(ctx, writes...)
}
