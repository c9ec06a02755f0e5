// Package registry serves the engine's image store over the OCI
// distribution API (/v2/), so that standard tools (crane, skopeo, docker)
// push images into it and pull them out. A repository name is the
// image's name as pods use it: a path whose first part is a host
// (us-docker.pkg.dev/...) is kept whole; others are Docker Hub's
// (app is docker.io/library/app). Credentials are the engine's access
// token, as a Bearer token or as the password of Basic authentication.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubeyard/kubeyard/internal/images"
)

// Handler serves /v2/.
type Handler struct {
	Store *images.Store
	// Token is the engine's access token.
	Token string
	// UploadDir holds uploads in progress.
	UploadDir string
	// Pushed, if set, is told of each image pushed.
	Pushed func(images.Image)

	mu      sync.Mutex
	uploads int
}

// apiError is the distribution API's error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (h *Handler) authorized(r *http.Request) bool {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass == h.Token
	}
	return r.Header.Get("Authorization") == "Bearer "+h.Token
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="kubeyard"`)
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the engine's access token (<data-dir>/access-token) is the password, any user name")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case path == "":
		_, _ = io.WriteString(w, "{}")
	case path == "_catalog":
		h.catalog(w)
	case strings.HasSuffix(path, "/tags/list"):
		h.tags(w, strings.TrimSuffix(path, "/tags/list"))
	case strings.Contains(path, "/manifests/"):
		name, ref, _ := cutLast(path, "/manifests/")
		h.manifest(w, r, name, ref)
	case strings.Contains(path, "/blobs/uploads"):
		name, id, _ := cutLast(path, "/blobs/uploads")
		h.upload(w, r, name, strings.TrimPrefix(id, "/"))
	case strings.Contains(path, "/blobs/"):
		_, digest, _ := cutLast(path, "/blobs/")
		h.blob(w, r, digest)
	default:
		apiError(w, http.StatusNotFound, "NAME_UNKNOWN", "no such route: "+r.URL.Path)
	}
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// storeName is the store's name of a repository.
func storeName(repo string) string {
	first, _, _ := strings.Cut(repo, "/")
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return repo
	}
	full, err := images.Normalize(repo)
	if err != nil {
		return repo
	}
	// Normalize adds :latest; the repository is what precedes it.
	return strings.TrimSuffix(full, ":latest")
}

// repoOf is the repository a store name is pulled as: the name as it
// was pushed (Docker Hub's names without docker.io/, library/ kept).
func repoOf(full string) string {
	name, _, _ := cutLast(full, ":")
	return strings.TrimPrefix(name, "docker.io/")
}

func (h *Handler) catalog(w http.ResponseWriter) {
	list, err := h.Store.List()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	repos := []string{}
	seen := map[string]bool{}
	for _, img := range list {
		if r := repoOf(img.Name); !seen[r] {
			seen[r] = true
			repos = append(repos, r)
		}
	}
	writeJSON(w, map[string]any{"repositories": repos})
}

func (h *Handler) tags(w http.ResponseWriter, repo string) {
	list, err := h.Store.List()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	full := storeName(repo)
	tags := []string{}
	for _, img := range list {
		if name, tag, ok := cutLast(img.Name, ":"); ok && name == full {
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		apiError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository "+repo+" is not in the store")
		return
	}
	writeJSON(w, map[string]any{"name": repo, "tags": tags})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	full := storeName(repo)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		name := full + ":" + ref
		if strings.HasPrefix(ref, "sha256:") {
			name = full + "@" + ref
		}
		img, desc, err := h.Store.Resolve(name)
		if err != nil {
			apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
			return
		}
		data, err := img.RawManifest()
		mt, _ := img.MediaType()
		if err != nil {
			apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		w.Header().Set("Content-Type", string(mt))
		w.Header().Set("Docker-Content-Digest", desc.Digest)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	case http.MethodPut:
		if strings.HasPrefix(ref, "sha256:") {
			apiError(w, http.StatusBadRequest, "UNSUPPORTED", "push images by tag: the store names every image")
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			apiError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		img, err := h.Store.PutManifest(full+":"+ref, types.MediaType(r.Header.Get("Content-Type")), data)
		switch {
		case errors.Is(err, images.ErrNotFound):
			apiError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", err.Error())
			return
		case err != nil:
			apiError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		if h.Pushed != nil {
			h.Pushed(img)
		}
		w.Header().Set("Docker-Content-Digest", img.Digest)
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+img.Digest)
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if err := h.Store.Remove(full + ":" + ref); err != nil {
			apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method+" of a manifest")
	}
}

func (h *Handler) blob(w http.ResponseWriter, r *http.Request, digest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method+" of a blob")
		return
	}
	f, size, err := h.Store.Blob(digest)
	if err != nil {
		apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", err.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	if r.Method == http.MethodGet {
		_, _ = io.Copy(w, f)
	}
}

// upload takes a blob: POST starts an upload (or, with ?digest=, is all of
// it; with ?mount=, one the store has already is mounted), PATCH adds to
// it, PUT ?digest= ends it.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, repo, id string) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Get("mount") != "":
		if f, _, err := h.Store.Blob(q.Get("mount")); err == nil {
			f.Close()
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+q.Get("mount"))
			w.Header().Set("Docker-Content-Digest", q.Get("mount"))
			w.WriteHeader(http.StatusCreated)
			return
		}
		fallthrough
	case r.Method == http.MethodPost && q.Get("digest") == "":
		if err := os.MkdirAll(h.UploadDir, 0o700); err != nil {
			apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		h.mu.Lock()
		h.uploads++
		id = fmt.Sprintf("%d-%d", os.Getpid(), h.uploads)
		h.mu.Unlock()
		if err := os.WriteFile(h.uploadPath(id), nil, 0o600); err != nil {
			apiError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.Header().Set("Range", "0-0")
		w.Header().Set("Docker-Upload-UUID", id)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost: // monolithic
		h.finish(w, repo, q.Get("digest"), r.Body)
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && id != "":
		f, err := os.OpenFile(h.uploadPath(id), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "no upload "+id)
			return
		}
		_, err = io.Copy(f, r.Body)
		f.Close()
		if err != nil {
			apiError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		if r.Method == http.MethodPatch {
			st, _ := os.Stat(h.uploadPath(id))
			w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(st.Size()-1, 0)))
			w.Header().Set("Docker-Upload-UUID", id)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		data, err := os.Open(h.uploadPath(id))
		if err != nil {
			apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", err.Error())
			return
		}
		defer os.Remove(h.uploadPath(id))
		defer data.Close()
		h.finish(w, repo, q.Get("digest"), data)
	default:
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method+" of an upload")
	}
}

func (h *Handler) uploadPath(id string) string {
	return filepath.Join(h.UploadDir, filepath.Base(id))
}

func (h *Handler) finish(w http.ResponseWriter, repo, digest string, body io.Reader) {
	if _, err := h.Store.WriteBlob(digest, body); err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.WriteHeader(http.StatusCreated)
}
