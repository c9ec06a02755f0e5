// Package api assembles the engine's HTTP surface: the Google APIs gcloud
// talks to (container, compute, dns, logging, serviceusage), the TokenReview webhook the clusters'
// kube-apiservers call, the engine's admin API, the image store's OCI
// distribution API (/v2/) and the web console; every route but the
// webhook and the console's login requires the engine's access token, or
// a console session in its place.
package api

import (
	"encoding/json"
	"net/http"
	"time"

	apidns "github.com/kubeyard/kubeyard/internal/api/clouddns"
	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/api/compute"
	"github.com/kubeyard/kubeyard/internal/api/container"
	apilogging "github.com/kubeyard/kubeyard/internal/api/logging"
	"github.com/kubeyard/kubeyard/internal/api/serviceusage"
	"github.com/kubeyard/kubeyard/internal/console"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/status"
)

// NewHandler returns the engine's HTTP handler, with con's pages and
// sessions.
func NewHandler(e *engine.Engine, con *console.Console) http.Handler {
	authed := http.NewServeMux()
	serviceusage.Register(authed)
	authed.Handle("/v1/projects/", container.Handler{Engine: e})
	compute.Register(authed, e.VPC(), e)
	apidns.Register(authed, e.DNS())
	apilogging.Register(authed, e.Logs())
	authed.Handle("POST /batch/compute/v1", batchHandler(codec.StatusErrors(authed), "/compute/v1/"))
	registerAdmin(authed, e)
	registerJoin(authed, e)
	registerCredentials(authed, e)
	registerImages(authed, e)
	registerKubernetes(authed, e)
	registerConsole(authed, con)

	mux := http.NewServeMux()
	con.Register(mux)
	mux.Handle("POST /internal/authn", e.Identity().TokenReviewHandler())
	// The OCI distribution API authenticates as registries do (Basic,
	// the token as password), and answers in its own error format.
	mux.Handle("/v2/", e.Registry())
	for _, route := range apilogging.Routes { // Logging v2 shares /v2/
		mux.Handle(route, requireToken(e, con, authed))
	}
	mux.Handle("/", requireToken(e, con, authed))
	return codec.StatusErrors(mux)
}

// requireToken admits the engine's access token, or a console session
// (whose changes must carry its CSRF token).
func requireToken(e *engine.Engine, con *console.Console, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.Identity().Valid(r) {
			next.ServeHTTP(w, r)
			return
		}
		switch err := con.Sessions.Authorize(r); err {
		case nil:
			next.ServeHTTP(w, r)
		case console.ErrCrossSite:
			codec.Write(w, status.Errorf(status.PermissionDenied, "Request refused: it carries the console's session but not its CSRF token (%s), or comes from another site.", console.CSRFHeader))
		default:
			codec.Write(w, status.Errorf(status.Unauthenticated, "Request had invalid authentication credentials. Expected the access token of this kubeyard engine (<data-dir>/access-token) as a Bearer token."))
		}
	})
}

// registerConsole adds the call that makes a one-time console login link
// (`kubeyard console`).
func registerConsole(mux *http.ServeMux, con *console.Console) {
	codec.HandleJSON(mux, "POST /kubeyard/v1/console:loginLink", func(r *http.Request) (any, error) {
		return map[string]string{"url": con.Sessions.LoginURL("http://" + r.Host)}, nil
	})
}

