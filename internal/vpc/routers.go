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

func routerKey(project, region, name string) string {
	return "vpc/routers/" + project + "/" + region + "/" + name
}

// privateASN says whether asn is a private BGP ASN, which Cloud Router
// requires (16-bit 64512-65534, or 32-bit 4200000000-4294967294).
func privateASN(asn int64) bool {
	return (asn >= 64512 && asn <= 65534) || (asn >= 4200000000 && asn <= 4294967294)
}

// checkRouterBGP validates a router's BGP settings: a private ASN, the
// advertise mode, and in CUSTOM mode the groups and ranges it advertises.
// defaultKeepalive is Cloud Router's BGP keepalive interval, in seconds:
// the only one kubeyard's routers have (they speak BGP to no one).
const defaultKeepalive = 20

func checkRouterBGP(bgp *compute.RouterBgp) error {
	if bgp == nil {
		return status.Invalid("resource.bgp.asn", "A router needs a BGP ASN (--asn).")
	}
	if !privateASN(bgp.Asn) {
		return status.Invalid("resource.bgp.asn", "Invalid value for field 'resource.bgp.asn': '%d'. A private ASN: 64512-65534 or 4200000000-4294967294.", bgp.Asn)
	}
	if bgp.AdvertiseMode == "" {
		bgp.AdvertiseMode = "DEFAULT"
	}
	if bgp.KeepaliveInterval == 0 {
		bgp.KeepaliveInterval = defaultKeepalive // as Compute Engine reports it
	}
	switch bgp.AdvertiseMode {
	case "DEFAULT":
		if len(bgp.AdvertisedGroups) > 0 || len(bgp.AdvertisedIpRanges) > 0 {
			return status.Invalid("resource.bgp.advertisedIpRanges", "Advertised groups and ranges need --advertisement-mode custom.")
		}
	case "CUSTOM":
	default:
		return status.Invalid("resource.bgp.advertiseMode", "Invalid value for field 'resource.bgp.advertiseMode': '%s'. DEFAULT or CUSTOM.", bgp.AdvertiseMode)
	}
	for i, g := range bgp.AdvertisedGroups {
		if g != "ALL_SUBNETS" {
			return status.Invalid(fmt.Sprintf("resource.bgp.advertisedGroups[%d]", i), "Invalid value for field 'resource.bgp.advertisedGroups[%d]': '%s'. ALL_SUBNETS.", i, g)
		}
	}
	seen := map[netip.Prefix]bool{}
	for i, r := range bgp.AdvertisedIpRanges {
		field := fmt.Sprintf("resource.bgp.advertisedIpRanges[%d].range", i)
		p, err := cidr.Any(field, r.Range)
		if err != nil {
			return err
		}
		if seen[p] {
			return status.Invalid(field, "The range %s is advertised twice.", r.Range)
		}
		seen[p] = true
	}
	return nil
}

// InsertRouter creates a Cloud Router in a region of a network.
func (s *Service) InsertRouter(ctx context.Context, project, region string, r *compute.Router) (*compute.Operation, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	if err := s.checkRegion(region); err != nil {
		return nil, err
	}
	if err := checkName("resource.name", r.Name); err != nil {
		return nil, err
	}
	n, err := s.networkOf(ctx, project, "resource.network", r.Network)
	if err != nil {
		return nil, err
	}
	if err := checkRouterBGP(r.Bgp); err != nil {
		return nil, err
	}
	r.Network = n.SelfLink
	r.Kind, r.Id, r.CreationTimestamp = "compute#router", newID(), s.now()
	r.Region = s.regionURL(project, region)
	r.SelfLink = r.Region + "/routers/" + r.Name
	err = s.cfg.Store.Commit(ctx, store.Write{Key: routerKey(project, region, r.Name), Value: r, Revision: store.Absent})
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'projects/%s/regions/%s/routers/%s' already exists", project, region, r.Name)
	} else if err != nil {
		return nil, err
	}
	return s.operation(ctx, project, region, "insert", r.SelfLink, r.Id)
}

// GetRouter returns a router.
func (s *Service) GetRouter(ctx context.Context, project, region, name string) (*compute.Router, error) {
	r, _, err := get[compute.Router](ctx, s.cfg.Store, routerKey(project, region, name), "projects/"+project+"/regions/"+region+"/routers/"+name)
	return r, err
}

// ListRouters returns the project's routers in region, or everywhere.
func (s *Service) ListRouters(ctx context.Context, project, region string) ([]*compute.Router, error) {
	prefix := "vpc/routers/" + project + "/"
	if region != "" {
		if err := s.checkRegion(region); err != nil {
			return nil, err
		}
		prefix += region + "/"
	}
	return store.ListAs[compute.Router](ctx, s.cfg.Store, prefix)
}

// PatchRouter changes a router's BGP settings (what it advertises).
func (s *Service) PatchRouter(ctx context.Context, project, region, name string, bgp *compute.RouterBgp) (*compute.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, rev, err := get[compute.Router](ctx, s.cfg.Store, routerKey(project, region, name), "projects/"+project+"/regions/"+region+"/routers/"+name)
	if err != nil {
		return nil, err
	}
	if bgp != nil {
		if bgp.Asn == 0 {
			bgp.Asn = r.Bgp.Asn
		}
		if err := checkRouterBGP(bgp); err != nil {
			return nil, err
		}
		r.Bgp = bgp
	}
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: routerKey(project, region, name), Value: r, Revision: rev}); err != nil {
		return nil, err
	}
	return s.operation(ctx, project, region, "patch", r.SelfLink, r.Id)
}

// DeleteRouter deletes a router.
func (s *Service) DeleteRouter(ctx context.Context, project, region, name string) (*compute.Operation, error) {
	r, rev, err := get[compute.Router](ctx, s.cfg.Store, routerKey(project, region, name), "projects/"+project+"/regions/"+region+"/routers/"+name)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: routerKey(project, region, name), Revision: rev}); err != nil {
		return nil, err
	}
	return s.operation(ctx, project, region, "delete", r.SelfLink, r.Id)
}
