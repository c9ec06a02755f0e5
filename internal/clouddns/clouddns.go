// Package clouddns is Cloud DNS as gcloud sees it: managed zones (public,
// or private to VPC networks) and their record sets, enough for the
// restricted.googleapis.com and gcr.io records of seeds/002. Every change is
// validated first, with the field named, and changes nothing when refused.
package clouddns

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"

	dns "google.golang.org/api/dns/v1"

	"github.com/kubeyard/kubeyard/internal/clock"
	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

// Config configures a Service.
type Config struct {
	Store store.KV
	Clock clock.Clock
	// NetworkExists says whether a project has a VPC network of that name.
	NetworkExists func(ctx context.Context, project, name string) bool
}

// Service keeps the managed zones.
type Service struct {
	cfg Config
	mu  sync.Mutex
}

// New returns a Service.
func New(cfg Config) *Service { return &Service{cfg: cfg} }

var (
	zoneNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	labelRE    = regexp.MustCompile(`^(\*|[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)$`)
)

// recordTypes are the record types kubeyard keeps.
var recordTypes = []string{"A", "AAAA", "CNAME", "TXT", "MX", "SRV", "PTR", "NS", "SOA"}

func zoneKey(project, name string) string { return "dns/zones/" + project + "/" + name }
func rrsetKey(project, zone, name, typ string) string {
	return "dns/rrsets/" + project + "/" + zone + "/" + name + "/" + typ
}

// checkDNSName checks an absolute domain name ("googleapis.com.").
func checkDNSName(field, name string) error {
	if !strings.HasSuffix(name, ".") || len(name) > 254 {
		return status.Invalid(field, "Invalid value for '%s': '%s'. A DNS name ends with a dot, such as googleapis.com.", field, name)
	}
	if name == "." {
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if !labelRE.MatchString(label) {
			return status.Invalid(field, "Invalid value for '%s': '%s'. '%s' is not a DNS label.", field, name, label)
		}
	}
	return nil
}

func newID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

// CreateZone creates a managed zone with its SOA and NS records.
func (s *Service) CreateZone(ctx context.Context, project string, z *dns.ManagedZone) (*dns.ManagedZone, error) {
	if !zoneNameRE.MatchString(z.Name) {
		return nil, status.Invalid("managedZone.name", "Invalid value for 'managedZone.name': '%s'. Lower-case letters, digits and dashes, starting with a letter.", z.Name)
	}
	if err := checkDNSName("managedZone.dnsName", z.DnsName); err != nil {
		return nil, err
	}
	if z.Visibility == "" {
		z.Visibility = "public"
	}
	nameServer := "ns-cloud-a1.googledomains.com."
	switch z.Visibility {
	case "public":
		if z.PrivateVisibilityConfig != nil && len(z.PrivateVisibilityConfig.Networks) > 0 {
			return nil, status.Invalid("managedZone.privateVisibilityConfig", "Networks apply only to private zones.")
		}
	case "private":
		nameServer = "ns-gcp-private.googledomains.com."
		if z.PrivateVisibilityConfig == nil {
			z.PrivateVisibilityConfig = &dns.ManagedZonePrivateVisibilityConfig{}
		}
		for i, n := range z.PrivateVisibilityConfig.Networks {
			name := n.NetworkUrl[strings.LastIndexByte(n.NetworkUrl, '/')+1:]
			if !s.cfg.NetworkExists(ctx, project, name) {
				return nil, status.Invalid(fmt.Sprintf("managedZone.privateVisibilityConfig.networks[%d].networkUrl", i), "The network '%s' does not exist in project %s.", n.NetworkUrl, project)
			}
			n.Kind = "dns#managedZonePrivateVisibilityConfigNetwork"
		}
		z.PrivateVisibilityConfig.Kind = "dns#managedZonePrivateVisibilityConfig"
	default:
		return nil, status.Invalid("managedZone.visibility", "Invalid value for 'managedZone.visibility': '%s'. public or private.", z.Visibility)
	}
	z.Kind, z.Id, z.CreationTime = "dns#managedZone", newID(), s.cfg.Clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	z.NameServers = []string{nameServer}
	soa := &dns.ResourceRecordSet{Kind: "dns#resourceRecordSet", Name: z.DnsName, Type: "SOA", Ttl: 21600,
		Rrdatas: []string{nameServer + " cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"}}
	ns := &dns.ResourceRecordSet{Kind: "dns#resourceRecordSet", Name: z.DnsName, Type: "NS", Ttl: 21600, Rrdatas: []string{nameServer}}
	err := s.cfg.Store.Commit(ctx,
		store.Write{Key: zoneKey(project, z.Name), Value: z, Revision: store.Absent},
		store.Write{Key: rrsetKey(project, z.Name, soa.Name, soa.Type), Value: soa, Revision: store.Any},
		store.Write{Key: rrsetKey(project, z.Name, ns.Name, ns.Type), Value: ns, Revision: store.Any})
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'entity.managedZone' named '%s' already exists", z.Name)
	}
	return z, err
}

// GetZone returns a managed zone.
func (s *Service) GetZone(ctx context.Context, project, name string) (*dns.ManagedZone, error) {
	z := new(dns.ManagedZone)
	if _, err := s.cfg.Store.Get(ctx, zoneKey(project, name), z); errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(status.NotFound, "The 'parameters.managedZone' resource named '%s' does not exist.", name)
	} else if err != nil {
		return nil, err
	}
	return z, nil
}

