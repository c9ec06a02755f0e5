// Package join is how a machine joins a cluster the kubeadm way: token
// discovery with CA pinning (cluster-info signed by the bootstrap signer),
// the kubelet TLS bootstrap of a worker, and the certificate download of a
// control-plane replica (the kubeadm-certs Secret, encrypted under a
// certificate key).
package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeyard/kubeyard/internal/pki"
)

// Config is what `kubeadm join` takes.
type Config struct {
	// Endpoint is host[:port] of the cluster's load balancer.
	Endpoint string
	// SourceIP, if set, is the address the machine's connections come
	// from: the endpoint admits a cluster's own machines by address when it
	// has authorized networks.
	SourceIP net.IP
	// Token is the bootstrap token, "abcdef.0123456789abcdef".
	Token string
	// CACertHashes pin the cluster CA ("sha256:<hex of SPKI>").
	CACertHashes []string
	NodeName     string
	// DiscoveryTimeout bounds the wait for the token's signature on
	// cluster-info (default 5 minutes, as kubeadm's).
	DiscoveryTimeout time.Duration
}

// Errors a join can end with.
var (
	ErrBadToken = errors.New("join: bootstrap token is malformed")
	// ErrTokenNotValid: no signature for the token appeared on cluster-info
	// in time. The cluster cannot tell a joiner more: an unknown token and
	// an expired one (the token cleaner deleted it) look the same.
	ErrTokenNotValid = errors.New("join: the token is not valid for this cluster or it has expired; print a new join command with `kubeyard clusters join-command`")
)

// Discover finds and pins the cluster CA with the bootstrap token, and
// returns the cluster's trust bundle (the CA, and during a CA rotation the
// other one too) with a client that authenticates with the token.
func Discover(ctx context.Context, cfg Config) ([]byte, kubernetes.Interface, error) {
	id, secret, ok := strings.Cut(cfg.Token, ".")
	if !ok || len(id) != 6 || len(secret) != 16 {
		return nil, nil, ErrBadToken
	}
	server := "https://" + cfg.Endpoint
	timeout := cfg.DiscoveryTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	discoverCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bundle, err := discover(discoverCtx, server, id, secret, cfg.CACertHashes, DialFrom(cfg.SourceIP))
	if err != nil {
		return nil, nil, err
	}
	bootstrap := &rest.Config{Host: server, BearerToken: cfg.Token, TLSClientConfig: rest.TLSClientConfig{CAData: bundle}, Timeout: 30 * time.Second, Dial: DialFrom(cfg.SourceIP)}
	client, err := kubernetes.NewForConfig(bootstrap)
	if err != nil {
		return nil, nil, err
	}
	return bundle, client, nil
}

// Dial opens a connection, as rest.Config.Dial and http.Transport take it.
type Dial = func(ctx context.Context, network, addr string) (net.Conn, error)

// DialFrom returns a Dial whose connections come from source; nil for
// none (the kernel picks the address).
func DialFrom(source net.IP) Dial {
	if source == nil {
		return nil
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: source}, Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return d.DialContext
}

// Worker does discovery and the kubelet TLS bootstrap and returns a
// kubeconfig (with a client certificate for system:node:<name>) for the node.
func Worker(ctx context.Context, cfg Config) ([]byte, error) {
	caPEM, client, err := Discover(ctx, cfg)
	if err != nil {
		return nil, err
	}
	server := "https://" + cfg.Endpoint
	nodeCert, err := NodeClientCert(ctx, client, cfg.NodeName)
	if err != nil {
		return nil, fmt.Errorf("join: TLS bootstrap: %w", err)
	}
	return pki.Kubeconfig{
		Server: server, ClusterName: "default-cluster", User: "default-auth", CAPEM: caPEM,
		Client: nodeCert,
	}.Bytes()
}

// NodeClientCert gets a client certificate for system:node:<name> through a
// CSR that kube-controller-manager approves and signs: with a bootstrap
// token client, the kubelet's TLS bootstrap; with the node's own client,
// its client certificate rotation.
func NodeClientCert(ctx context.Context, client kubernetes.Interface, name string) (*pki.KeyPair, error) {
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	return nodeCert(ctx, client, name, certificatesv1.KubeAPIServerClientKubeletSignerName, usages, nil, nil, nil)
}

