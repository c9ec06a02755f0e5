package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// bootstrapObjects creates what `kubeadm init` creates after the control plane
// is up: RBAC for admins, for bootstrapping nodes (CSR create and auto-approve,
// client certificate rotation), the cluster-info ConfigMap that token
// discovery reads anonymously, and cluster-admin for the cluster's creator.
func bootstrapObjects(ctx context.Context, client kubernetes.Interface, s Spec) error {
	// kube-apiserver creates its system namespaces from a controller that
	// may not have run yet when /readyz first passes.
	for _, ns := range []string{metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	h, _ := s.pkiHost()
	caPEM, err := pki.Bundle(s.PKIDir(h))
	if err != nil {
		return err
	}
	info := clientcmdapi.NewConfig()
	info.Clusters[""] = &clientcmdapi.Cluster{Server: "https://" + s.Endpoint(), CertificateAuthorityData: caPEM}
	infoData, err := clientcmd.Write(*info)
	if err != nil {
		return err
	}
	crb := func(name, role string, subject rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{subject},
		}
	}
	group := func(name string) rbacv1.Subject {
		return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}
	}
	bindings := []*rbacv1.ClusterRoleBinding{
		crb("kubeadm:cluster-admins", "cluster-admin", group("kubeadm:cluster-admins")),
		crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", group(join.NodeBootstrapGroup)),
		crb("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(join.NodeBootstrapGroup)),
		crb("kubeadm:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group("system:nodes")),
		// Each node's kube-proxy runs with the node's credentials.
		crb("kubeyard:node-proxier", "system:node-proxier", group("system:nodes")),
	}
	if s.Creator != "" {
		bindings = append(bindings, crb("kubeyard:creator-cluster-admin", "cluster-admin", rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: s.Creator}))
	}
	for _, b := range bindings {
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ClusterRoleBinding %s: %w", b.Name, err)
		}
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(infoData)},
	}
	if _, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		existing, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if existing.Data[bootstrapapi.KubeConfigKey] != string(infoData) {
			if existing.Data == nil {
				existing.Data = map[string]string{}
			}
			existing.Data[bootstrapapi.KubeConfigKey] = string(infoData)
			if _, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
	} else if err != nil {
		return fmt.Errorf("cluster-info: %w", err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo", Namespace: metav1.NamespacePublic},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo}}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespacePublic).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "system:anonymous"}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespacePublic).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return controllerServiceAccounts(ctx, client)
}

// controllerServiceAccounts creates, in parallel, the service accounts
// kube-controller-manager would otherwise create one by one at its start.
func controllerServiceAccounts(ctx context.Context, client kubernetes.Interface) error {
	var wg sync.WaitGroup
	errs := make([]error, len(controlplane.ControllerServiceAccounts))
	for i, name := range controlplane.ControllerServiceAccounts {
		wg.Go(func() {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem}}
			if _, err := client.CoreV1().ServiceAccounts(metav1.NamespaceSystem).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				errs[i] = fmt.Errorf("service account %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
