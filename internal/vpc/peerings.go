package vpc

import (
	"context"
	"fmt"
	"slices"
	"strings"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// PeeringChange is a change to a peering's route exchange; nil fields stay
// as they are.
type PeeringChange struct {
	ExportCustomRoutes, ImportCustomRoutes                         *bool
	ExportSubnetRoutesWithPublicIP, ImportSubnetRoutesWithPublicIP *bool
}

func (c PeeringChange) apply(p *compute.NetworkPeering) {
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.ExportCustomRoutes, c.ExportCustomRoutes)
	set(&p.ImportCustomRoutes, c.ImportCustomRoutes)
	set(&p.ExportSubnetRoutesWithPublicIp, c.ExportSubnetRoutesWithPublicIP)
	set(&p.ImportSubnetRoutesWithPublicIp, c.ImportSubnetRoutesWithPublicIP)
}

// NetworkRef splits a peering's network (as parseNetworkRef) into
// project and name.
func NetworkRef(project, ref string) (string, string, bool) {
	if i := strings.Index(ref, "projects/"); i > 0 {
		ref = ref[i:]
	}
	return parseNetworkRef(project, ref)
}

// parseNetworkRef splits "projects/P/global/networks/N" (or a URL ending
// so, or a bare name in project) into project and name.
func parseNetworkRef(project, ref string) (string, string, bool) {
	if !strings.Contains(ref, "/") {
		return project, ref, ref != ""
	}
	i := strings.Index(ref, "projects/")
	if i < 0 {
		return "", "", false
	}
	parts := strings.Split(ref[i:], "/")
	if len(parts) != 5 || parts[2] != "global" || parts[3] != "networks" {
		return "", "", false
	}
	return parts[1], parts[4], true
}

// AddPeering peers network with another. The peering is INACTIVE until the
// other network peers back, then both are ACTIVE. The two networks' ranges
// must not overlap.
func (s *Service) AddPeering(ctx context.Context, project, network string, p *compute.NetworkPeering, change PeeringChange) (*compute.Operation, error) {
	if err := checkName("networkPeering.name", p.Name); err != nil {
		return nil, err
	}
	peerProject, peerName, ok := parseNetworkRef(project, p.Network)
	if !ok {
		return nil, status.Invalid("networkPeering.network", "Invalid value for field 'networkPeering.network': '%s'. A network, such as projects/P/global/networks/N.", p.Network)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, rev, err := s.network(ctx, project, network)
	if err != nil {
		return nil, err
	}
	if peerProject == project && peerName == network {
		return nil, status.Invalid("networkPeering.network", "A network cannot peer with itself.")
	}
	peer, peerRev, err := s.network(ctx, peerProject, peerName)
	if err != nil {
		return nil, err
	}
	for _, q := range n.Peerings {
		if q.Name == p.Name {
			return nil, status.Errorf(status.AlreadyExists, "The peering '%s' already exists in network %s.", p.Name, network)
		}
		if q.Network == peer.SelfLink {
			return nil, status.Errorf(status.FailedPrecondition, "Network %s is already peered with %s (peering %s).", network, peerName, q.Name)
		}
	}
	if err := s.checkPeerRanges(ctx, project, n, peerProject, peer); err != nil {
		return nil, err
	}
	p.Network = peer.SelfLink
	p.ExchangeSubnetRoutes, p.AutoCreateRoutes = true, true
	change.apply(p)
	p.State, p.StateDetails = "INACTIVE", "["+s.now()+"] Waiting for peer network to connect."
	writes := []store.Write{}
	for _, q := range peer.Peerings {
		if q.Network == n.SelfLink {
			p.State, p.StateDetails = "ACTIVE", "["+s.now()+"] Connected."
			q.State, q.StateDetails = "ACTIVE", "["+s.now()+"] Connected."
			writes = append(writes, store.Write{Key: networkKey(peerProject, peerName), Value: peer, Revision: peerRev})
		}
	}
	p.StackType = "IPV4_ONLY"
	n.Peerings = append(n.Peerings, p)
	writes = append(writes, store.Write{Key: networkKey(project, network), Value: n, Revision: rev})
	if err := s.cfg.Store.Commit(ctx, writes...); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "addPeering", n.SelfLink, n.Id)
}

