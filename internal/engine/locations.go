package engine

import (
	"strings"
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
