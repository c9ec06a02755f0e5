// Package kubeletapi serves a node's kubelet API on port 10250, as the
// kubelet does: /containerLogs, /exec, /attach, /portForward and /run
// through the upstream streaming server (k8s.io/cri-streaming), /pods and
// /healthz. Requests are authenticated as the kubelet authenticates them
// (client certificates of the cluster CA, bearer tokens through a
// TokenReview; no anonymous access) and authorized with a
// SubjectAccessReview on the node's nodes/proxy, nodes/log, nodes/pods
// or nodes/healthz subresource.
package kubeletapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// Pods are the pods the node runs, as its informer knows them.
type Pods interface {
	Pod(namespace, name string) (*corev1.Pod, error)
	List() ([]*corev1.Pod, error)
}

// Runtime is what the API needs of the node's container runtime.
type Runtime interface {
	Containers(uid string) ([]podruntime.Container, error)
	Exec(ctx context.Context, c podruntime.Container, p runc.Process) error
	PortForward(ctx context.Context, uid string, port int32, stream io.ReadWriteCloser) error
	Attach(ctx context.Context, c podruntime.Container, stdin io.Reader, stdout, stderr io.Writer, resize <-chan shim.Size) error
}

// Config configures a Server.
type Config struct {
	NodeName string
	// Addr is where it listens (the node's kubelet address, port 10250).
	Addr string
	// Client makes the TokenReviews and SubjectAccessReviews, as the
	// node.
	Client kubernetes.Interface
	// ClientCA is the cluster CA bundle client certificates must chain to.
	ClientCA []byte
	// Certificate is the node's serving certificate (asked for each
	// connection: it may be renewed).
	Certificate func() (*tls.Certificate, error)
	Pods        Pods
	Runtime     Runtime
	Logger      *slog.Logger
}

// Server is a node's kubelet API.
type Server struct {
	cfg   Config
	authn authenticator.Request
	authz authorizer.Authorizer
	http  *http.Server
	ln    net.Listener
}

// New listens on cfg.Addr; Serve serves.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ca, err := dynamiccertificates.NewStaticCAContent("client-ca", cfg.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: client CA: %w", err)
	}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:            cfg.Client.AuthenticationV1(),
		TokenAccessReviewTimeout:           10 * time.Second,
		WebhookRetryBackoff:                options.DefaultAuthWebhookRetryBackoff(),
		CacheTTL:                           2 * time.Minute,
		ClientCertificateCAContentProvider: ca,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("kubelet API: authentication: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cfg.Client.AuthorizationV1(),
		AllowCacheTTL:             5 * time.Minute,
		DenyCacheTTL:              30 * time.Second,
		WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("kubelet API: authorization: %w", err)
	}
	s := &Server{cfg: cfg, authn: authn, authz: authz}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	s.ln = tls.NewListener(ln, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cfg.Certificate()
		},
		// Verified by the authenticator, which also takes tokens.
		ClientAuth: tls.RequestClientCert,
	})
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve serves until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving; streams in progress end.
func (s *Server) Close() error { return s.http.Close() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /pods", s.pods)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	for _, prefix := range []string{"/exec/{namespace}/{pod}", "/exec/{namespace}/{pod}/{uid}"} {
		mux.HandleFunc(prefix+"/{container}", s.exec)
	}
	for _, prefix := range []string{"/attach/{namespace}/{pod}", "/attach/{namespace}/{pod}/{uid}"} {
		mux.HandleFunc(prefix+"/{container}", s.attach)
	}
	mux.HandleFunc("/portForward/{namespace}/{pod}", s.portForward)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", s.portForward)
	mux.HandleFunc("POST /run/{namespace}/{pod}/{container}", s.run)
	mux.HandleFunc("POST /run/{namespace}/{pod}/{uid}/{container}", s.run)
	return s.guard(mux)
}

// guard authenticates and authorizes every request, as the kubelet's
// filter does: 401 for who cannot be told, 403 for who may not.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok, err := s.authn.AuthenticateRequest(r)
		if err != nil || !ok {
			s.cfg.Logger.Debug("kubelet API: unauthenticated", "path", r.URL.Path, "err", err)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		var reasons []string
		for _, attrs := range s.attributes(r, resp.User) {
			decision, reason, err := s.authz.Authorize(r.Context(), attrs)
			if err != nil {
				http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)", attrs.GetUser().GetName(), attrs.GetVerb(), attrs.GetResource(), attrs.GetSubresource()), http.StatusInternalServerError)
				return
			}
			if decision == authorizer.DecisionAllow {
				next.ServeHTTP(w, r)
				return
			}
			reasons = append(reasons, fmt.Sprintf("(user=%s, verb=%s, resource=%s, subresource=%s)%s", attrs.GetUser().GetName(), attrs.GetVerb(), attrs.GetResource(), attrs.GetSubresource(), suffix(reason)))
		}
		http.Error(w, "Forbidden "+strings.Join(reasons, ", "), http.StatusForbidden)
	})
}

func suffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// attributes are what a request asks, as the kubelet maps paths to the
// node's subresources (with fine-grained authorization: nodes/pods and
// nodes/healthz, else nodes/proxy).
func (s *Server) attributes(r *http.Request, u userInfo) []authorizer.Attributes {
	verb := map[string]string{http.MethodPost: "create", http.MethodGet: "get", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[r.Method]
	sub := func(name string) authorizer.Attributes {
		return authorizer.AttributesRecord{User: u, Verb: verb, APIVersion: "v1", Resource: "nodes", Subresource: name,
			Name: s.cfg.NodeName, ResourceRequest: true, Path: r.URL.Path}
	}
	p := r.URL.Path
	switch {
	case under(p, "/pods"):
		return []authorizer.Attributes{sub("pods"), sub("proxy")}
	case under(p, "/healthz"):
		return []authorizer.Attributes{sub("healthz"), sub("proxy")}
	case under(p, "/logs"):
		return []authorizer.Attributes{sub("log")}
	case under(p, "/stats"):
		return []authorizer.Attributes{sub("stats")}
	case under(p, "/metrics"):
		return []authorizer.Attributes{sub("metrics")}
	}
	return []authorizer.Attributes{sub("proxy")}
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

// pods is the node's pods, as the kubelet lists them.
func (s *Server) pods(w http.ResponseWriter, _ *http.Request) {
	pods, err := s.cfg.Pods.List()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	list := corev1.PodList{TypeMeta: typeMeta("PodList")}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}