// ListZones returns the project's managed zones.
func (s *Service) ListZones(ctx context.Context, project string) ([]*dns.ManagedZone, error) {
	return store.ListAs[dns.ManagedZone](ctx, s.cfg.Store, "dns/zones/"+project+"/")
}

// DeleteZone deletes a zone that holds only its SOA and NS records.
func (s *Service) DeleteZone(ctx context.Context, project, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.GetZone(ctx, project, name)
	if err != nil {
		return err
	}
	sets, err := s.ListRecordSets(ctx, project, name)
	if err != nil {
		return err
	}
	writes := []store.Write{{Key: zoneKey(project, name), Revision: store.Any}}
	for _, rr := range sets {
		if rr.Name == z.DnsName && (rr.Type == "SOA" || rr.Type == "NS") {
			writes = append(writes, store.Write{Key: rrsetKey(project, name, rr.Name, rr.Type), Revision: store.Any})
			continue
		}
		return status.Errorf(status.FailedPrecondition, "The resource named '%s' cannot be deleted because it is not empty: it holds %s %s.", name, rr.Name, rr.Type).
			WithReason("dns.googleapis.com", "CONTAINER_NOT_EMPTY", nil)
	}
	changes, err := s.cfg.Store.List(ctx, "dns/changes/"+project+"/"+name+"/")
	if err != nil {
		return err
	}
	for _, c := range changes {
		writes = append(writes, store.Write{Key: c.Key, Revision: store.Any})
	}
	return s.cfg.Store.Commit(ctx, writes...)
}

// CreateRecordSet adds a record set to a zone.
func (s *Service) CreateRecordSet(ctx context.Context, project, zone string, rr *dns.ResourceRecordSet) (*dns.ResourceRecordSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.GetZone(ctx, project, zone)
	if err != nil {
		return nil, err
	}
	if err := checkRecordSet("entity.rrset", z, rr); err != nil {
		return nil, err
	}
	rr.Kind = "dns#resourceRecordSet"
	err = s.cfg.Store.Commit(ctx, store.Write{Key: rrsetKey(project, zone, rr.Name, rr.Type), Value: rr, Revision: store.Absent})
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'entity.rrset' named '%s (%s)' already exists", rr.Name, rr.Type)
	}
	return rr, err
}

// checkRecordSet checks a record set against its zone; prefix is the
// request field that holds it ("entity.rrset", "change.additions[0]").
func checkRecordSet(prefix string, z *dns.ManagedZone, rr *dns.ResourceRecordSet) error {
	if err := checkDNSName(prefix+".name", rr.Name); err != nil {
		return err
	}
	if rr.Name != z.DnsName && !strings.HasSuffix(rr.Name, "."+z.DnsName) {
		return status.Invalid(prefix+".name", "The record set name '%s' is not in zone %s (%s).", rr.Name, z.Name, z.DnsName)
	}
	if !slices.Contains(recordTypes, rr.Type) {
		return status.Invalid(prefix+".type", "Invalid value for '%s.type': '%s'. One of %v.", prefix, rr.Type, recordTypes)
	}
	if rr.Ttl < 0 || rr.Ttl > 604800 {
		return status.Invalid(prefix+".ttl", "Invalid value for '%s.ttl': '%d'. Between 0 and 604800 seconds.", prefix, rr.Ttl)
	}
	if len(rr.Rrdatas) == 0 {
		return status.Invalid(prefix+".rrdatas", "A record set needs at least one record.")
	}
	for i, d := range rr.Rrdatas {
		field := fmt.Sprintf("%s.rrdatas[%d]", prefix, i)
		switch rr.Type {
		case "A", "AAAA":
			ip, err := netip.ParseAddr(d)
			if err != nil || ip.Is4() != (rr.Type == "A") {
				return status.Invalid(field, "Invalid value for '%s': '%s'. An %s record holds an IPv%s address.", field, d, rr.Type, map[string]string{"A": "4", "AAAA": "6"}[rr.Type])
			}
		case "CNAME":
			if len(rr.Rrdatas) != 1 {
				return status.Invalid(prefix+".rrdatas", "A CNAME record set holds one name.")
			}
			if err := checkDNSName(field, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListRecordSets returns the record sets of a zone.
func (s *Service) ListRecordSets(ctx context.Context, project, zone string) ([]*dns.ResourceRecordSet, error) {
	if _, err := s.GetZone(ctx, project, zone); err != nil {
		return nil, err
	}
	return store.ListAs[dns.ResourceRecordSet](ctx, s.cfg.Store, "dns/rrsets/"+project+"/"+zone+"/")
}

// DeleteRecordSet removes a record set (not the zone's SOA or NS).
func (s *Service) DeleteRecordSet(ctx context.Context, project, zone, name, typ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.GetZone(ctx, project, zone)
	if err != nil {
		return err
	}
	if name == z.DnsName && (typ == "SOA" || typ == "NS") {
		return status.Errorf(status.FailedPrecondition, "The zone's own %s record cannot be deleted.", typ)
	}
	var rr dns.ResourceRecordSet
	rev, err := s.cfg.Store.Get(ctx, rrsetKey(project, zone, name, typ), &rr)
	if errors.Is(err, store.ErrNotFound) {
		return status.Errorf(status.NotFound, "The 'entity.rrset' resource named '%s (%s)' does not exist.", name, typ)
	} else if err != nil {
		return err
	}
	return s.cfg.Store.Commit(ctx, store.Write{Key: rrsetKey(project, zone, name, typ), Revision: rev})
}
