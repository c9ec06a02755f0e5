package vpc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// InsertNetwork creates a network: custom mode (subnetworks are created
// one by one) or auto mode (one subnetwork per region, from autoRanges).
func (s *Service) InsertNetwork(ctx context.Context, project string, n *compute.Network) (*compute.Operation, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	if err := checkName("resource.name", n.Name); err != nil {
		return nil, err
	}
	if n.Mtu != 0 && (n.Mtu < 1300 || n.Mtu > 8896) {
		return nil, status.Invalid("resource.mtu", "Invalid value for field 'resource.mtu': '%d'. The MTU must be between 1300 and 8896.", n.Mtu)
	}
	if rc := n.RoutingConfig; rc != nil && rc.RoutingMode != "" && rc.RoutingMode != "REGIONAL" && rc.RoutingMode != "GLOBAL" {
		return nil, status.Invalid("resource.routingConfig.routingMode", "Invalid value for field 'resource.routingConfig.routingMode': '%s'. REGIONAL or GLOBAL.", rc.RoutingMode)
	}
	if n.RoutingConfig == nil {
		n.RoutingConfig = &compute.NetworkRoutingConfig{}
	}
	if n.RoutingConfig.RoutingMode == "" {
		n.RoutingConfig.RoutingMode = "REGIONAL"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writes, err := s.networkWrites(project, n)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Commit(ctx, writes...); errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'projects/%s/global/networks/%s' already exists", project, n.Name)
	} else if err != nil {
		return nil, err
	}
	return s.operation(ctx, project, "", "insert", n.SelfLink, n.Id)
}

// GetNetwork returns a network.
func (s *Service) GetNetwork(ctx context.Context, project, name string) (*compute.Network, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	n, _, err := s.network(ctx, project, name)
	return explicitNetwork(n), err
}

// ListNetworks returns the project's networks.
func (s *Service) ListNetworks(ctx context.Context, project string) ([]*compute.Network, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	nets, err := store.ListAs[compute.Network](ctx, s.cfg.Store, "vpc/networks/"+project+"/")
	for _, n := range nets {
		explicitNetwork(n)
	}
	return nets, err
}

// DeleteNetwork deletes a network. A custom-mode network with subnetworks
// is refused (they go first); an auto-mode network takes its own
// subnetworks with it. A network a cluster uses is refused.
func (s *Service) DeleteNetwork(ctx context.Context, project, name string) (*compute.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, rev, err := s.network(ctx, project, name)
	if err != nil {
		return nil, err
	}
	if user, err := s.cfg.InUse(ctx, project, name, ""); err != nil {
		return nil, err
	} else if user != "" {
		return nil, inUse("network", networkPath(project, name), user)
	}
	subs, err := s.subnetsOf(ctx, project, n.SelfLink)
	if err != nil {
		return nil, err
	}
	writes := []store.Write{{Key: networkKey(project, name), Revision: rev}}
	for _, sub := range subs {
		if !n.AutoCreateSubnetworks || sub.Name != n.Name {
			return nil, inUse("network", networkPath(project, name), subnetPath(project, ResourceName(sub.Region), sub.Name))
		}
		writes = append(writes, store.Write{Key: subnetKey(project, ResourceName(sub.Region), sub.Name), Revision: store.Any})
	}
	if len(n.Peerings) > 0 {
		return nil, inUse("network", networkPath(project, name), "peering "+n.Peerings[0].Name)
	}
	routers, err := s.ListRouters(ctx, project, "")
	if err != nil {
		return nil, err
	}
	for _, r := range routers {
		if ResourceName(r.Network) == name {
			return nil, inUse("network", networkPath(project, name), fmt.Sprintf("projects/%s/regions/%s/routers/%s", project, ResourceName(r.Region), r.Name))
		}
	}
	fws, err := s.ListFirewalls(ctx, project)
	if err != nil {
		return nil, err
	}
	for _, fw := range fws {
		if ResourceName(fw.Network) == name {
			return nil, inUse("network", networkPath(project, name), fmt.Sprintf("projects/%s/global/firewalls/%s", project, fw.Name))
		}
	}
	routes, err := s.ListRoutes(ctx, project)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if ResourceName(r.Network) != name {
			continue
		}
		if !strings.HasPrefix(r.Name, "default-route-") {
			return nil, inUse("network", networkPath(project, name), fmt.Sprintf("projects/%s/global/routes/%s", project, r.Name))
		}
		writes = append(writes, store.Write{Key: routeKey(project, r.Name), Revision: store.Any})
	}
	if err := s.cfg.Store.Commit(ctx, writes...); err != nil {
		return nil, err
	}
	return s.operation(ctx, project, "", "delete", n.SelfLink, n.Id)
}

// inUse is Compute Engine's refusal to delete a resource in use.
func inUse(kind, resource, user string) error {
	return status.Errorf(status.FailedPrecondition, "The %s resource '%s' is already being used by '%s'", kind, resource, user).
		WithReason("compute.googleapis.com", "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", map[string]string{"resource": resource, "user": user})
}
