package engine

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubeyard/kubeyard/internal/status"
)

// readableQuery are the parameters a read of a cluster's API may carry:
// selection and paging of lists, and which lines of a pod's log.
var readableQuery = []string{"labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
	"container", "tailLines", "previous", "timestamps", "sinceSeconds", "limitBytes"}

// unreadable are the subresources a read may not reach: ways into pods
// and nodes, not state.
var unreadable = []string{"exec", "attach", "portforward", "proxy"}

// readTimeout bounds a read of a cluster's API.
const readTimeout = 20 * time.Second

// ReadKubernetes reads a path of a cluster's own API as its admin, for the
// console's view of workloads: resources under /api and /apis and pods'
// logs; nothing that streams (watch, follow) or opens a way into a pod.
func (e *Engine) ReadKubernetes(ctx context.Context, project, location, name, p string, query url.Values) ([]byte, error) {
	if p == "" || path.Clean(p) != p || !(p == "/api" || p == "/apis" || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/apis/")) {
		return nil, status.Invalid("path", "Invalid path %q: a path of the cluster's API under /api or /apis is expected.", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if slices.Contains(unreadable, seg) {
			return nil, status.Invalid("path", "Invalid path %q: %s opens a way into the cluster; use kubectl.", p, seg)
		}
	}
	for k := range query {
		if !slices.Contains(readableQuery, k) {
			return nil, status.Invalid(k, "Parameter %q is not read here (one of %s is).", k, strings.Join(readableQuery, ", "))
		}
	}
	r, _, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if st := r.Cluster.Status; st != "RUNNING" && st != "RECONCILING" {
		return nil, status.Errorf(status.FailedPrecondition, "Cluster %q is %s: its API can be read once it is RUNNING.", name, st)
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	body, err := e.runtime.ReadKubernetes(ctx, e.spec(r), p, query)
	if err != nil {
		return nil, kubernetesError(name, err)
	}
	return body, nil
}

// kubernetesError is what the cluster's API server said, as a status.
func kubernetesError(cluster string, err error) error {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return status.Errorf(status.Unavailable, "Cluster %q: its API server did not answer: %v", cluster, err)
	}
	code := status.Internal
	switch se.Status().Code {
	case http.StatusNotFound:
		code = status.NotFound
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		code = status.InvalidArgument
	case http.StatusForbidden:
		code = status.PermissionDenied
	case http.StatusUnauthorized:
		code = status.Unauthenticated
	case http.StatusConflict:
		code = status.Aborted
	case http.StatusTooManyRequests:
		code = status.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		code = status.Unavailable
	}
	return status.Errorf(code, "Cluster %q: %s", cluster, se.Status().Message)
}
