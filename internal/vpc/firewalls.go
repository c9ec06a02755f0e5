package vpc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	compute "google.golang.org/api/compute/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

func firewallKey(project, name string) string { return "vpc/firewalls/" + project + "/" + name }

// protocols are the protocol names a firewall rule takes (or a number
// 0-255); only these have ports.
var (
	protocols     = []string{"tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"}
	portProtocols = []string{"tcp", "udp", "sctp"}
)

// InsertFirewall creates a firewall rule: ingress or egress, allow or deny,
// with a priority (default 1000; 0 is the highest), source and destination
// ranges, source and target tags. priority is nil when not given.
func (s *Service) InsertFirewall(ctx context.Context, project string, fw *compute.Firewall, priority *int64) (*compute.Operation, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	if err := checkName("resource.name", fw.Name); err != nil {
		return nil, err
	}
	if fw.Network == "" {
		fw.Network = "default"
	}
	n, err := s.networkOf(ctx, project, "resource.network", fw.Network)
	if err != nil {
		return nil, err
	}
	fw.Network = n.SelfLink
	fw.Priority = 1000
	if priority != nil {
		if *priority < 0 || *priority > 65535 {
			return nil, status.Invalid("resource.priority", "Invalid value for field 'resource.priority': '%d'. Must be between 0 and 65535.", *priority)
		}
		fw.Priority = *priority
	}
	if err := checkFirewall(fw); err != nil {
		return nil, err
	}
	fw.Kind, fw.Id, fw.CreationTimestamp = "compute#firewall", newID(), s.now()
	fw.SelfLink = s.cfg.BaseURL + "projects/" + project + "/global/firewalls/" + fw.Name
	err = s.cfg.Store.Commit(ctx, store.Write{Key: firewallKey(project, fw.Name), Value: fw, Revision: store.Absent})
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(status.AlreadyExists, "The resource 'projects/%s/global/firewalls/%s' already exists", project, fw.Name)
	} else if err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "insert", fw.SelfLink, fw.Id)
}

// checkFirewall validates a rule and fills in Compute Engine's defaults.
func checkFirewall(fw *compute.Firewall) error {
	if fw.Direction == "" {
		fw.Direction = "INGRESS"
	}
	if fw.Direction != "INGRESS" && fw.Direction != "EGRESS" {
		return status.Invalid("resource.direction", "Invalid value for field 'resource.direction': '%s'. INGRESS or EGRESS.", fw.Direction)
	}
	switch {
	case len(fw.Allowed) > 0 && len(fw.Denied) > 0:
		return status.Invalid("resource.denied", "A firewall rule either allows or denies, not both.")
	case len(fw.Allowed) == 0 && len(fw.Denied) == 0:
		return status.Invalid("resource.allowed", "A firewall rule must allow or deny at least one protocol.")
	}
	for i, a := range fw.Allowed {
		if err := checkProtocol(fmt.Sprintf("resource.allowed[%d]", i), a.IPProtocol, a.Ports); err != nil {
			return err
		}
	}
	for i, d := range fw.Denied {
		if err := checkProtocol(fmt.Sprintf("resource.denied[%d]", i), d.IPProtocol, d.Ports); err != nil {
			return err
		}
	}
	if fw.Direction == "EGRESS" {
		if len(fw.SourceTags) > 0 {
			return status.Invalid("resource.sourceTags", "Source tags apply only to INGRESS rules.")
		}
		if len(fw.DestinationRanges) == 0 {
			fw.DestinationRanges = []string{"0.0.0.0/0"}
		}
	} else if len(fw.SourceRanges) == 0 && len(fw.SourceTags) == 0 {
		fw.SourceRanges = []string{"0.0.0.0/0"}
	}
	for field, ranges := range map[string][]string{"resource.sourceRanges": fw.SourceRanges, "resource.destinationRanges": fw.DestinationRanges} {
		for i, r := range ranges {
			if _, err := netip.ParsePrefix(r); err != nil {
				if _, err := netip.ParseAddr(r); err != nil {
					return status.Invalid(fmt.Sprintf("%s[%d]", field, i), "Invalid value for field '%s[%d]': '%s'. Must be an IP address or a range in CIDR notation.", field, i, r)
				}
			}
		}
	}
	for field, tags := range map[string][]string{"resource.sourceTags": fw.SourceTags, "resource.targetTags": fw.TargetTags} {
		for i, tag := range tags {
			if err := checkName(fmt.Sprintf("%s[%d]", field, i), tag); err != nil {
				return err
			}
		}
	}
	if fw.LogConfig != nil && fw.LogConfig.Enable && fw.LogConfig.Metadata == "" {
		fw.LogConfig.Metadata = "INCLUDE_ALL_METADATA"
	}
	return nil
}

