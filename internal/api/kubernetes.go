package api

import (
	"net/http"
	"strings"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/engine"
)

// registerKubernetes adds reads of a cluster's own API (its pods,
// Deployments, Services, nodes, a pod's log), for the console: GET
// .../clusters/C/kubernetes/api/v1/pods answers what the cluster's
// kube-apiserver answers to GET /api/v1/pods.
func registerKubernetes(mux *http.ServeMux, e *engine.Engine) {
	const cluster = "/kubeyard/v1/projects/{project}/locations/{location}/clusters/{cluster}"
	mux.HandleFunc("GET "+cluster+"/kubernetes/{path...}", func(w http.ResponseWriter, r *http.Request) {
		path := "/" + r.PathValue("path")
		body, err := e.ReadKubernetes(r.Context(), r.PathValue("project"), r.PathValue("location"), r.PathValue("cluster"), path, r.URL.Query())
		if err != nil {
			codec.Write(w, err)
			return
		}
		if strings.HasSuffix(path, "/log") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		}
		w.Write(body)
	})
}
