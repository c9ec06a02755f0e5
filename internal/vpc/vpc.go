// Package vpc is the projects' VPC networks as Compute Engine presents them:
// networks (auto and custom mode, a default auto-mode network per project)
// and their subnetworks (primary and secondary ranges, private Google
// access, flow logs). Every change is validated first, with the field
// named, and changes nothing when refused. Records are the Compute API's
// own types, kept in the engine's store.
package vpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// Config configures a Service.
type Config struct {
	Store store.KV
	Clock clock.Clock
	// BaseURL is the Compute API's root as clients see it
	// ("http://127.0.0.1:8080/compute/v1/"): resources link to each other
	// with it.
	BaseURL string
	// Regions are the regions subnetworks may be in.
	Regions []string
	// InUse names a cluster that uses the network (or, with a subnetwork
	// name, the subnetwork), or "": such a resource cannot be deleted.
	InUse func(ctx context.Context, project, network, subnetwork string) (string, error)
	// DataplaneChanged, if set, is told when what a project's networks
	// do with packets changes: firewall rules, routes, peerings.
	DataplaneChanged func(project string)
}

// Service keeps the VPC networks.
type Service struct {
	cfg Config
	// mu serialises changes: a change checks every range of the network
	// against the new one before it commits.
	mu sync.Mutex
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.InUse == nil {
		cfg.InUse = func(context.Context, string, string, string) (string, error) { return "", nil }
	}
	return &Service{cfg: cfg}
}

// autoRanges are the primary ranges of an auto-mode network's subnetworks,
// one /20 per region, as Compute Engine assigns them.
var autoRanges = map[string]string{
	"us-central1":          "10.128.0.0/20",
	"europe-west1":         "10.132.0.0/20",
	"us-west1":             "10.138.0.0/20",
	"asia-east1":           "10.140.0.0/20",
	"us-east1":             "10.142.0.0/20",
	"asia-northeast1":      "10.146.0.0/20",
	"us-east4":             "10.150.0.0/20",
	"australia-southeast1": "10.152.0.0/20",
	"europe-west4":         "10.164.0.0/20",
	"us-west2":             "10.168.0.0/20",
}

// AutoRange is the primary range of an auto-mode subnetwork in region.
func AutoRange(region string) (string, bool) {
	r, ok := autoRanges[region]
	return r, ok
}

var nameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkName checks a resource name against Compute Engine's rule.
func checkName(field, name string) error {
	if !nameRE.MatchString(name) {
		return status.Invalid(field, "Invalid value for field '%s': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", field, name)
	}
	return nil
}

func networkKey(project, name string) string { return "vpc/networks/" + project + "/" + name }
func subnetKey(project, region, name string) string {
	return "vpc/subnetworks/" + project + "/" + region + "/" + name
}
func operationKey(project, scope, name string) string {
	return "vpc/operations/" + project + "/" + scope + "/" + name
}

// NetworkURL is the self link of a network.
func (s *Service) NetworkURL(project, name string) string {
	return s.cfg.BaseURL + "projects/" + project + "/global/networks/" + name
}

// SubnetURL is the self link of a subnetwork.
func (s *Service) SubnetURL(project, region, name string) string {
	return s.cfg.BaseURL + "projects/" + project + "/regions/" + region + "/subnetworks/" + name
}

func (s *Service) regionURL(project, region string) string {
	return s.cfg.BaseURL + "projects/" + project + "/regions/" + region
}

