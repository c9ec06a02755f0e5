package cluster

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// CreateToken creates a bootstrap token in cluster s (kubeadm token create).
func (r *Runtime) CreateToken(ctx context.Context, s Spec, t join.Token) (join.BootstrapToken, error) {
	client, err := r.AdminClient(s)
	if err != nil {
		return join.BootstrapToken{}, err
	}
	return join.CreateBootstrapToken(ctx, client, t)
}

// UploadCerts uploads the shared certificates of cluster s to the
// kubeadm-certs Secret, encrypted under key (kubeadm init phase
// upload-certs).
func (r *Runtime) UploadCerts(ctx context.Context, s Spec, key string) error {
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	return join.UploadCerts(ctx, client, s.SharedPKIDir(), key)
}

// PodCIDR waits until kube-controller-manager has given the node its pod
// range, and returns it.
func (r *Runtime) PodCIDR(ctx context.Context, s Spec, node string) (string, error) {
	client, err := r.AdminClient(s)
	if err != nil {
		return "", err
	}
	var cidr string
	err = poll.Until(ctx, func(ctx context.Context) error {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cidr = n.Spec.PodCIDR; cidr == "" {
			return fmt.Errorf("node %s has no pod range yet", node)
		}
		return nil
	})
	return cidr, err
}
