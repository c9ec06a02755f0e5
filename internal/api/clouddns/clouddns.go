// Package clouddns serves the slice of Cloud DNS (dns/v1) that private GKE
// clusters need: managed zones and record sets. Handlers only decode, check
// the fields against what the engine honours, call the model and encode.
package clouddns

import (
	"net/http"
	"slices"

	dns "google.golang.org/api/dns/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/clouddns"
)

// Request fields the engine honours; everything else is refused by name.
var (
	zoneFields   = codec.Fields{"name", "dnsName", "description", "visibility", "privateVisibilityConfig.networks[].networkUrl", "kind"}
	rrsetFields  = codec.Fields{"name", "type", "ttl", "rrdatas", "kind"}
	changeFields = codec.Fields{"kind", "additions[].name", "additions[].type", "additions[].ttl", "additions[].rrdatas", "additions[].kind",
		"deletions[].name", "deletions[].type", "deletions[].ttl", "deletions[].rrdatas", "deletions[].kind"}
)

const root = "/dns/v1/projects/{project}/managedZones"

// Register adds the Cloud DNS routes to mux.
func Register(mux *http.ServeMux, d *clouddns.Service) {
	h := func(pattern string, f func(r *http.Request) (any, error)) { codec.HandleJSON(mux, pattern, f) }
	p := func(r *http.Request) string { return r.PathValue("project") }

	h("POST "+root, func(r *http.Request) (any, error) {
		var z dns.ManagedZone
		if err := codec.Decode(r, zoneFields, &z); err != nil {
			return nil, err
		}
		return d.CreateZone(r.Context(), p(r), &z)
	})
	h("GET "+root, func(r *http.Request) (any, error) {
		zones, err := d.ListZones(r.Context(), p(r))
		return &dns.ManagedZonesListResponse{Kind: "dns#managedZonesListResponse", ManagedZones: zones}, err
	})
	h("GET "+root+"/{zone}", func(r *http.Request) (any, error) {
		return d.GetZone(r.Context(), p(r), r.PathValue("zone"))
	})
	h("DELETE "+root+"/{zone}", func(r *http.Request) (any, error) {
		return struct{}{}, d.DeleteZone(r.Context(), p(r), r.PathValue("zone"))
	})
	h("POST "+root+"/{zone}/rrsets", func(r *http.Request) (any, error) {
		var rr dns.ResourceRecordSet
		if err := codec.Decode(r, rrsetFields, &rr); err != nil {
			return nil, err
		}
		return d.CreateRecordSet(r.Context(), p(r), r.PathValue("zone"), &rr)
	})
	h("GET "+root+"/{zone}/rrsets", func(r *http.Request) (any, error) {
		sets, err := d.ListRecordSets(r.Context(), p(r), r.PathValue("zone"))
		if err != nil {
			return nil, err
		}
		name, typ := r.URL.Query().Get("name"), r.URL.Query().Get("type")
		out := sets[:0:0]
		for _, rr := range sets {
			if (name == "" || rr.Name == name) && (typ == "" || rr.Type == typ) {
				out = append(out, rr)
			}
		}
		return &dns.ResourceRecordSetsListResponse{Kind: "dns#resourceRecordSetsListResponse", Rrsets: out}, nil
	})
	h("POST "+root+"/{zone}/changes", func(r *http.Request) (any, error) {
		var c dns.Change
		if err := codec.Decode(r, changeFields, &c); err != nil {
			return nil, err
		}
		return d.ApplyChange(r.Context(), p(r), r.PathValue("zone"), &c)
	})
	h("GET "+root+"/{zone}/changes", func(r *http.Request) (any, error) {
		changes, err := d.ListChanges(r.Context(), p(r), r.PathValue("zone"))
		if err != nil {
			return nil, err
		}
		if r.URL.Query().Get("sortOrder") == "descending" {
			slices.Reverse(changes)
		}
		return &dns.ChangesListResponse{Kind: "dns#changesListResponse", Changes: changes}, nil
	})
	h("GET "+root+"/{zone}/changes/{change}", func(r *http.Request) (any, error) {
		return d.GetChange(r.Context(), p(r), r.PathValue("zone"), r.PathValue("change"))
	})
	h("DELETE "+root+"/{zone}/rrsets/{name}/{type}", func(r *http.Request) (any, error) {
		return struct{}{}, d.DeleteRecordSet(r.Context(), p(r), r.PathValue("zone"), r.PathValue("name"), r.PathValue("type"))
	})
}