// registerAdmin adds kubeyard's own API: the engine clock.
func registerAdmin(mux *http.ServeMux, e *engine.Engine) {
	mux.HandleFunc("GET /kubeyard/v1/clock", func(w http.ResponseWriter, r *http.Request) {
		codec.WriteJSON(w, clockBody(e))
	})
	mux.HandleFunc("POST /kubeyard/v1/clock:advance", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Duration string `json:"duration"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			codec.Write(w, status.Invalid("", "Invalid JSON payload received. %v", err))
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			codec.Write(w, status.Invalid("duration", "Invalid duration %q: a positive Go duration such as 168h is expected.", req.Duration))
			return
		}
		if _, err := e.AdvanceClock(r.Context(), d); err != nil {
			codec.Write(w, err)
			return
		}
		codec.WriteJSON(w, clockBody(e))
	})
}

// registerJoin adds the calls for joining machines: join-command (a new
// bootstrap token, the CA pin and, for a control-plane join, a certificate
// key) and upload-certs.
func registerJoin(mux *http.ServeMux, e *engine.Engine) {
	const cluster = "/kubeyard/v1/projects/{project}/locations/{location}/clusters/{cluster}"
	mux.HandleFunc("POST "+cluster+"/joinCommand", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ControlPlane   bool   `json:"controlPlane"`
			CertificateKey string `json:"certificateKey"`
			TTL            string `json:"ttl"`
		}
		if err := codec.Decode(r, codec.Fields{"controlPlane", "certificateKey", "ttl"}, &req); err != nil {
			codec.Write(w, err)
			return
		}
		jr := engine.JoinRequest{ControlPlane: req.ControlPlane, CertificateKey: req.CertificateKey}
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d < 0 {
				codec.Write(w, status.Invalid("ttl", "Invalid token lifetime %q: a Go duration such as 24h, or 0 for a token that never expires.", req.TTL))
				return
			}
			jr.TTL, jr.NoExpiry = d, d == 0
		}
		info, err := e.JoinCommand(r.Context(), r.PathValue("project"), r.PathValue("location"), r.PathValue("cluster"), jr)
		if err != nil {
			codec.Write(w, err)
			return
		}
		codec.WriteJSON(w, info)
	})
	mux.HandleFunc("POST "+cluster+"/uploadCerts", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CertificateKey string `json:"certificateKey"`
		}
		if err := codec.Decode(r, codec.Fields{"certificateKey"}, &req); err != nil {
			codec.Write(w, err)
			return
		}
		key, err := e.UploadCerts(r.Context(), r.PathValue("project"), r.PathValue("location"), r.PathValue("cluster"), req.CertificateKey)
		if err != nil {
			codec.Write(w, err)
			return
		}
		codec.WriteJSON(w, map[string]string{"certificateKey": key})
	})
}

// registerCredentials adds the cluster CA rotation (`kubeyard update
// credentials --cluster-ca`) and the admin kubeconfig it writes at the end.
func registerCredentials(mux *http.ServeMux, e *engine.Engine) {
	const cluster = "/kubeyard/v1/projects/{project}/locations/{location}/clusters/{cluster}"
	mux.HandleFunc("POST "+cluster+"/rotateClusterCA", func(w http.ResponseWriter, r *http.Request) {
		var req struct{}
		if err := codec.Decode(r, codec.Fields{}, &req); err != nil {
			codec.Write(w, err)
			return
		}
		op, err := e.RotateClusterCA(r.Context(), r.PathValue("project"), r.PathValue("location"), r.PathValue("cluster"))
		if err != nil {
			codec.Write(w, err)
			return
		}
		codec.WriteJSON(w, op)
	})
	mux.HandleFunc("GET "+cluster+"/adminKubeconfig", func(w http.ResponseWriter, r *http.Request) {
		data, err := e.AdminKubeconfig(r.Context(), r.PathValue("project"), r.PathValue("location"), r.PathValue("cluster"))
		if err != nil {
			codec.Write(w, err)
			return
		}
		codec.WriteJSON(w, map[string]string{"kubeconfig": string(data)})
	})
}

func clockBody(e *engine.Engine) map[string]string {
	return map[string]string{
		"now":    e.Clock().Now().UTC().Format(time.RFC3339),
		"offset": e.Clock().OffsetValue().String(),
	}
}

// registerImages adds the image store: the images pods can run, archives
// loaded into it, names removed.
func registerImages(mux *http.ServeMux, e *engine.Engine) {
	codec.HandleJSON(mux, "GET /kubeyard/v1/images", func(r *http.Request) (any, error) {
		list, err := e.ListImages()
		return map[string]any{"images": list}, err
	})
	codec.HandleJSON(mux, "POST /kubeyard/v1/images:load", func(r *http.Request) (any, error) {
		loaded, err := e.LoadImages(http.MaxBytesReader(nil, r.Body, 8<<30))
		return map[string]any{"images": loaded}, err
	})
	codec.HandleJSON(mux, "DELETE /kubeyard/v1/images", func(r *http.Request) (any, error) {
		return struct{}{}, e.RemoveImage(r.URL.Query().Get("name"))
	})
}