// ResourceName is the resource name at the end of a URL or partial path
// ("vpc1", "global/networks/vpc1", "https://.../networks/vpc1").
func ResourceName(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

// networkPath and subnetPath are the resources' paths as errors name them.
func networkPath(project, name string) string {
	return "projects/" + project + "/global/networks/" + name
}
func subnetPath(project, region, name string) string {
	return "projects/" + project + "/regions/" + region + "/subnetworks/" + name
}

// network reads a network record with its revision.
func (s *Service) network(ctx context.Context, project, name string) (*compute.Network, int64, error) {
	return get[compute.Network](ctx, s.cfg.Store, networkKey(project, name), networkPath(project, name))
}

// networkOf resolves the network a new resource refers to; field names the
// reference when it is missing.
func (s *Service) networkOf(ctx context.Context, project, field, ref string) (*compute.Network, error) {
	if ref == "" {
		return nil, status.Invalid(field, "Invalid value for field '%s': ''. The resource needs a network.", field)
	}
	return s.GetNetwork(ctx, project, ResourceName(ref))
}

func (s *Service) now() string {
	return s.cfg.Clock.Now().UTC().Format("2006-01-02T15:04:05.000-07:00")
}

func newID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

func fingerprint() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notFound is Compute Engine's 404 for a resource path.
func notFound(path string) error {
	return status.Errorf(status.NotFound, "The resource '%s' was not found", path)
}

// get reads one record.
func get[T any](ctx context.Context, st store.KV, key, path string) (*T, int64, error) {
	v := new(T)
	rev, err := st.Get(ctx, key, v)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, notFound(path)
	}
	return v, rev, err
}

// ensureDefault creates the project's default auto-mode network the first
// time the project is seen, as a new project has one.
func (s *Service) ensureDefault(ctx context.Context, project string) error {
	marker := "vpc/projects/" + project
	var seen bool
	if _, err := s.cfg.Store.Get(ctx, marker, &seen); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	net := &compute.Network{Name: "default", Description: "Default network for the project", AutoCreateSubnetworks: true,
		RoutingConfig: &compute.NetworkRoutingConfig{RoutingMode: "REGIONAL"}}
	writes, err := s.networkWrites(project, net)
	if err != nil {
		return err
	}
	for _, fw := range defaultFirewalls(net.SelfLink) {
		fw.Kind, fw.Id, fw.CreationTimestamp = "compute#firewall", newID(), s.now()
		fw.SelfLink = s.cfg.BaseURL + "projects/" + project + "/global/firewalls/" + fw.Name
		writes = append(writes, store.Write{Key: firewallKey(project, fw.Name), Value: fw, Revision: store.Absent})
	}
	err = s.cfg.Store.Commit(ctx, append(writes, store.Write{Key: marker, Value: true, Revision: store.Absent})...)
	if errors.Is(err, store.ErrConflict) {
		return nil // another request made it
	}
	return err
}

// networkWrites fills in a new network (and, in auto mode, its
// subnetworks) and returns the writes that store them.
func (s *Service) networkWrites(project string, n *compute.Network) ([]store.Write, error) {
	n.Kind, n.Id, n.CreationTimestamp = "compute#network", newID(), s.now()
	n.SelfLink = s.NetworkURL(project, n.Name)
	n.SelfLinkWithId = s.cfg.BaseURL + fmt.Sprintf("projects/%s/global/networks/%d", project, n.Id)
	if n.Mtu == 0 {
		n.Mtu = 1460
	}
	n.NetworkFirewallPolicyEnforcementOrder = "AFTER_CLASSIC_FIREWALL"
	var writes []store.Write
	if n.AutoCreateSubnetworks {
		regions := slices.Clone(s.cfg.Regions)
		sort.Strings(regions)
		for _, region := range regions {
			cidr, ok := autoRanges[region]
			if !ok {
				continue
			}
			sub := &compute.Subnetwork{Name: n.Name, IpCidrRange: cidr, Network: n.SelfLink}
			s.fillSubnet(project, region, sub)
			n.Subnetworks = append(n.Subnetworks, sub.SelfLink)
			writes = append(writes, store.Write{Key: subnetKey(project, region, n.Name), Value: sub, Revision: store.Absent})
		}
	}
	route := s.defaultRoute(project, n)
	writes = append(writes, store.Write{Key: routeKey(project, route.Name), Value: route, Revision: store.Absent})
	return append(writes, store.Write{Key: networkKey(project, n.Name), Value: n, Revision: store.Absent}), nil
}

