package engine

import (
	"context"
	"time"

	"github.com/kubeyard/kubeyard/internal/api/apierror"
	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/join"
)

// JoinInfo is what a machine needs to join a cluster, as `kubeadm token
// create --print-join-command` prints it.
type JoinInfo struct {
	Endpoint   string    `json:"endpoint"`
	Token      string    `json:"token"`
	Expires    time.Time `json:"expires"`
	CACertHash string    `json:"caCertHash"`
	// CertificateKey decrypts the kubeadm-certs Secret: set for a
	// control-plane join, after the certificates were uploaded again.
	CertificateKey string `json:"certificateKey,omitempty"`
}

// JoinTokenTTL is how long a printed join token is valid (kubeadm: 24 h).
const JoinTokenTTL = 24 * time.Hour

// JoinCommand creates a new bootstrap token for the cluster and, for a
// control-plane join, uploads the shared certificates under a new
// certificate key (kubeadm init phase upload-certs --upload-certs).
func (e *Engine) JoinCommand(ctx context.Context, project, location, name string, controlPlane bool) (*JoinInfo, error) {
	r, _, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if r.Cluster.Status != "RUNNING" {
		return nil, apierror.FailedPrecondition("Cluster %q is %s, not RUNNING.", name, r.Cluster.Status)
	}
	s := e.spec(r)
	client, err := e.runtime.AdminClient(s)
	if err != nil {
		return nil, err
	}
	tok, err := join.CreateBootstrapToken(ctx, client, join.Token{TTL: JoinTokenTTL, Description: "kubeyard join-command", ForJoining: true})
	if err != nil {
		return nil, err
	}
	pin, err := cluster.CAPin(s)
	if err != nil {
		return nil, err
	}
	info := &JoinInfo{Endpoint: s.Endpoint(), Token: tok.Token, Expires: tok.Expires, CACertHash: pin}
	if controlPlane {
		if info.CertificateKey, err = join.NewCertificateKey(); err != nil {
			return nil, err
		}
		if err := join.UploadCerts(ctx, client, s.PKIDir(s.Hosts[0]), info.CertificateKey); err != nil {
			return nil, err
		}
	}
	return info, nil
}
