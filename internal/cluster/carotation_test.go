package cluster

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// Every phase trusts the CA that signs in it, trust moves before signing,
// and only the last phase trusts the new CA alone.
func TestCARotationPhases(t *testing.T) {
	now := time.Now()
	prev, _ := pki.NewCA("kubernetes", now)
	next, _ := pki.NewCA("kubernetes", now)
	cross, _ := pki.CrossSign(prev, next)
	key, _ := next.KeyPEM()
	saKey, _ := pki.NewKey()
	saPEM, _ := (&pki.KeyPair{Key: saKey}).KeyPEM()
	oldSAPub := []byte("-----BEGIN PUBLIC KEY-----\nb2xk\n-----END PUBLIC KEY-----\n")
	rot := &CARotation{OldCA: prev.CertPEM(), NewCA: next.CertPEM(), NewCAKey: key, Cross: pki.EncodeCert(cross), OldSAPub: oldSAPub, NewSAKey: saPEM}
	newSAPub, _ := pki.PublicKeyPEM(saPEM)
	trimmed := func(b []byte) string { return strings.TrimSpace(string(b)) }

	want := map[CAPhase]struct {
		signer  []byte // nil: ca.crt not written (the old CA signs)
		bundle  []byte
		cross   bool
		saKey   []byte
		saPub   []byte
		removes string
	}{
		CATrustBoth: {nil, pki.Concat(prev.CertPEM(), next.CertPEM()), false, nil, pki.Concat(oldSAPub, newSAPub), ""},
		CASignNew:   {next.CertPEM(), pki.Concat(next.CertPEM(), prev.CertPEM()), true, saPEM, pki.Concat(newSAPub, oldSAPub), ""},
		CATrustNew:  {next.CertPEM(), next.CertPEM(), false, saPEM, newSAPub, pki.CrossFile},
	}
	for _, phase := range CAPhases {
		rot.Phase = phase
		files, err := rot.files()
		if err != nil {
			t.Fatal(err)
		}
		w := want[phase]
		if trimmed(files["ca.crt"]) != trimmed(w.signer) || trimmed(files[pki.BundleFile]) != trimmed(w.bundle) {
			t.Errorf("%s: wrong signer or bundle", phase)
		}
		data, listed := files[pki.CrossFile]
		switch {
		case w.cross && data == nil:
			t.Errorf("%s: no cross-certificate", phase)
		case w.removes != "" && (!listed || data != nil):
			t.Errorf("%s: the cross-certificate is not removed", phase)
		case !w.cross && w.removes == "" && listed:
			t.Errorf("%s: touches the cross-certificate", phase)
		}
		if trimmed(files["sa.key"]) != trimmed(w.saKey) || trimmed(files["sa.pub"]) != trimmed(w.saPub) {
			t.Errorf("%s: wrong service-account files", phase)
		}
	}
	// A cluster CA rotation leaves the service-account key alone.
	rot.OldSAPub, rot.NewSAKey = nil, nil
	for _, phase := range CAPhases {
		rot.Phase = phase
		files, _ := rot.files()
		if _, ok := files["sa.key"]; ok {
			t.Errorf("%s: writes sa.key without a new service-account key", phase)
		}
		if _, ok := files["sa.pub"]; ok {
			t.Errorf("%s: writes sa.pub without a new service-account key", phase)
		}
	}
}

// A phase cut between ca.crt and ca.key (the engine killed mid-write) is
// whole again once written anew: the pair matches.
func TestWriteCAPhaseMendsATornPair(t *testing.T) {
	now := time.Now()
	prev, _ := pki.NewCA("kubernetes", now)
	next, _ := pki.NewCA("kubernetes", now)
	cross, _ := pki.CrossSign(prev, next)
	key, _ := next.KeyPEM()
	s := Spec{Cluster: controlplane.Cluster{Name: "c", Dir: t.TempDir()}, Hosts: []controlplane.Host{{Index: 0, IP: net.ParseIP("127.0.0.2")}}}
	dir := s.PKIDir(s.Hosts[0])
	if err := prev.Write(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	// The new certificate landed, its key did not.
	if err := pki.WriteFile(filepath.Join(dir, "ca.crt"), next.CertPEM()); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Load(dir, "ca"); err == nil {
		t.Fatal("the torn pair loads")
	}
	rot := &CARotation{Phase: CASignNew, OldCA: prev.CertPEM(), NewCA: next.CertPEM(), NewCAKey: key, Cross: pki.EncodeCert(cross)}
	if err := writeCAPhase(s, rot); err != nil {
		t.Fatal(err)
	}
	if ca, err := pki.Load(dir, "ca"); err != nil || !ca.Cert.Equal(next.Cert) {
		t.Fatalf("after writing the phase again: %v", err)
	}
}
