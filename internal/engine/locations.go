package engine

import (
	"context"
	"maps"
	"slices"
	"strings"

	compute "google.golang.org/api/compute/v1"
)

// regions are the Google Cloud regions the engine accepts, with their zones'
// suffixes. A zonal cluster has one control-plane replica; a regional one
// has three, one per zone, as GKE does.
var regions = map[string][]string{
	"us-central1":          {"a", "b", "c", "f"},
	"us-east1":             {"b", "c", "d"},
	"us-east4":             {"a", "b", "c"},
	"us-west1":             {"a", "b", "c"},
	"us-west2":             {"a", "b", "c"},
	"europe-west1":         {"b", "c", "d"},
	"europe-west4":         {"a", "b", "c"},
	"asia-east1":           {"a", "b", "c"},
	"asia-northeast1":      {"a", "b", "c"},
	"australia-southeast1": {"a", "b", "c"},
}

// Regions lists the regions the engine accepts.
func Regions() []string {
	out := make([]string, 0, len(regions))
	for r := range regions {
		out = append(out, r)
	}
	return out
}

// Location is a parsed zone or region.
type Location struct {
	Name   string
	Region string
	Zone   string // empty for a region
}

// Regional reports whether the location is a region.
func (l Location) Regional() bool { return l.Zone == "" }

// Zones are the zones a cluster in l spans.
func (l Location) Zones() []string {
	if !l.Regional() {
		return []string{l.Zone}
	}
	var out []string
	for _, s := range regions[l.Region][:3] {
		out = append(out, l.Region+"-"+s)
	}
	return out
}

// ParseLocation parses a zone ("us-central1-a") or region ("us-central1").
func ParseLocation(name string) (Location, bool) {
	if _, ok := regions[name]; ok {
		return Location{Name: name, Region: name}, true
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return Location{}, false
	}
	region, suffix := name[:i], name[i+1:]
	for _, s := range regions[region] {
		if s == suffix {
			return Location{Name: name, Region: region, Zone: name}, true
		}
	}
	return Location{}, false
}

// ListRegions are the regions, as the Compute API lists them (the
// console's and `gcloud compute regions list`'s choices of location).
func (e *Engine) ListRegions(ctx context.Context, project string) ([]*compute.Region, error) {
	base := e.cfg.BaseURL + "/compute/v1/projects/" + project
	var out []*compute.Region
	for _, name := range slices.Sorted(maps.Keys(regions)) {
		rg := &compute.Region{Kind: "compute#region", Name: name, Status: "UP", SelfLink: base + "/regions/" + name}
		for _, s := range regions[name] {
			rg.Zones = append(rg.Zones, base+"/zones/"+name+"-"+s)
		}
		out = append(out, rg)
	}
	return out, nil
}

// ListZones are the zones of every region, as the Compute API lists them.
func (e *Engine) ListZones(ctx context.Context, project string) ([]*compute.Zone, error) {
	base := e.cfg.BaseURL + "/compute/v1/projects/" + project
	var out []*compute.Zone
	for _, name := range slices.Sorted(maps.Keys(regions)) {
		for _, s := range regions[name] {
			out = append(out, &compute.Zone{Kind: "compute#zone", Name: name + "-" + s, Status: "UP",
				Region: base + "/regions/" + name, SelfLink: base + "/zones/" + name + "-" + s})
		}
	}
	return out, nil
}