func checkProtocol(field, protocol string, ports []string) error {
	if n, err := strconv.Atoi(protocol); err == nil {
		if n < 0 || n > 255 {
			return status.Invalid(field+".IPProtocol", "Invalid value for field '%s.IPProtocol': '%s'. A protocol name or a number from 0 to 255.", field, protocol)
		}
	} else if !slices.Contains(protocols, protocol) {
		return status.Invalid(field+".IPProtocol", "Invalid value for field '%s.IPProtocol': '%s'. One of %v, or a number from 0 to 255.", field, protocol, protocols)
	}
	if len(ports) > 0 && !slices.Contains(portProtocols, protocol) {
		return status.Invalid(field+".ports", "Invalid value for field '%s.ports': ports apply only to tcp, udp and sctp, not %s.", field, protocol)
	}
	for i, p := range ports {
		lo, hi, isRange := strings.Cut(p, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b > 65535 || a > b {
			return status.Invalid(fmt.Sprintf("%s.ports[%d]", field, i), "Invalid value for field '%s.ports[%d]': '%s'. A port or a range such as 8000-9000, from 0 to 65535.", field, i, p)
		}
	}
	return nil
}

// GetFirewall returns a firewall rule.
func (s *Service) GetFirewall(ctx context.Context, project, name string) (*compute.Firewall, error) {
	fw, _, err := get[compute.Firewall](ctx, s.cfg.Store, firewallKey(project, name), "projects/"+project+"/global/firewalls/"+name)
	return explicitFirewall(fw), err
}

// explicitFirewall shows priority 0 (the highest) and disabled: false,
// which the JSON encoding would drop.
func explicitFirewall(fw *compute.Firewall) *compute.Firewall {
	if fw != nil {
		fw.ForceSendFields = append(fw.ForceSendFields, "Priority", "Disabled")
	}
	return fw
}

// ListFirewalls returns the project's firewall rules.
func (s *Service) ListFirewalls(ctx context.Context, project string) ([]*compute.Firewall, error) {
	if err := s.ensureDefault(ctx, project); err != nil {
		return nil, err
	}
	fws, err := store.ListAs[compute.Firewall](ctx, s.cfg.Store, "vpc/firewalls/"+project+"/")
	for _, fw := range fws {
		explicitFirewall(fw)
	}
	return fws, err
}

// DeleteFirewall deletes a firewall rule.
func (s *Service) DeleteFirewall(ctx context.Context, project, name string) (*compute.Operation, error) {
	fw, rev, err := get[compute.Firewall](ctx, s.cfg.Store, firewallKey(project, name), "projects/"+project+"/global/firewalls/"+name)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: firewallKey(project, name), Revision: rev}); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "delete", fw.SelfLink, fw.Id)
}

// FirewallPatch is a change to a firewall rule, as a PATCH body gives it:
// nil fields stay as they are. Name, network and direction are what a
// client that read the rule sends back; a patch does not change them.
type FirewallPatch struct {
	Name              string                      `json:"name"`
	Network           string                      `json:"network"`
	Direction         string                      `json:"direction"`
	Description       *string                     `json:"description"`
	Priority          *int64                      `json:"priority"`
	Disabled          *bool                       `json:"disabled"`
	Allowed           *[]*compute.FirewallAllowed `json:"allowed"`
	Denied            *[]*compute.FirewallDenied  `json:"denied"`
	SourceRanges      *[]string                   `json:"sourceRanges"`
	DestinationRanges *[]string                   `json:"destinationRanges"`
	SourceTags        *[]string                   `json:"sourceTags"`
	TargetTags        *[]string                   `json:"targetTags"`
	LogConfig         *compute.FirewallLogConfig  `json:"logConfig"`
}

// PatchFirewall changes a firewall rule (gcloud compute firewall-rules
// update). The result is checked as a new rule would be.
func (s *Service) PatchFirewall(ctx context.Context, project, name string, p FirewallPatch) (*compute.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw, rev, err := get[compute.Firewall](ctx, s.cfg.Store, firewallKey(project, name), "projects/"+project+"/global/firewalls/"+name)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Name != "" && p.Name != fw.Name:
		return nil, status.Invalid("resource.name", "A firewall rule cannot be renamed.")
	case p.Network != "" && ResourceName(p.Network) != ResourceName(fw.Network):
		return nil, status.Invalid("resource.network", "A firewall rule cannot move to another network.")
	case p.Direction != "" && p.Direction != fw.Direction:
		return nil, status.Invalid("resource.direction", "A firewall rule's direction cannot change; create another rule.")
	}
	if p.Priority != nil {
		if *p.Priority < 0 || *p.Priority > 65535 {
			return nil, status.Invalid("resource.priority", "Invalid value for field 'resource.priority': '%d'. Must be between 0 and 65535.", *p.Priority)
		}
		fw.Priority = *p.Priority
	}
	set := func(dst *[]string, v *[]string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&fw.SourceRanges, p.SourceRanges)
	set(&fw.DestinationRanges, p.DestinationRanges)
	set(&fw.SourceTags, p.SourceTags)
	set(&fw.TargetTags, p.TargetTags)
	if p.Allowed != nil {
		fw.Allowed = *p.Allowed
	}
	if p.Denied != nil {
		fw.Denied = *p.Denied
	}
	if p.Description != nil {
		fw.Description = *p.Description
	}
	if p.Disabled != nil {
		fw.Disabled = *p.Disabled
	}
	if p.LogConfig != nil {
		fw.LogConfig = p.LogConfig
	}
	if err := checkFirewall(fw); err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Commit(ctx, store.Write{Key: firewallKey(project, name), Value: fw, Revision: rev}); err != nil {
		return nil, err
	}
	s.dataplaneChanged(project)
	return s.operation(ctx, project, "", "patch", fw.SelfLink, fw.Id)
}

func (s *Service) dataplaneChanged(project string) {
	if s.cfg.DataplaneChanged != nil {
		s.cfg.DataplaneChanged(project)
	}
}
