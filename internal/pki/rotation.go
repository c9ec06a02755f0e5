package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// The cluster CA is split in two so that it can be rotated without a
// moment in which a component trusts only a CA nobody presents:
//   - ca.crt/ca.key (kubeadm's names) is the signing CA, one certificate:
//     kube-controller-manager's CSR signer refuses a bundle.
//   - BundleFile is what the cluster trusts: kube-apiserver's client CA,
//     kube-root-ca.crt, every kubeconfig's certificate-authority-data and
//     cluster-info. It is ca.crt, except during a CA rotation, when it holds
//     the old and the new CA (the signing one first).
//   - CrossFile, during a rotation once the new CA signs, is the new CA
//     signed by the old one: kube-apiserver serves it after its leaf, so
//     that clients that trust only the old CA still verify it.
const (
	BundleFile = "ca-bundle.crt"
	CrossFile  = "ca-cross.crt"
)

// Bundle reads the trust bundle of the PKI folder (ca.crt when there is
// none, as in a folder written before bundles existed).
func Bundle(pkiDir string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(pkiDir, BundleFile))
	if os.IsNotExist(err) {
		data, err = os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	}
	if err != nil {
		return nil, fmt.Errorf("pki: trust bundle: %w", err)
	}
	return data, nil
}

// ensureBundle writes the trust bundle as ca.crt if there is none.
func ensureBundle(pkiDir string) error {
	if fileExists(filepath.Join(pkiDir, BundleFile)) {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return WriteFile(filepath.Join(pkiDir, BundleFile), data)
}

// CrossSign returns next's certificate signed by prev: the same subject
// and key (so the same key identifier), issued by prev. A chain leaf,
// cross-certificate verifies against either CA.
func CrossSign(prev, next *KeyPair) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               next.Cert.Subject,
		SubjectKeyId:          next.Cert.SubjectKeyId,
		NotBefore:             next.Cert.NotBefore,
		NotAfter:              prev.Cert.NotAfter,
		KeyUsage:              next.Cert.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if next.Cert.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = next.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, prev.Cert, next.Cert.PublicKey, prev.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: cross-sign: %w", err)
	}
	return x509.ParseCertificate(der)
}

// ParseKeyPair parses a certificate and its key from PEM.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: key is not a signer")
	}
	return &KeyPair{Cert: cert, Key: signer}, nil
}

// Concat joins PEM blocks into one file's content.
func Concat(pems ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range pems {
		b.Write(bytes.TrimSpace(p))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// PublicKeyPEM returns the public half of a private key in PEM, as sa.pub
// holds it.
func PublicKeyPEM(keyPEM []byte) ([]byte, error) {
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: key is not a signer")
	}
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// signedBy says whether cert was issued by ca.
func signedBy(cert, ca *x509.Certificate) bool { return cert.CheckSignatureFrom(ca) == nil }

// chainOf returns the certificates after the first in a PEM file.
func chainOf(path string) []*x509.Certificate {
	certs, err := certutil.CertsFromFile(path)
	if err != nil || len(certs) < 2 {
		return nil
	}
	return certs[1:]
}
