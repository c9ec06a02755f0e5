package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
)

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// A leaf of the new CA served with the cross-certificate verifies against
// the old CA alone and against the new CA alone; without it, only against
// the new one.
func TestCrossSignedChainVerifiesWithEitherCA(t *testing.T) {
	now := time.Now()
	prev, _ := NewCA("kubernetes", now)
	next, _ := NewCA("kubernetes", now)
	cross, err := CrossSign(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := next.Issue(Leaf{CommonName: "kube-apiserver", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usages: ServerUsage}, now)
	verify := func(root *x509.Certificate, intermediates ...*x509.Certificate) error {
		_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool(root), Intermediates: pool(intermediates...), KeyUsages: ServerUsage})
		return err
	}
	if err := verify(prev.Cert, cross); err != nil {
		t.Errorf("old CA with the cross-certificate: %v", err)
	}
	if err := verify(next.Cert, cross); err != nil {
		t.Errorf("new CA with the cross-certificate: %v", err)
	}
	if verify(prev.Cert) == nil {
		t.Error("the old CA verifies the new leaf without the cross-certificate")
	}
}

// When the signing CA changes, EnsureLeaves issues again what it signs (and
// only that), puts the cross-certificate after kube-apiserver's leaf while
// there is one, and EnsureKubeconfigs gives new client certificates that
// trust the bundle.
func TestLeavesFollowTheSigningCA(t *testing.T) {
	now := time.Now()
	dir, host := newReplicaPKI(t, now)
	if err := EnsureKubeconfigs(dir, dir, "demo", "https://127.10.0.2", "https://127.11.0.2:6443", now); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if string(read(BundleFile)) != string(read("ca.crt")) {
		t.Fatal("a new cluster's trust bundle is not its CA")
	}
	etcdClient, frontProxy := read("apiserver-etcd-client.crt"), read("front-proxy-client.crt")

	prev, _ := Load(dir, "ca")
	next, _ := NewCA("kubernetes", now)
	cross, _ := CrossSign(prev, next)
	if err := next.Write(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	bundle := Concat(next.CertPEM(), prev.CertPEM())
	for name, data := range map[string][]byte{BundleFile: bundle, CrossFile: EncodeCert(cross)} {
		if err := WriteFile(filepath.Join(dir, name), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureLeaves(dir, host, now); err != nil {
		t.Fatal(err)
	}
	if err := EnsureKubeconfigs(dir, dir, "demo", "https://127.10.0.2", "https://127.11.0.2:6443", now); err != nil {
		t.Fatal(err)
	}
	served, _ := certutil.CertsFromFile(filepath.Join(dir, "apiserver.crt"))
	if len(served) != 2 || served[0].CheckSignatureFrom(next.Cert) != nil || !served[1].Equal(cross) {
		t.Fatalf("apiserver.crt: want a new leaf and the cross-certificate, got %d certificates", len(served))
	}
	kubelet, _ := Load(dir, "apiserver-kubelet-client")
	if kubelet.Cert.CheckSignatureFrom(next.Cert) != nil {
		t.Error("apiserver-kubelet-client was not issued again")
	}
	if string(read("apiserver-etcd-client.crt")) != string(etcdClient) || string(read("front-proxy-client.crt")) != string(frontProxy) {
		t.Error("leaves of the etcd or front-proxy CA were issued again")
	}
	for _, u := range KubeconfigUsers {
		cfg, err := clientcmd.LoadFromFile(filepath.Join(dir, u.File))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range cfg.AuthInfos {
			if cert, _ := ParseCert(a.ClientCertificateData); cert.CheckSignatureFrom(next.Cert) != nil {
				t.Errorf("%s has a client certificate of the old CA", u.File)
			}
		}
		for _, c := range cfg.Clusters {
			if string(c.CertificateAuthorityData) != string(bundle) {
				t.Errorf("%s does not trust the bundle", u.File)
			}
		}
	}

	// Once the cross-certificate is gone, the leaf is served alone; a
	// second run changes nothing.
	if err := os.Remove(filepath.Join(dir, CrossFile)); err != nil {
		t.Fatal(err)
	}
	if err := EnsureLeaves(dir, host, now); err != nil {
		t.Fatal(err)
	}
	after := read("apiserver.crt")
	if served, _ := certutil.CertsFromFile(filepath.Join(dir, "apiserver.crt")); len(served) != 1 {
		t.Fatalf("apiserver.crt still has %d certificates", len(served))
	}
	if err := EnsureLeaves(dir, host, now); err != nil {
		t.Fatal(err)
	}
	if string(read("apiserver.crt")) != string(after) {
		t.Error("a second run issued the apiserver certificate again")
	}
}

// A certificate whose key does not match (a crash between the two writes)
// counts as missing.
func TestMismatchedKeyIsNotLoaded(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("kubernetes", time.Now())
	other, _ := NewCA("kubernetes", time.Now())
	if err := ca.Write(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := other.KeyPEM()
	if err := WriteFile(filepath.Join(dir, "ca.key"), keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "ca"); err == nil {
		t.Fatal("a certificate with another key loaded")
	}
}
