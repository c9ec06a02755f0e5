package flowlog

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubeyard/kubeyard/internal/firewall"
	"github.com/kubeyard/kubeyard/internal/logging"
)

// FirewallLogID is the log of firewall rules logging, URL-encoded as in
// logName.
const FirewallLogID = "compute.googleapis.com%2Ffirewall"

// LoggedRule is a firewall rule with logging on, as its entries describe
// it.
type LoggedRule struct {
	Name, VPC       string
	Priority        int64
	Deny, Ingress   bool
	Ranges          []string // source ranges (ingress) or destination ranges (egress)
	SourceTags      []string
	TargetTags      []string
	Protocols       []RuleProtocol
	ExcludeMetadata bool
}

// RuleProtocol is a protocol of a rule and its ports, as the rule gives
// them.
type RuleProtocol struct {
	Protocol string
	Ports    []string
}

// Firewall returns an entry for each connection a logging rule decided
// that no report before told, with what the rule did (ALLOWED, DENIED).
// The entry is the instance's the rule applies to: the receiver for an
// ingress rule, the sender for egress.
func (r *Reporter) Firewall(now time.Time, n Network, hits []firewall.Hit) []logging.Entry {
	r.init()
	seen := map[string]bool{}
	var out []logging.Entry
	for _, h := range hits {
		k := fmt.Sprintf("%d/%d/%s/%s", h.Rule, h.Protocol, h.Src, h.Dst)
		seen[k] = true
		rule, ok := n.Rules[h.Rule]
		if r.Decided[k] || !ok {
			continue
		}
		at, remote := n.instance(h.Src.Addr()), n.instance(h.Dst.Addr())
		if rule.Ingress {
			at, remote = remote, at
		}
		if at == nil {
			continue
		}
		sub, ok := n.Subnets[at.subnet()]
		if !ok {
			continue
		}
		r.Decided[k] = true
		out = append(out, firewallEntry(sub, at, remote, rule, h, now))
	}
	for k := range r.Decided {
		if !seen[k] {
			delete(r.Decided, k)
		}
	}
	return out
}

func firewallEntry(sub Subnet, at, remote *Instance, rule LoggedRule, h firewall.Hit, now time.Time) logging.Entry {
	disposition, action, direction, rangesKey := "ALLOWED", "ALLOW", "INGRESS", "source_range"
	if rule.Deny {
		disposition, action = "DENIED", "DENY"
	}
	if !rule.Ingress {
		direction, rangesKey = "EGRESS", "destination_range"
	}
	var ports []map[string]any
	for _, p := range rule.Protocols {
		info := map[string]any{"ip_protocol": strings.ToUpper(p.Protocol)}
		if len(p.Ports) > 0 {
			info["port_range"] = p.Ports
		}
		ports = append(ports, info)
	}
	details := map[string]any{"reference": "network:" + rule.VPC + "/firewall:" + rule.Name, "priority": rule.Priority,
		"action": action, "direction": direction, rangesKey: rule.Ranges, "ip_port_info": ports}
	if len(rule.SourceTags) > 0 {
		details["source_tag"] = rule.SourceTags
	}
	if len(rule.TargetTags) > 0 {
		details["target_tag"] = rule.TargetTags
	}
	payload := map[string]any{
		"connection": map[string]any{"src_ip": h.Src.Addr().String(), "src_port": h.Src.Port(),
			"dest_ip": h.Dst.Addr().String(), "dest_port": h.Dst.Port(), "protocol": h.Protocol},
		"disposition": disposition, "rule_details": details,
	}
	if !rule.ExcludeMetadata {
		payload["instance"], payload["vpc"] = at.details(), at.vpcDetails()
		if remote != nil {
			payload["remote_instance"], payload["remote_vpc"] = remote.details(), remote.vpcDetails()
		}
	}
	return logging.Entry{LogName: "projects/" + sub.Project + "/logs/" + FirewallLogID, Resource: sub.resource(at),
		Timestamp: now, Severity: "DEFAULT", JSONPayload: payload}
}
