package join

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// NodeBootstrapGroup is the group of kubeadm's default node bootstrap tokens.
const NodeBootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// Token describes a bootstrap token to create.
type Token struct {
	// TTL is how long the token is valid; 0 means it never expires
	// (kubeadm token create --ttl 0).
	TTL         time.Duration
	Description string
	// ForJoining gives the token the authentication and signing usages and
	// the node bootstrap group; without it the token only carries a TTL
	// (kubeadm's proxy for the lifetime of the kubeadm-certs Secret).
	ForJoining bool
}

// BootstrapToken is a created bootstrap token.
type BootstrapToken struct {
	Token     string    // "id.secret"
	Expires   time.Time // zero: never
	SecretUID types.UID
}

// ID is the token's public part.
func (t BootstrapToken) ID() string { return t.Token[:6] }

// CreateBootstrapToken stores a new bootstrap token Secret. Expiry is real
// time: kube-apiserver and the token cleaner check it against their clocks.
func CreateBootstrapToken(ctx context.Context, client kubernetes.Interface, spec Token) (BootstrapToken, error) {
	tok, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return BootstrapToken{}, err
	}
	id, secret := tok[:6], tok[7:]
	data := map[string]string{
		bootstrapapi.BootstrapTokenIDKey:          id,
		bootstrapapi.BootstrapTokenSecretKey:      secret,
		bootstrapapi.BootstrapTokenDescriptionKey: spec.Description,
	}
	var expires time.Time
	if spec.TTL > 0 {
		expires = time.Now().Add(spec.TTL).UTC().Truncate(time.Second)
		data[bootstrapapi.BootstrapTokenExpirationKey] = expires.Format(time.RFC3339)
	}
	if spec.ForJoining {
		data[bootstrapapi.BootstrapTokenUsageAuthentication] = "true"
		data[bootstrapapi.BootstrapTokenUsageSigningKey] = "true"
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = NodeBootstrapGroup
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: data,
	}
	created, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		return BootstrapToken{}, fmt.Errorf("join: bootstrap token: %w", err)
	}
	return BootstrapToken{Token: tok, Expires: expires, SecretUID: created.UID}, nil
}
