package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
)

// Shared names the cluster-wide CAs and keys that every control-plane replica
// holds (and that kubeadm's kubeadm-certs Secret carries to joining replicas).
var Shared = []string{"ca", "front-proxy-ca", "etcd/ca"}

// EnsureShared creates, under pkiDir, the cluster CA, front-proxy CA, etcd CA
// and service-account key pair, keeping any that already exist (so that a
// create interrupted half way resumes without changing identities).
func EnsureShared(pkiDir, clusterName string, now time.Time) error {
	cas := map[string]string{"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd/ca": "etcd-ca"}
	for _, name := range Shared {
		if Exists(pkiDir, name) {
			continue
		}
		ca, err := NewCA(cas[name], now)
		if err != nil {
			return err
		}
		if err := ca.Write(pkiDir, name); err != nil {
			return err
		}
	}
	if !fileExists(filepath.Join(pkiDir, "sa.key")) {
		if err := WriteServiceAccountKey(pkiDir); err != nil {
			return err
		}
	}
	return ensureBundle(pkiDir)
}

// Host is one control-plane machine: its name and the addresses that its
// serving certificates must cover.
type Host struct {
	Name string
	IP   net.IP
	// EndpointIPs are the cluster endpoints (load balancer addresses) that
	// clients use to reach this replica's kube-apiserver.
	EndpointIPs []net.IP
	// ServiceIP is the first address of the service range: the in-cluster
	// "kubernetes" Service.
	ServiceIP net.IP
	Role      Role
}

// Role says what a host runs, and so which leaf certificates it needs.
type Role int

const (
	// Stacked: kube-apiserver and an etcd member (kubeadm's default).
	Stacked Role = iota
	// ControlPlaneOnly: kube-apiserver, with etcd on other hosts.
	ControlPlaneOnly
	// EtcdOnly: an external etcd member.
	EtcdOnly
	// EtcdTenant: kube-apiserver on the engine's shared etcd, which issues
	// its etcd client certificate (its etcd user) itself.
	EtcdTenant
)

