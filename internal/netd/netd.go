// Package netd is intra-node visibility as GKE's netd does it: policy
// routing in a node's network namespace that sends every packet its pods
// send to the VPC network, the ones for pods of the same node included;
// the network routes them back. There the firewall rules apply to them
// and flow logs see them. Traffic the node itself sends (iif lo) and what
// comes in from the network keep the main table, so the way back to a
// pod stays on the node.
//
// It is what the netd DaemonSet's program (images/netd) runs on each node
// while the cluster has intra-node visibility on.
package netd

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Image is the netd image kubeyard carries (images/netd), under the
// registry GKE's comes from.
const Image = "gke.gcr.io/netd:kubeyard"

// As netd numbers them: its own table, and the rules' priorities (below
// the main table's 32766).
const (
	Table          = 1
	localPriority  = 30001
	policyPriority = 30002
)

// uplink is the node's way to its network: the main table's default
// route.
func uplink(h *netlink.Handle) (netlink.Link, net.IP, error) {
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, fmt.Errorf("netd: routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			link, err := h.LinkByIndex(r.LinkIndex)
			if err != nil {
				return nil, nil, fmt.Errorf("netd: the default route's link: %w", err)
			}
			return link, r.Gw, nil
		}
	}
	return nil, nil, errors.New("netd: the node has no default route to its network")
}

// rules are netd's two: what the node sends itself keeps the main table;
// everything else that does not come from the network (what pods send)
// takes table 1.
func rules(dev string) []*netlink.Rule {
	local := netlink.NewRule()
	local.Priority, local.IifName, local.Table = localPriority, "lo", unix.RT_TABLE_MAIN
	pods := netlink.NewRule()
	pods.Priority, pods.IifName, pods.Invert, pods.Table = policyPriority, dev, true, Table
	return []*netlink.Rule{local, pods}
}

// route is table 1's only route: everything to the network's gateway.
func route(link netlink.Link, gw net.IP) *netlink.Route {
	return &netlink.Route{Table: Table, LinkIndex: link.Attrs().Index, Gw: gw, Flags: int(netlink.FLAG_ONLINK)}
}

// Apply turns intra-node visibility on in the namespace of h; applying
// it again changes nothing.
func Apply(h *netlink.Handle) error {
	link, gw, err := uplink(h)
	if err != nil {
		return err
	}
	if err := h.RouteReplace(route(link, gw)); err != nil {
		return fmt.Errorf("netd: table %d: %w", Table, err)
	}
	have, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("netd: rules: %w", err)
	}
	for _, want := range rules(link.Attrs().Name) {
		found := false
		for _, r := range have {
			if r.Priority != want.Priority {
				continue
			}
			if r.Table == want.Table && r.IifName == want.IifName && r.Invert == want.Invert {
				found = true
				continue
			}
			if err := h.RuleDel(&r); err != nil {
				return fmt.Errorf("netd: stale rule %d: %w", r.Priority, err)
			}
		}
		if !found {
			if err := h.RuleAdd(want); err != nil {
				return fmt.Errorf("netd: rule %d: %w", want.Priority, err)
			}
		}
	}
	return nil
}

// Applied says whether intra-node visibility is on in the namespace of h,
// as Apply leaves it.
func Applied(h *netlink.Handle) error {
	link, _, err := uplink(h)
	if err != nil {
		return err
	}
	have, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("netd: rules: %w", err)
	}
	for _, want := range rules(link.Attrs().Name) {
		if !containsRule(have, want) {
			return fmt.Errorf("netd: rule %d is missing", want.Priority)
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: Table}, netlink.RT_FILTER_TABLE)
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("netd: table %d has no route (%v)", Table, err)
	}
	return nil
}

func containsRule(have []netlink.Rule, want *netlink.Rule) bool {
	for _, r := range have {
		if r.Priority == want.Priority && r.Table == want.Table && r.IifName == want.IifName && r.Invert == want.Invert {
			return true
		}
	}
	return false
}

// Remove turns intra-node visibility off in the namespace of h: same-node
// traffic stays on the node again. Removing it twice is removing it once.
func Remove(h *netlink.Handle) error {
	have, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("netd: rules: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Priority == localPriority || r.Priority == policyPriority {
			if err := h.RuleDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("netd: rule %d: %w", r.Priority, err))
			}
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("netd: table %d: %w", Table, err))...)
	}
	for _, r := range routes {
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("netd: table %d: %w", Table, err))
		}
	}
	return errors.Join(errs...)
}