// checkPeerRanges refuses a peering between networks whose subnetwork
// ranges overlap.
func (s *Service) checkPeerRanges(ctx context.Context, project string, n *compute.Network, peerProject string, peer *compute.Network) error {
	mine, err := s.networkRanges(ctx, project, n.SelfLink, "")
	if err != nil {
		return err
	}
	theirs, err := s.networkRanges(ctx, peerProject, peer.SelfLink, "")
	if err != nil {
		return err
	}
	for _, r := range mine {
		if o, ok := FirstOverlap(r.Prefix, theirs); ok {
			return status.Errorf(status.FailedPrecondition, "An IP range in the peer network (%s, %s %s) overlaps with an IP range in the local network (%s, %s).", o.Prefix, o.Owner, peer.Name, r.Prefix, r.Owner)
		}
	}
	return nil
}

// UpdatePeering changes which routes a peering exchanges.
func (s *Service) UpdatePeering(ctx context.Context, project, network, name string, change PeeringChange) (*compute.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, rev, i, err := s.peering(ctx, project, network, name)
	if err != nil {
		return nil, err
	}
	change.apply(n.Peerings[i])
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: networkKey(project, network), Value: n, Revision: rev}); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "updatePeering", n.SelfLink, n.Id)
}

// peering finds a network's peering by name: the network, its revision and
// the peering's index.
func (s *Service) peering(ctx context.Context, project, network, name string) (*compute.Network, int64, int, error) {
	n, rev, err := s.network(ctx, project, network)
	if err != nil {
		return nil, 0, 0, err
	}
	i := slices.IndexFunc(n.Peerings, func(q *compute.NetworkPeering) bool { return q.Name == name })
	if i < 0 {
		return nil, 0, 0, status.Errorf(status.NotFound, "There is no peering '%s' in network %s.", name, network)
	}
	return n, rev, i, nil
}

// RemovePeering removes a peering; the other side becomes INACTIVE.
func (s *Service) RemovePeering(ctx context.Context, project, network, name string) (*compute.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, rev, i, err := s.peering(ctx, project, network, name)
	if err != nil {
		return nil, err
	}
	gone := n.Peerings[i]
	n.Peerings = slices.Delete(n.Peerings, i, i+1)
	writes := []store.Write{{Key: networkKey(project, network), Value: n, Revision: rev}}
	if peerProject, peerName, ok := parseNetworkRef(project, gone.Network); ok {
		if peer, peerRev, err := s.network(ctx, peerProject, peerName); err == nil {
			for _, q := range peer.Peerings {
				if q.Network == n.SelfLink {
					q.State, q.StateDetails = "INACTIVE", "["+s.now()+"] The peer network removed its side."
				}
			}
			writes = append(writes, store.Write{Key: networkKey(peerProject, peerName), Value: peer, Revision: peerRev})
		}
	}
	if err := s.cfg.Store.Commit(ctx, writes...); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "removePeering", n.SelfLink, n.Id)
}

// peeredRanges is used by subnetwork changes: a new range must not overlap
// the ranges of a peered network either.
func (s *Service) peeredRanges(ctx context.Context, project string, n *compute.Network) ([]Range, error) {
	var out []Range
	for _, q := range n.Peerings {
		peerProject, peerName, ok := parseNetworkRef(project, q.Network)
		if !ok {
			continue
		}
		rs, err := s.networkRanges(ctx, peerProject, peerName, "")
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			r.Owner = fmt.Sprintf("%s of peered network %s", r.Owner, peerName)
			out = append(out, r)
		}
	}
	return out, nil
}
