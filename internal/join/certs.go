package join

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubeyard/kubeyard/internal/pki"
)

// CertsSecret is the Secret that carries the shared control-plane
// certificates to joining replicas, as `kubeadm init --upload-certs` makes it.
const CertsSecret = "kubeadm-certs"

// CertsTTL is how long the uploaded certificates live (kubeadm: 2 hours).
const CertsTTL = 2 * time.Hour

// sharedFiles are the files replicas share: the CAs with their keys and the
// service-account key pair. Leaf certificates are never shared.
var sharedFiles = []string{"ca.crt", "ca.key", "ca-bundle.crt", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key"}

// optionalFiles are shared when they exist: the cross-certificate that
// kube-apiserver serves during a CA rotation.
var optionalFiles = []string{"ca-cross.crt"}

// ErrWrongCertificateKey is returned when the certificates cannot be
// decrypted with the key given.
var ErrWrongCertificateKey = errors.New("join: the certificate key does not decrypt the kubeadm-certs Secret")

// NewCertificateKey returns a new certificate key: 32 random bytes in hex,
// an AES-256 key.
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ErrCertificateKeyFormat is returned for a key that is not 32 bytes in hex.
var ErrCertificateKeyFormat = errors.New("join: a certificate key is 64 hex digits (32 bytes)")

// CheckCertificateKey says whether key has the form of a certificate key.
func CheckCertificateKey(key string) error {
	if raw, err := hex.DecodeString(key); err != nil || len(raw) != 32 {
		return ErrCertificateKeyFormat
	}
	return nil
}

func gcmFor(key string) (cipher.AEAD, error) {
	if err := CheckCertificateKey(key); err != nil {
		return nil, err
	}
	raw, _ := hex.DecodeString(key)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func secretKeyName(file string) string { return strings.ReplaceAll(file, "/", "-") }

// UploadCerts encrypts the shared certificates of pkiDir under key into the
// kubeadm-certs Secret, owned by a bootstrap token that expires after
// CertsTTL (the token cleaner deletes the token, and the garbage collector
// the Secret with it), readable by the node bootstrap group.
func UploadCerts(ctx context.Context, client kubernetes.Interface, pkiDir, key string) error {
	gcm, err := gcmFor(key)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for _, f := range append(append([]string{}, sharedFiles...), optionalFiles...) {
		plain, err := os.ReadFile(filepath.Join(pkiDir, f))
		if os.IsNotExist(err) && slices.Contains(optionalFiles, f) {
			continue
		}
		if err != nil {
			return fmt.Errorf("join: upload certs: %w", err)
		}
		nonce := make([]byte, gcm.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		data[secretKeyName(f)] = gcm.Seal(nonce, nonce, plain, nil)
	}
	owner, err := CreateBootstrapToken(ctx, client, Token{TTL: CertsTTL, Description: "Proxy for managing TTL for the kubeadm-certs secret"})
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: CertsSecret, Namespace: metav1.NamespaceSystem,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Secret", Name: bootstraputil.BootstrapTokenSecretName(owner.ID()), UID: owner.SecretUID,
			}},
		},
		Data: data,
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	if _, err := secrets.Create(ctx, secret, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("join: upload certs: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("join: upload certs: %w", err)
	}
	return certsRBAC(ctx, client)
}

// certsRBAC lets bootstrap tokens read the kubeadm-certs Secret, and nothing
// else in kube-system.
func certsRBAC(ctx context.Context, client kubernetes.Interface) error {
	const name = "kubeadm:kubeadm-certs"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{CertsSecret}}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: NodeBootstrapGroup}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// DownloadCerts reads the kubeadm-certs Secret (with a bootstrap-token
// client), decrypts every file with key and writes them under pkiDir. A
// wrong key writes nothing: every file is decrypted before any is written.
func DownloadCerts(ctx context.Context, client kubernetes.Interface, key, pkiDir string) error {
	gcm, err := gcmFor(key)
	if err != nil {
		return err
	}
	secret, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, CertsSecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("join: download certs: %w", err)
	}
	plain := map[string][]byte{}
	for _, f := range append(append([]string{}, sharedFiles...), optionalFiles...) {
		sealed, ok := secret.Data[secretKeyName(f)]
		if !ok && slices.Contains(optionalFiles, f) {
			continue
		}
		if len(sealed) < gcm.NonceSize() {
			return fmt.Errorf("join: download certs: %s is missing from the Secret", f)
		}
		data, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
		if err != nil {
			return ErrWrongCertificateKey
		}
		plain[f] = data
	}
	for f, data := range plain {
		if err := pki.WriteFile(filepath.Join(pkiDir, f), data); err != nil {
			return err
		}
	}
	return nil
}
