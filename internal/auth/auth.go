// Package auth is the engine's identity: the access token it issues (a file
// under the data dir that gcloud reads through auth/access_token_file), the
// check of that token on every API call, and the TokenReview webhook through
// which every cluster's kube-apiserver accepts the same token from kubectl.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
)

// Identity is who the access token stands for.
type Identity struct {
	Token string
	// User is the Kubernetes user name the token maps to; the creator of a
	// cluster gets cluster-admin under this name.
	User string
}

// DefaultUser is the account name of the engine's access token.
const DefaultUser = "admin@kubeyard.local"

// LoadOrCreateToken reads the token at path, or writes a new one there
// (mode 0600) on first start.
func LoadOrCreateToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(data)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("auth: read token: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := "ky." + base64.RawURLEncoding.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("auth: write token: %w", err)
	}
	return tok, nil
}

// Valid reports whether the request carries the identity's bearer token.
func (id Identity) Valid(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && id.matches(tok)
}

// ValidToken reports whether tok is the identity's token (the console's
// login form takes it pasted).
func (id Identity) ValidToken(tok string) bool { return id.matches(tok) }

func (id Identity) matches(tok string) bool {
	return id.Token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(id.Token)) == 1
}

// TokenReviewHandler serves kube-apiserver's authentication webhook
// (authentication.k8s.io/v1 TokenReview): the engine's token is the identity's
// user; anything else is unauthenticated.
func (id Identity) TokenReviewHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review authnv1.TokenReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&review); err != nil {
			http.Error(w, "malformed TokenReview", http.StatusBadRequest)
			return
		}
		review.Status = authnv1.TokenReviewStatus{}
		if id.matches(review.Spec.Token) {
			review.Status.Authenticated = true
			review.Status.User = authnv1.UserInfo{Username: id.User, Groups: []string{"system:authenticated"}}
		} else {
			review.Status.Error = "unknown token"
		}
		review.APIVersion, review.Kind = "authentication.k8s.io/v1", "TokenReview"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
}
