package join

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeyard/kubeyard/internal/pki"
)

func TestCertificateKey(t *testing.T) {
	k, err := NewCertificateKey()
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(k) {
		t.Fatalf("key %q %v", k, err)
	}
}

func TestUploadDownloadCerts(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := pki.EnsureShared(src, "demo", time.Now()); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	key, _ := NewCertificateKey()
	if err := UploadCerts(ctx, client, src, key); err != nil {
		t.Fatal(err)
	}

	secret, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, CertsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := os.ReadFile(filepath.Join(src, "ca.key"))
	if bytes.Contains(secret.Data["ca.key"], caKey[30:60]) {
		t.Fatal("the CA key is stored in clear")
	}
	if len(secret.OwnerReferences) != 1 {
		t.Fatalf("owner references %v", secret.OwnerReferences)
	}
	owner, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, secret.OwnerReferences[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("owner token: %v", err)
	}
	exp, _ := time.Parse(time.RFC3339, string(owner.StringData[bootstrapapi.BootstrapTokenExpirationKey]))
	if d := time.Until(exp); d < CertsTTL-time.Minute || d > CertsTTL {
		t.Fatalf("owner token expires in %v, want %v", d, CertsTTL)
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Get(ctx, "kubeadm:kubeadm-certs", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	wrong := t.TempDir()
	otherKey, _ := NewCertificateKey()
	if err := DownloadCerts(ctx, client, otherKey, wrong); err != ErrWrongCertificateKey {
		t.Fatalf("wrong key: %v", err)
	}
	if entries, _ := os.ReadDir(wrong); len(entries) != 0 {
		t.Fatalf("a wrong key wrote %v", entries)
	}

	dst := t.TempDir()
	if err := DownloadCerts(ctx, client, key, dst); err != nil {
		t.Fatal(err)
	}
	for _, f := range sharedFiles {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "ca-cross.crt")); err == nil {
		t.Error("a cross-certificate appeared from nowhere")
	}

	// During a CA rotation the cross-certificate travels too.
	cross := []byte("cross-certificate")
	if err := pki.WriteFile(filepath.Join(src, "ca-cross.crt"), cross); err != nil {
		t.Fatal(err)
	}
	if err := UploadCerts(ctx, client, src, key); err != nil {
		t.Fatal(err)
	}
	rotating := t.TempDir()
	if err := DownloadCerts(ctx, client, key, rotating); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(rotating, "ca-cross.crt")); !bytes.Equal(got, cross) {
		t.Errorf("the cross-certificate did not travel: %q", got)
	}
}
