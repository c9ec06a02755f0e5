package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Normalize turns an image reference as pods and users write it into the
// full name container runtimes use: "busybox" is
// docker.io/library/busybox:latest, a name without a tag is :latest, and a
// digest stays a digest.
func Normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.WithDefaultRegistry("docker.io"))
	if err != nil {
		return "", fmt.Errorf("images: %q is not an image reference: %w", ref, err)
	}
	repo := r.Context().RegistryStr() + "/" + r.Context().RepositoryStr()
	repo = strings.TrimPrefix(repo, "index.")
	switch t := r.(type) {
	case name.Digest:
		return repo + "@" + t.DigestStr(), nil
	case name.Tag:
		return repo + ":" + t.TagStr(), nil
	}
	return "", fmt.Errorf("images: %q is neither a tag nor a digest", ref)
}

// isDigest says whether a normalized name is repo@sha256:...
func isDigest(normalized string) (repo, digest string, ok bool) {
	return strings.Cut(normalized, "@")
}