// leaves lists the leaf certificates of one replica, with their issuing CA.
func leaves(h Host) []struct {
	name, ca string
	leaf     Leaf
} {
	all := allLeaves(h)
	out := all[:0]
	for _, l := range all {
		var keep bool
		switch {
		case strings.HasPrefix(l.name, "etcd/"):
			keep = h.Role == Stacked || h.Role == EtcdOnly
		case l.name == "apiserver-etcd-client":
			keep = h.Role == Stacked || h.Role == ControlPlaneOnly
		default:
			keep = h.Role != EtcdOnly
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

func allLeaves(h Host) []struct {
	name, ca string
	leaf     Leaf
} {
	localhost := []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
	apiIPs := append([]net.IP{h.ServiceIP, h.IP}, h.EndpointIPs...)
	return []struct {
		name, ca string
		leaf     Leaf
	}{
		{"apiserver", "ca", Leaf{
			CommonName: "kube-apiserver",
			DNSNames:   []string{h.Name, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs:        apiIPs, Usages: ServerUsage}},
		{"apiserver-kubelet-client", "ca", Leaf{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"kubeadm:cluster-admins"}, Usages: ClientUsage}},
		{"apiserver-etcd-client", "etcd/ca", Leaf{CommonName: "kube-apiserver-etcd-client", Usages: ClientUsage}},
		{"front-proxy-client", "front-proxy-ca", Leaf{CommonName: "front-proxy-client", Usages: ClientUsage}},
		{"etcd/server", "etcd/ca", Leaf{CommonName: h.Name, DNSNames: []string{h.Name, "localhost"}, IPs: append([]net.IP{h.IP}, localhost...), Usages: ServerClientUsage}},
		{"etcd/peer", "etcd/ca", Leaf{CommonName: h.Name, DNSNames: []string{h.Name, "localhost"}, IPs: append([]net.IP{h.IP}, localhost...), Usages: ServerClientUsage}},
		{"etcd/healthcheck-client", "etcd/ca", Leaf{CommonName: "kube-etcd-healthcheck-client", Usages: ClientUsage}},
	}
}

// EnsureLeaves issues, under pkiDir, every leaf certificate of host h that is
// missing, whose names differ from what it must cover (an endpoint added or
// removed by an IP rotation), or that its CA did not sign (a CA rotation).
// kube-apiserver's serving certificate carries the cross-certificate while
// a CA rotation has one. The shared CAs must already be there.
func EnsureLeaves(pkiDir string, h Host, now time.Time) error {
	if h.Role != EtcdOnly {
		if err := ensureBundle(pkiDir); err != nil {
			return err
		}
	}
	cas := map[string]*KeyPair{}
	for _, l := range leaves(h) {
		ca, ok := cas[l.ca]
		if !ok {
			var err error
			if ca, err = Load(pkiDir, l.ca); err != nil {
				return err
			}
			cas[l.ca] = ca
		}
		var chain []*x509.Certificate
		if l.name == "apiserver" {
			chain = crossFor(pkiDir, ca.Cert)
		}
		if cur, err := Load(pkiDir, l.name); err == nil && sameNames(cur.Cert, l.leaf) && signedBy(cur.Cert, ca.Cert) &&
			sameCerts(chainOf(filepath.Join(pkiDir, l.name+".crt")), chain) {
			continue
		}
		kp, err := ca.Issue(l.leaf, now)
		if err != nil {
			return err
		}
		if err := kp.WriteWithChain(pkiDir, l.name, chain); err != nil {
			return err
		}
	}
	return nil
}

// crossFor returns the cross-certificate of the folder, if it certifies ca.
func crossFor(pkiDir string, ca *x509.Certificate) []*x509.Certificate {
	certs, err := certutil.CertsFromFile(filepath.Join(pkiDir, CrossFile))
	if err != nil || !bytes.Equal(certs[0].RawSubjectPublicKeyInfo, ca.RawSubjectPublicKeyInfo) {
		return nil
	}
	return certs[:1]
}

func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}

// sameNames says whether cert covers exactly the leaf's DNS names and IPs.
func sameNames(cert *x509.Certificate, l Leaf) bool {
	if !slices.Equal(cert.DNSNames, l.DNSNames) || len(cert.IPAddresses) != len(l.IPs) {
		return false
	}
	for i, ip := range l.IPs {
		if !cert.IPAddresses[i].Equal(ip) {
			return false
		}
	}
	return true
}

// CopyCA copies CA name (certificate and key) from one PKI folder to
// another, as kubeadm's external-etcd setup copies the etcd CA to every
// etcd host. An existing copy is kept.
func CopyCA(from, to, name string) error {
	if Exists(to, name) {
		return nil
	}
	ca, err := Load(from, name)
	if err != nil {
		return err
	}
	return ca.Write(to, name)
}

// Kubeconfig is a kubeconfig with an embedded client certificate.
type Kubeconfig struct {
	Server      string
	ClusterName string
	User        string
	CAPEM       []byte
	Client      *KeyPair
}

// Bytes renders k as a kubeconfig file.
func (k Kubeconfig) Bytes() ([]byte, error) {
	keyPEM, err := k.Client.KeyPEM()
	if err != nil {
		return nil, err
	}
	context := k.User + "@" + k.ClusterName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[k.ClusterName] = &clientcmdapi.Cluster{Server: k.Server, CertificateAuthorityData: k.CAPEM}
	cfg.AuthInfos[k.User] = &clientcmdapi.AuthInfo{ClientCertificateData: k.Client.CertPEM(), ClientKeyData: keyPEM}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: k.ClusterName, AuthInfo: k.User}
	cfg.CurrentContext = context
	return clientcmd.Write(*cfg)
}

// KubeconfigUser is one of the kubeconfig files kubeadm writes.
type KubeconfigUser struct {
	File          string
	CommonName    string
	Organizations []string
	// Local is true for components that talk to their own replica's
	// kube-apiserver rather than to the cluster endpoint.
	Local bool
}

// KubeconfigUsers are the kubeconfigs of a control-plane host.
var KubeconfigUsers = []KubeconfigUser{
	{File: "admin.conf", CommonName: "kubernetes-admin", Organizations: []string{"kubeadm:cluster-admins"}},
	{File: "super-admin.conf", CommonName: "kubernetes-super-admin", Organizations: []string{"system:masters"}},
	{File: "controller-manager.conf", CommonName: "system:kube-controller-manager", Local: true},
	{File: "scheduler.conf", CommonName: "system:kube-scheduler", Local: true},
}

// EnsureKubeconfigs writes into dir the kubeconfigs of KubeconfigUsers: each
// one trusts the folder's trust bundle and talks to its server, and its
// client certificate is signed by the cluster CA. A kubeconfig that is
// already so is left alone; one whose certificate another CA signed (a CA
// rotation) gets a new one.
func EnsureKubeconfigs(dir, pkiDir, clusterName, endpoint, local string, now time.Time) error {
	ca, err := Load(pkiDir, "ca")
	if err != nil {
		return err
	}
	bundle, err := Bundle(pkiDir)
	if err != nil {
		return err
	}
	for _, u := range KubeconfigUsers {
		path := filepath.Join(dir, u.File)
		server := endpoint
		if u.Local {
			server = local
		}
		cfg, err := clientcmd.LoadFromFile(path)
		if err == nil && signedClient(cfg, ca.Cert) {
			if err := rewrite(path, cfg, server, bundle); err != nil {
				return err
			}
			continue
		}
		client, err := ca.Issue(Leaf{CommonName: u.CommonName, Organizations: u.Organizations, Usages: ClientUsage}, now)
		if err != nil {
			return err
		}
		data, err := Kubeconfig{Server: server, ClusterName: clusterName, User: u.CommonName, CAPEM: bundle, Client: client}.Bytes()
		if err != nil {
			return fmt.Errorf("pki: kubeconfig %s: %w", u.File, err)
		}
		if err := WriteFile(path, data); err != nil {
			return err
		}
	}
	return nil
}

// signedClient says whether every client certificate of cfg is signed by ca.
func signedClient(cfg *clientcmdapi.Config, ca *x509.Certificate) bool {
	for _, a := range cfg.AuthInfos {
		cert, err := ParseCert(a.ClientCertificateData)
		if err != nil || !signedBy(cert, ca) {
			return false
		}
	}
	return len(cfg.AuthInfos) > 0
}

// rewrite points every cluster of the kubeconfig at path to server, trusting
// caPEM, if it does not already.
func rewrite(path string, cfg *clientcmdapi.Config, server string, caPEM []byte) error {
	changed := false
	for _, c := range cfg.Clusters {
		if c.Server != server || !bytes.Equal(c.CertificateAuthorityData, caPEM) {
			c.Server, c.CertificateAuthorityData, changed = server, caPEM, true
		}
	}
	if !changed {
		return nil
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return WriteFile(path, data)
}
