package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/kubeletapi"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// KubeletPort is the kubelet API's port.
const KubeletPort = 10250

// servingCertName is the kubelet's serving certificate in the node's
// folder (kubelet-server.crt and .key).
const servingCertName = "kubelet-server"

// servingCert returns the kubelet's serving certificate: the one kept in
// the node's folder while the cluster's CA bundle still verifies it and
// it has a week to go; else a new one, through a kubelet-serving CSR when
// the engine approves them, or self-signed as a kubelet without
// serverTLSBootstrap makes one.
func (a *Agent) servingCert(ctx context.Context, caBundle []byte) (*tls.Certificate, error) {
	ips := []net.IP{a.cfg.InternalIP}
	if a.cfg.KubeletIP != nil {
		ips = append(ips, a.cfg.KubeletIP)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caBundle)
	if kp, err := pki.Load(a.cfg.Dir, servingCertName); err == nil && time.Until(kp.Cert.NotAfter) > 7*24*time.Hour {
		_, verr := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if verr == nil || (a.cfg.ApproveServingCSR == nil && kp.Cert.Issuer.CommonName == a.cfg.Name+"-ca") {
			return tlsCert(kp)
		}
	}
	var kp *pki.KeyPair
	var err error
	if a.cfg.ApproveServingCSR != nil {
		kp, err = join.NodeServingCert(ctx, a.client, a.cfg.Name, ips, a.cfg.ApproveServingCSR)
	} else {
		var ca *pki.KeyPair
		if ca, err = pki.NewCA(a.cfg.Name+"-ca", time.Now()); err == nil {
			kp, err = ca.Issue(pki.Leaf{CommonName: a.cfg.Name, DNSNames: []string{a.cfg.Name}, IPs: ips, Usages: pki.ServerUsage}, time.Now())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: serving certificate: %w", a.cfg.Name, err)
	}
	if err := kp.Write(a.cfg.Dir, servingCertName); err != nil {
		return nil, err
	}
	return tlsCert(kp)
}

func tlsCert(kp *pki.KeyPair) (*tls.Certificate, error) {
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(kp.CertPEM(), keyPEM)
	return &c, err
}

// startKubeletAPI serves the kubelet API on the node's kubelet address.
func (a *Agent) startKubeletAPI(ctx context.Context, pods corelisters.PodLister) error {
	cfg, err := clientcmd.LoadFromFile(a.KubeconfigPath())
	if err != nil {
		return err
	}
	var caBundle []byte
	for _, c := range cfg.Clusters {
		caBundle = c.CertificateAuthorityData
	}
	cert, err := a.servingCert(ctx, caBundle)
	if err != nil {
		return err
	}
	srv, err := kubeletapi.New(kubeletapi.Config{
		NodeName: a.cfg.Name, Addr: net.JoinHostPort(a.kubeletAddress(), strconv.Itoa(KubeletPort)),
		Client: a.client, ClientCA: caBundle,
		Certificate: func() (*tls.Certificate, error) { return cert, nil },
		Pods:        nodePods{pods}, Runtime: a.cfg.Pods, Logger: a.cfg.Logger,
	})
	if err != nil {
		return err
	}
	a.api = srv
	go func() {
		if err := srv.Serve(); err != nil {
			a.cfg.Logger.Warn("kubelet API", "node", a.cfg.Name, "err", err)
		}
	}()
	return nil
}

// nodePods are the node's pods, from its informer.
type nodePods struct{ lister corelisters.PodLister }

func (p nodePods) Pod(namespace, name string) (*corev1.Pod, error) {
	return p.lister.Pods(namespace).Get(name)
}

func (p nodePods) List() ([]*corev1.Pod, error) { return p.lister.List(everything) }
