package engine

import (
	"context"
	"time"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/status"
)

// JoinRequest is what `kubeadm token create --print-join-command` takes.
type JoinRequest struct {
	// ControlPlane asks for a control-plane join: with CertificateKey, the
	// key of certificates uploaded before (UploadCerts); without, they are
	// uploaded again under a new key.
	ControlPlane   bool
	CertificateKey string
	// TTL is the token's lifetime: JoinTokenTTL when unset, never expiring
	// when NoExpiry.
	TTL      time.Duration
	NoExpiry bool
}

// JoinInfo is what a machine needs to join a cluster, as `kubeadm token
// create --print-join-command` prints it.
type JoinInfo struct {
	Endpoint   string    `json:"endpoint"`
	Token      string    `json:"token"`
	Expires    time.Time `json:"expires,omitzero"`
	CACertHash string    `json:"caCertHash"`
	// CertificateKey decrypts the kubeadm-certs Secret (control-plane joins).
	CertificateKey string `json:"certificateKey,omitempty"`
}

// JoinTokenTTL is how long a printed join token is valid (kubeadm: 24 h).
const JoinTokenTTL = 24 * time.Hour

// JoinCommand creates a new bootstrap token for the cluster and, for a
// control-plane join without a certificate key, uploads the shared
// certificates under a new one.
func (e *Engine) JoinCommand(ctx context.Context, project, location, name string, req JoinRequest) (*JoinInfo, error) {
	if req.CertificateKey != "" {
		if !req.ControlPlane {
			return nil, status.Invalid("certificateKey", "A certificate key is only for a control-plane join (controlPlane: true).")
		}
		if err := join.CheckCertificateKey(req.CertificateKey); err != nil {
			return nil, status.Invalid("certificateKey", "The certificate key must be 64 hex digits (32 bytes), as `kubeyard certificate-key` prints.")
		}
	}
	if req.TTL < 0 || (req.NoExpiry && req.TTL != 0) {
		return nil, status.Invalid("ttl", "The token lifetime must be a positive duration, or 0 for a token that never expires.")
	}
	s, err := e.runningCluster(ctx, project, location, name)
	if err != nil {
		return nil, err
	}
	if req.ControlPlane {
		if err := checkControlPlaneJoin(s); err != nil {
			return nil, err
		}
	}
	ttl := req.TTL
	if ttl == 0 && !req.NoExpiry {
		ttl = JoinTokenTTL
	}
	tok, err := e.runtime.CreateToken(ctx, s, join.Token{TTL: ttl, Description: "kubeyard join-command", ForJoining: true})
	if err != nil {
		return nil, err
	}
	pin, err := e.runtime.CAPin(s)
	if err != nil {
		return nil, err
	}
	info := &JoinInfo{Endpoint: s.Endpoint(), Token: tok.Token, Expires: tok.Expires, CACertHash: pin, CertificateKey: req.CertificateKey}
	if req.ControlPlane && info.CertificateKey == "" {
		if info.CertificateKey, err = e.uploadCerts(ctx, s, ""); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// UploadCerts is `kubeadm init phase upload-certs --upload-certs`: the
// shared certificates go to the kubeadm-certs Secret again, encrypted under
// key (a new one when empty), which it returns. The Secret lives two hours.
func (e *Engine) UploadCerts(ctx context.Context, project, location, name, key string) (string, error) {
	if key != "" {
		if err := join.CheckCertificateKey(key); err != nil {
			return "", status.Invalid("certificateKey", "The certificate key must be 64 hex digits (32 bytes), as `kubeyard certificate-key` prints.")
		}
	}
	s, err := e.runningCluster(ctx, project, location, name)
	if err != nil {
		return "", err
	}
	if err := checkControlPlaneJoin(s); err != nil {
		return "", err
	}
	return e.uploadCerts(ctx, s, key)
}

func (e *Engine) uploadCerts(ctx context.Context, s cluster.Spec, key string) (string, error) {
	if key == "" {
		var err error
		if key, err = join.NewCertificateKey(); err != nil {
			return "", err
		}
	}
	if err := e.runtime.UploadCerts(ctx, s, key); err != nil {
		return "", err
	}
	return key, nil
}

// checkControlPlaneJoin refuses a control-plane replica for a cluster on
// the shared etcd: a joining replica brings an etcd member, and the shared
// etcd's CA, which would sign it, is the engine's alone.
func checkControlPlaneJoin(s cluster.Spec) error {
	if s.SharedEtcd() {
		return status.Errorf(status.FailedPrecondition, "Cluster %q keeps its state in the engine's shared etcd (%s=%s): it has one control-plane replica, and no other can join it.", s.Name, EtcdTopologyLabel, topologyShared)
	}
	return nil
}

// runningCluster returns the spec of a RUNNING cluster.
func (e *Engine) runningCluster(ctx context.Context, project, location, name string) (cluster.Spec, error) {
	r, _, err := e.lookupCluster(ctx, project, location, name)
	if err != nil {
		return cluster.Spec{}, err
	}
	if r.Cluster.Status != "RUNNING" {
		return cluster.Spec{}, status.Errorf(status.FailedPrecondition, "Cluster %q is %s, not RUNNING.", name, r.Cluster.Status)
	}
	return e.spec(r), nil
}