// defaultFirewalls are the rules a project's default network comes with.
func defaultFirewalls(network string) []*compute.Firewall {
	rule := func(name, desc string, source string, allowed ...*compute.FirewallAllowed) *compute.Firewall {
		return &compute.Firewall{Name: name, Description: desc, Network: network, Priority: 65534, Direction: "INGRESS",
			SourceRanges: []string{source}, Allowed: allowed}
	}
	return []*compute.Firewall{
		rule("default-allow-internal", "Allow internal traffic on the default network", "10.128.0.0/9",
			&compute.FirewallAllowed{IPProtocol: "tcp", Ports: []string{"0-65535"}},
			&compute.FirewallAllowed{IPProtocol: "udp", Ports: []string{"0-65535"}},
			&compute.FirewallAllowed{IPProtocol: "icmp"}),
		rule("default-allow-ssh", "Allow SSH from anywhere", "0.0.0.0/0", &compute.FirewallAllowed{IPProtocol: "tcp", Ports: []string{"22"}}),
		rule("default-allow-rdp", "Allow RDP from anywhere", "0.0.0.0/0", &compute.FirewallAllowed{IPProtocol: "tcp", Ports: []string{"3389"}}),
		rule("default-allow-icmp", "Allow ICMP from anywhere", "0.0.0.0/0", &compute.FirewallAllowed{IPProtocol: "icmp"}),
	}
}

func (s *Service) fillSubnet(project, region string, sub *compute.Subnetwork) {
	sub.Kind, sub.Id, sub.CreationTimestamp = "compute#subnetwork", newID(), s.now()
	sub.Region = s.regionURL(project, region)
	sub.SelfLink = s.SubnetURL(project, region, sub.Name)
	sub.GatewayAddress = gateway(sub.IpCidrRange)
	sub.Fingerprint = fingerprint()
	sub.StackType = "IPV4_ONLY"
	sub.Purpose = "PRIVATE"
	if sub.SecondaryIpRanges == nil {
		sub.SecondaryIpRanges = []*compute.SubnetworkSecondaryRange{}
	}
}

// operation records a finished operation on target and returns it: every
// change is made before the call returns, so operations are born DONE.
func (s *Service) operation(ctx context.Context, project, region, kind, targetLink string, targetID uint64) (*compute.Operation, error) {
	now := s.now()
	name := fmt.Sprintf("operation-%d-%s", s.cfg.Clock.Now().UnixMilli(), fingerprint()[:8])
	scope, base := "global", s.cfg.BaseURL+"projects/"+project+"/global/operations/"
	op := &compute.Operation{
		Kind: "compute#operation", Id: newID(), Name: name, OperationType: kind,
		TargetLink: targetLink, TargetId: targetID, Status: "DONE", Progress: 100,
		InsertTime: now, StartTime: now, EndTime: now, User: "kubeyard",
	}
	if region != "" {
		scope, base = region, s.regionURL(project, region)+"/operations/"
		op.Region = s.regionURL(project, region)
	}
	op.SelfLink = base + name
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: operationKey(project, scope, name), Value: op, Revision: store.Absent}); err != nil {
		return nil, err
	}
	return op, nil
}

// GetOperation returns an operation; scope is "global" or a region.
func (s *Service) GetOperation(ctx context.Context, project, scope, name string) (*compute.Operation, error) {
	path := "projects/" + project + "/global/operations/" + name
	if scope != "global" {
		path = "projects/" + project + "/regions/" + scope + "/operations/" + name
	}
	op, _, err := get[compute.Operation](ctx, s.cfg.Store, operationKey(project, scope, name), path)
	return op, err
}

// explicitNetwork and explicitSubnet make the booleans Compute Engine always
// shows appear even when false (the JSON encoding drops zero values, and
// the store does not keep which were forced).
func explicitNetwork(n *compute.Network) *compute.Network {
	if n != nil {
		n.ForceSendFields = append(n.ForceSendFields, "AutoCreateSubnetworks")
		for _, p := range n.Peerings {
			p.ForceSendFields = append(p.ForceSendFields, "ExportCustomRoutes", "ImportCustomRoutes")
		}
	}
	return n
}

func explicitSubnet(sub *compute.Subnetwork) *compute.Subnetwork {
	if sub != nil {
		sub.ForceSendFields = append(sub.ForceSendFields, "PrivateIpGoogleAccess")
	}
	return sub
}