// NodeServingCert gets the kubelet's serving certificate for its
// addresses through a kubernetes.io/kubelet-serving CSR, as the kubelet
// with serverTLSBootstrap does; approve approves it (nothing in the
// cluster approves those by itself), and kube-controller-manager signs.
func NodeServingCert(ctx context.Context, client kubernetes.Interface, name string, ips []net.IP, approve func(ctx context.Context, csrName string) error) (*pki.KeyPair, error) {
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	return nodeCert(ctx, client, name, certificatesv1.KubeletServingSignerName, usages, ips, []string{name}, approve)
}

func nodeCert(ctx context.Context, client kubernetes.Interface, name, signer string, usages []certificatesv1.KeyUsage, ips []net.IP, dnsNames []string, approve func(context.Context, string) error) (*pki.KeyPair, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csrPEM, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}, dnsNames, ips)
	if err != nil {
		return nil, fmt.Errorf("make CSR: %w", err)
	}
	csrName, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", signer, nil, usages, key)
	if err != nil {
		return nil, fmt.Errorf("request certificate: %w", err)
	}
	if approve != nil {
		if err := approve(ctx, csrName); err != nil {
			return nil, fmt.Errorf("approve %s: %w", csrName, err)
		}
	}
	certPEM, err := csr.WaitForCertificate(ctx, client, csrName, uid)
	if err != nil {
		return nil, fmt.Errorf("wait for %s to be signed: %w", csrName, err)
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, err
	}
	return &pki.KeyPair{Cert: certs[0], Key: key}, nil
}

// discover fetches the cluster-info ConfigMap the way kubeadm's token
// discovery does: without trusting the server yet, it checks the JWS signature
// that the bootstrap signer put on it with the token, pins a CA of its bundle
// against the hashes, then fetches again over a connection that trusts only
// that bundle, which it returns.
func discover(ctx context.Context, server, tokenID, tokenSecret string, pins []string, dial Dial) ([]byte, error) {
	if len(pins) == 0 {
		return nil, errors.New("join: discovery needs a --discovery-token-ca-cert-hash")
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var cm *corev1.ConfigMap
	var last error
	var unsigned bool
	// The signature appears once kube-controller-manager's bootstrap signer
	// has seen the token; wait for it.
	for {
		cm, last = fetchClusterInfo(ctx, insecure, server)
		unsigned = false
		if last == nil {
			if _, signed := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+tokenID]; signed {
				break
			}
			last, unsigned = fmt.Errorf("join: cluster-info has no signature for token %s", tokenID), true
		}
		select {
		case <-ctx.Done():
			if unsigned {
				return nil, fmt.Errorf("%w (token id %q)", ErrTokenNotValid, tokenID)
			}
			return nil, fmt.Errorf("join: discovery: %w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	content := cm.Data[bootstrapapi.KubeConfigKey]
	if !jws.DetachedTokenIsValid(cm.Data[bootstrapapi.JWSSignatureKeyPrefix+tokenID], content, tokenID, tokenSecret) {
		return nil, errors.New("join: discovery: cluster-info signature does not match the token")
	}
	cfg, err := clientcmd.Load([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("join: discovery: cluster-info kubeconfig: %w", err)
	}
	var caPEM []byte
	for _, c := range cfg.Clusters {
		caPEM = c.CertificateAuthorityData
	}
	certs, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("join: discovery: cluster CA: %w", err)
	}
	matched := false
	pool := x509.NewCertPool()
	for _, ca := range certs {
		pool.AddCert(ca)
		for _, pin := range pins {
			if pki.CheckPin(ca, pin) == nil {
				matched = true
			}
		}
	}
	if !matched {
		return nil, fmt.Errorf("join: discovery: %w (got %s)", pki.ErrPinMismatch, pki.SPKIHash(certs[0]))
	}
	secure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	again, err := fetchClusterInfo(ctx, secure, server)
	if err != nil {
		return nil, fmt.Errorf("join: discovery over the pinned CA: %w", err)
	}
	if again.Data[bootstrapapi.KubeConfigKey] != content {
		return nil, errors.New("join: discovery: cluster-info changed between fetches")
	}
	return caPEM, nil
}

func fetchClusterInfo(ctx context.Context, c *http.Client, server string) (*corev1.ConfigMap, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/namespaces/kube-public/configmaps/cluster-info", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join: cluster-info: HTTP %d", resp.StatusCode)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}
