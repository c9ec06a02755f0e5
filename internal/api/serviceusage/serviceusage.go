// Package serviceusage serves the slice of the Service Usage API that gcloud
// consults before GKE commands: whether a service is enabled in a project.
package serviceusage

import (
	"net/http"
	"slices"

	"github.com/kubeyard/kubeyard/internal/api/codec"
)

// Enabled are the services the engine serves, reported ENABLED; any other is
// DISABLED.
var Enabled = []string{"container.googleapis.com", "compute.googleapis.com", "logging.googleapis.com", "dns.googleapis.com", "serviceusage.googleapis.com"}

// Register adds the routes to mux.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/projects/{project}/services/{service}", func(w http.ResponseWriter, r *http.Request) {
		project, service := r.PathValue("project"), r.PathValue("service")
		state := "DISABLED"
		if slices.Contains(Enabled, service) {
			state = "ENABLED"
		}
		codec.WriteJSON(w, map[string]any{
			"name":   "projects/" + project + "/services/" + service,
			"parent": "projects/" + project,
			"state":  state,
			"config": map[string]any{"name": service},
		})
	})
}
