// Package clouddns serves the slice of Cloud DNS (dns/v1) that private GKE
// clusters need: managed zones and record sets. Handlers only decode, check
// the fields against what the engine honours, call the model and encode.
package clouddns

import (
	"net/http"

	dns "google.golang.org/api/dns/v1"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/clouddns"
)

// Request fields the engine honours; everything else is refused by name.
var (
	zoneFields  = codec.Fields{"name", "dnsName", "description", "visibility", "privateVisibilityConfig.networks[].networkUrl", "kind"}
	rrsetFields = codec.Fields{"name", "type", "ttl", "rrdatas", "kind"}
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
	h("DELETE "+root+"/{zone}/rrsets/{name}/{type}", func(r *http.Request) (any, error) {
		return struct{}{}, d.DeleteRecordSet(r.Context(), p(r), r.PathValue("zone"), r.PathValue("name"), r.PathValue("type"))
	})
}
