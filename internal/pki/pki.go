// Package pki issues and stores a cluster's certificates in the kubeadm
// layout (ca, apiserver, apiserver-kubelet-client, apiserver-etcd-client,
// front-proxy-ca, front-proxy-client, sa.key/sa.pub, etcd/ca, etcd/server,
// etcd/peer, etcd/healthcheck-client) and the kubeconfigs that go with them.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

const (
	// CAValidity is how long a CA is valid (kubeadm: 10 years).
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long a leaf certificate is valid (kubeadm: 1 year).
	LeafValidity = 365 * 24 * time.Hour
)

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	Usages        []x509.ExtKeyUsage
}

// Server and client usages, for Leaf.Usages.
var (
	ServerUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	ClientUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	ServerClientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// NewKey makes a new private key (ECDSA P-256: fast to generate, accepted by
// every Kubernetes component, including for service-account signing).
func NewKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
}

// NewCA makes a self-signed CA valid from now.
func NewCA(commonName string, now time.Time) (*KeyPair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("pki: new CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-5 * time.Minute).UTC(),
		NotAfter:              now.Add(CAValidity).UTC(),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign CA %s: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// Issue signs a new leaf certificate for l with a new key.
func (ca *KeyPair) Issue(l Leaf, now time.Time) (*KeyPair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("pki: new key for %s: %w", l.CommonName, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Organizations},
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
		NotBefore:    now.Add(-5 * time.Minute).UTC(),
		NotAfter:     notAfter.UTC(),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.Usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %s: %w", l.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM returns the certificate in PEM.
func (kp *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: kp.Cert.Raw})
}

// KeyPEM returns the private key in PEM.
func (kp *KeyPair) KeyPEM() ([]byte, error) {
	return keyutil.MarshalPrivateKeyToPEM(kp.Key)
}

// Write stores the pair as dir/name.crt and dir/name.key (0600).
func (kp *KeyPair) Write(dir, name string) error { return kp.WriteWithChain(dir, name, nil) }

// WriteWithChain is Write with intermediate certificates after the leaf.
func (kp *KeyPair) WriteWithChain(dir, name string, chain []*x509.Certificate) error {
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return fmt.Errorf("pki: encode %s key: %w", name, err)
	}
	certPEM := kp.CertPEM()
	for _, c := range chain {
		certPEM = append(certPEM, EncodeCert(c)...)
	}
	// The key first: a crash between the two writes then leaves a new key
	// beside the old certificate (or none), which counts as missing and is
	// made again; a certificate without its key would look like a CA that
	// exists.
	if err := WriteFile(filepath.Join(dir, name+".key"), keyPEM); err != nil {
		return err
	}
	return WriteFile(filepath.Join(dir, name+".crt"), certPEM)
}

// Load reads dir/name.crt and dir/name.key.
func Load(dir, name string) (*KeyPair, error) {
	certs, err := certutil.CertsFromFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, fmt.Errorf("pki: load %s: %w", name, err)
	}
	key, err := keyutil.PrivateKeyFromFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, fmt.Errorf("pki: load %s key: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s key is not a signer", name)
	}
	// A crash between writing a certificate and its key leaves a pair
	// that does not match; it counts as missing, and is issued again.
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil || !bytes.Equal(pub, certs[0].RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("pki: %s: the key does not match the certificate", name)
	}
	return &KeyPair{Cert: certs[0], Key: signer}, nil
}

// Exists reports whether dir/name.crt exists.
func Exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name+".crt"))
	return err == nil
}

// WriteFile writes data atomically with mode 0600, creating parent folders:
// a crash never leaves a half-written certificate or key behind.
func WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteServiceAccountKey stores a new service-account signing key as
// dir/sa.key and its public half as dir/sa.pub.
func WriteServiceAccountKey(dir string) error {
	key, err := NewKey()
	if err != nil {
		return fmt.Errorf("pki: sa key: %w", err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(dir, "sa.key"), keyPEM); err != nil {
		return err
	}
	return WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
}

// SPKIHash is the kubeadm CA pin: "sha256:" and the hex SHA-256 of the
// certificate's SubjectPublicKeyInfo.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ErrPinMismatch is returned when a CA does not match the expected pin.
var ErrPinMismatch = errors.New("pki: CA public key does not match the discovery-token-ca-cert-hash")

// CheckPin verifies that cert matches pin ("sha256:<hex>").
func CheckPin(cert *x509.Certificate, pin string) error {
	if SPKIHash(cert) != pin {
		return ErrPinMismatch
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// EncodeCert returns cert in PEM.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: cert.Raw})
}

// ParseCert parses the first certificate in PEM data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return certs[0], nil
}
