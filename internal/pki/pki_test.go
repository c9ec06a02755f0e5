package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newReplicaPKI writes a new cluster's shared PKI and one replica's leaves
// into a temporary folder.
func newReplicaPKI(t *testing.T, now time.Time) (string, Host) {
	t.Helper()
	dir := t.TempDir()
	if err := EnsureShared(dir, "demo", now); err != nil {
		t.Fatal(err)
	}
	host := Host{Name: "demo-cp-0", IP: net.ParseIP("127.11.0.2"), EndpointIPs: []net.IP{net.ParseIP("127.10.0.2")}, ServiceIP: net.ParseIP("34.118.224.1")}
	if err := EnsureLeaves(dir, host, now); err != nil {
		t.Fatal(err)
	}
	return dir, host
}

func TestKubeadmLayoutChainsAndSANs(t *testing.T) {
	now := time.Now()
	dir, _ := newReplicaPKI(t, now)
	for _, f := range []string{"ca", "front-proxy-ca", "etcd/ca", "apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client", "etcd/server", "etcd/peer", "etcd/healthcheck-client"} {
		for _, ext := range []string{".crt", ".key"} {
			info, err := os.Stat(filepath.Join(dir, f+ext))
			if err != nil {
				t.Fatalf("missing %s%s", f, ext)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s%s has mode %v", f, ext, info.Mode().Perm())
			}
		}
	}
	for _, f := range []string{"sa.key", "sa.pub"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s", f)
		}
	}
	chains := map[string]string{"apiserver": "ca", "front-proxy-client": "front-proxy-ca", "etcd/server": "etcd/ca", "apiserver-etcd-client": "etcd/ca"}
	for leaf, ca := range chains {
		l, _ := Load(dir, leaf)
		c, _ := Load(dir, ca)
		if err := l.Cert.CheckSignatureFrom(c.Cert); err != nil {
			t.Errorf("%s is not signed by %s: %v", leaf, ca, err)
		}
	}
	api, _ := Load(dir, "apiserver")
	pool := x509.NewCertPool()
	ca, _ := Load(dir, "ca")
	pool.AddCert(ca.Cert)
	for _, name := range []string{"127.10.0.2", "127.11.0.2", "34.118.224.1", "kubernetes.default.svc"} {
		if _, err := api.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("apiserver certificate is not valid for %s: %v", name, err)
		}
	}
	// A second run keeps what exists: identities never change under a resume.
	before := SPKIHash(ca.Cert)
	if err := EnsureShared(dir, "demo", now); err != nil {
		t.Fatal(err)
	}
	again, _ := Load(dir, "ca")
	if SPKIHash(again.Cert) != before {
		t.Fatal("EnsureShared replaced an existing CA")
	}
}

func TestPin(t *testing.T) {
	ca, err := NewCA("kubernetes", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("kubernetes", time.Now())
	pin := SPKIHash(ca.Cert)
	if !strings.HasPrefix(pin, "sha256:") || len(pin) != 7+64 {
		t.Fatalf("pin %q", pin)
	}
	if CheckPin(ca.Cert, pin) != nil || CheckPin(other.Cert, pin) != ErrPinMismatch {
		t.Fatal("pin check does not tell CAs apart")
	}
}

func TestKubeconfigs(t *testing.T) {
	dir := t.TempDir()
	if err := EnsureShared(filepath.Join(dir, "pki"), "demo", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := EnsureKubeconfigs(dir, filepath.Join(dir, "pki"), "demo", "https://127.10.0.2", "https://127.11.0.2:6443", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, u := range KubeconfigUsers {
		data, err := os.ReadFile(filepath.Join(dir, u.File))
		if err != nil {
			t.Fatal(err)
		}
		want := "https://127.10.0.2"
		if u.Local {
			want = "https://127.11.0.2:6443"
		}
		if !strings.Contains(string(data), "server: "+want+"\n") {
			t.Errorf("%s does not point at %s", u.File, want)
		}
	}
}

// TestExternalEtcdRoles: in kubeadm's external etcd topology an etcd host
// holds a copy of the etcd CA and only the etcd leaves; a control-plane host
// holds no etcd server or peer certificate, only its etcd client one; a
// tenant of the shared etcd holds no etcd certificate of its own making.
func TestExternalEtcdRoles(t *testing.T) {
	now := time.Now()
	shared := t.TempDir()
	if err := EnsureShared(shared, "demo", now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		role       Role
		has, lacks []string
	}{
		{EtcdOnly, []string{"etcd/server", "etcd/peer", "etcd/healthcheck-client"}, []string{"apiserver", "apiserver-etcd-client", "front-proxy-client"}},
		{ControlPlaneOnly, []string{"apiserver", "apiserver-etcd-client", "front-proxy-client"}, []string{"etcd/server", "etcd/peer"}},
		// On the shared etcd, the etcd client certificate is the shared
		// etcd's to issue: it names the cluster's etcd user.
		{EtcdTenant, []string{"apiserver", "front-proxy-client"}, []string{"apiserver-etcd-client", "etcd/server", "etcd/peer", "etcd/healthcheck-client"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if tt.role == EtcdOnly {
			if err := CopyCA(shared, dir, "etcd/ca"); err != nil {
				t.Fatal(err)
			}
		} else if err := EnsureShared(dir, "demo", now); err != nil {
			t.Fatal(err)
		}
		if err := EnsureLeaves(dir, Host{Name: "demo-host", IP: net.ParseIP("127.11.0.9"), ServiceIP: net.ParseIP("34.118.224.1"), Role: tt.role}, now); err != nil {
			t.Fatalf("role %d: %v", tt.role, err)
		}
		for _, f := range tt.has {
			if !Exists(dir, f) {
				t.Errorf("role %d: missing %s", tt.role, f)
			}
		}
		for _, f := range tt.lacks {
			if Exists(dir, f) {
				t.Errorf("role %d: has %s", tt.role, f)
			}
		}
	}
	a, _ := Load(shared, "etcd/ca")
	dir := t.TempDir()
	if err := CopyCA(shared, dir, "etcd/ca"); err != nil {
		t.Fatal(err)
	}
	b, _ := Load(dir, "etcd/ca")
	if SPKIHash(a.Cert) != SPKIHash(b.Cert) {
		t.Fatal("CopyCA changed the CA")
	}
}

// A pair whose key could not be written leaves no certificate behind: a
// certificate without its key would pass for a CA that exists.
func TestWriteLeavesNoCertificateWithoutItsKey(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("kubernetes", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "ca.key"), 0o700); err != nil { // the key's write fails
		t.Fatal(err)
	}
	if err := ca.Write(dir, "ca"); err == nil {
		t.Fatal("the write went through")
	}
	if Exists(dir, "ca") {
		t.Fatal("ca.crt was written without its key")
	}
}
