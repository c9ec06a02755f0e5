package vpc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/cidr"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

func routeKey(project, name string) string { return "vpc/routes/" + project + "/" + name }

// internetGateway is the only gateway a route can go to.
const internetGateway = "default-internet-gateway"

// defaultRoute is the route every new network gets: everything else to
// the internet gateway.
func (s *Service) defaultRoute(project string, n *compute.Network) *compute.Route {
	r := &compute.Route{
		Name: "default-route-" + fingerprint(), Description: "Default route to the Internet.",
		Network: n.SelfLink, DestRange: "0.0.0.0/0", Priority: 1000,
		NextHopGateway: s.cfg.BaseURL + "projects/" + project + "/global/gateways/" + internetGateway,
	}
	s.fillRoute(project, r)
	return r
}

func (s *Service) fillRoute(project string, r *compute.Route) {
	r.Kind, r.Id, r.CreationTimestamp = "compute#route", newID(), s.now()
	r.SelfLink = s.cfg.BaseURL + "projects/" + project + "/global/routes/" + r.Name
	r.RouteType = "STATIC"
}

// InsertRoute creates a static route in a network, to the internet gateway
// (seeds/002's restricted.googleapis.com route) or to an address in one of
// the network's subnetworks.
func (s *Service) InsertRoute(ctx context.Context, project string, r *compute.Route) (*compute.Operation, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	if err := checkName("resource.name", r.Name); err != nil {
		return nil, err
	}
	n, err := s.networkOf(ctx, project, "resource.network", r.Network)
	if err != nil {
		return nil, err
	}
	r.Network = n.SelfLink
	if _, err := cidr.Any("resource.destRange", r.DestRange); err != nil {
		return nil, err
	}
	if r.Priority < 0 || r.Priority > 65535 {
		return nil, status.Invalid("resource.priority", "Invalid value for field 'resource.priority': '%d'. Must be between 0 and 65535.", r.Priority)
	}
	switch {
	case r.NextHopGateway != "" && r.NextHopIp != "":
		return nil, status.Invalid("resource.nextHopIp", "A route has one next hop.")
	case r.NextHopGateway != "":
		if ResourceName(r.NextHopGateway) != internetGateway {
			return nil, status.Invalid("resource.nextHopGateway", "Invalid value for field 'resource.nextHopGateway': '%s'. The only gateway is %s.", r.NextHopGateway, internetGateway)
		}
		r.NextHopGateway = s.cfg.BaseURL + "projects/" + project + "/global/gateways/" + internetGateway
	case r.NextHopIp != "":
		ip, err := netip.ParseAddr(r.NextHopIp)
		if err != nil {
			return nil, status.Invalid("resource.nextHopIp", "Invalid value for field 'resource.nextHopIp': '%s'.", r.NextHopIp)
		}
		if !s.inNetwork(ctx, project, n, ip) {
			return nil, status.Invalid("resource.nextHopIp", "The next hop %s is not in a subnetwork of network %s.", r.NextHopIp, n.Name)
		}
	default:
		return nil, status.Invalid("resource.nextHopGateway", "A route needs a next hop: --next-hop-gateway default-internet-gateway or --next-hop-address.")
	}
	for i, tag := range r.Tags {
		if err := checkName(fmt.Sprintf("resource.tags[%d]", i), tag); err != nil {
			return nil, err
		}
	}
	s.fillRoute(project, r)
	err = s.cfg.Store.Commit(ctx, store.Write{Key: routeKey(project, r.Name), Value: r, Revision: store.Absent})
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'projects/%s/global/routes/%s' already exists", project, r.Name)
	} else if err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "insert", r.SelfLink, r.Id)
}

// inNetwork says whether ip is in a primary range of the network.
func (s *Service) inNetwork(ctx context.Context, project string, n *compute.Network, ip netip.Addr) bool {
	subs, err := s.subnetsOf(ctx, project, n.SelfLink)
	if err != nil {
		return false
	}
	for _, sub := range subs {
		if p, err := netip.ParsePrefix(sub.IpCidrRange); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}

// GetRoute returns a route.
func (s *Service) GetRoute(ctx context.Context, project, name string) (*compute.Route, error) {
	r, _, err := get[compute.Route](ctx, s.cfg.Store, routeKey(project, name), "projects/"+project+"/global/routes/"+name)
	return r, err
}

// ListRoutes returns the project's routes.
func (s *Service) ListRoutes(ctx context.Context, project string) ([]*compute.Route, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	return store.ListAs[compute.Route](ctx, s.cfg.Store, "vpc/routes/"+project+"/")
}

// DeleteRoute deletes a route.
func (s *Service) DeleteRoute(ctx context.Context, project, name string) (*compute.Operation, error) {
	r, rev, err := get[compute.Route](ctx, s.cfg.Store, routeKey(project, name), "projects/"+project+"/global/routes/"+name)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: routeKey(project, name), Revision: rev}); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "delete", r.SelfLink, r.Id)
}
