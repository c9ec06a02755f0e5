package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubeyard/kubeyard/internal/controlplane"
	"github.com/kubeyard/kubeyard/internal/node"
	"github.com/kubeyard/kubeyard/internal/pki"
	"github.com/kubeyard/kubeyard/internal/poll"
)

// CAPhase is a step of a cluster CA rotation. The phases move trust before
// signing, so that no component ever trusts only a CA nobody presents:
//
//	TrustBoth: everything trusts the old and the new CA; the old one signs.
//	SignNew:   the new CA signs; every leaf certificate, kubeconfig and node
//	           client certificate is issued again from it; kube-apiserver
//	           serves its new certificate with the cross-certificate, so
//	           clients that trust only the old CA still verify it.
//	TrustNew:  the old CA is trusted no more.
type CAPhase string

const (
	CATrustBoth CAPhase = "TrustBoth"
	CASignNew   CAPhase = "SignNew"
	CATrustNew  CAPhase = "TrustNew"
)

// CAPhases is the order of the phases.
var CAPhases = []CAPhase{CATrustBoth, CASignNew, CATrustNew}

// CARotation is a cluster CA rotation as the engine records it: both CAs,
// the cross-certificate and (for a credential rotation) the service-account
// keys, made once at the start. Every phase writes its files from these, so
// a phase interrupted by a crash runs again and writes the same.
type CARotation struct {
	Phase    CAPhase `json:"phase"`
	OldCA    []byte  `json:"oldCA"`
	NewCA    []byte  `json:"newCA"`
	NewCAKey []byte  `json:"newCAKey"`
	Cross    []byte  `json:"cross"`
	// OldSAPub and NewSAKey are set when the service-account signing key
	// is replaced too (GKE's credential rotation; not the bare-metal CA
	// rotation).
	OldSAPub []byte `json:"oldSAPub,omitempty"`
	NewSAKey []byte `json:"newSAKey,omitempty"`
}

// NewCARotation makes the new cluster CA of cluster s; see newCARotation.
func (r *Runtime) NewCARotation(s Spec, serviceAccountKeys bool, now time.Time) (*CARotation, error) {
	return newCARotation(s, serviceAccountKeys, now)
}

// newCARotation makes the new cluster CA (and, with serviceAccountKeys, a
// new service-account signing key) for cluster s. The etcd and front-proxy
// CAs are not touched.
func newCARotation(s Spec, serviceAccountKeys bool, now time.Time) (*CARotation, error) {
	dir := s.SharedPKIDir()
	old, err := pki.Load(dir, "ca")
	if err != nil {
		return nil, err
	}
	next, err := pki.NewCA("kubernetes", now)
	if err != nil {
		return nil, err
	}
	cross, err := pki.CrossSign(old, next)
	if err != nil {
		return nil, err
	}
	keyPEM, err := next.KeyPEM()
	if err != nil {
		return nil, err
	}
	rot := &CARotation{Phase: CATrustBoth, OldCA: old.CertPEM(), NewCA: next.CertPEM(), NewCAKey: keyPEM, Cross: pki.EncodeCert(cross)}
	if serviceAccountKeys {
		if rot.OldSAPub, err = os.ReadFile(filepath.Join(dir, "sa.pub")); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", s.Name, err)
		}
		key, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		pair := &pki.KeyPair{Key: key}
		if rot.NewSAKey, err = pair.KeyPEM(); err != nil {
			return nil, err
		}
	}
	return rot, nil
}

// files are the shared PKI files of the phase, by name; nil removes one.
func (rot *CARotation) files() (map[string][]byte, error) {
	f := map[string][]byte{}
	switch rot.Phase {
	case CATrustBoth:
		f[pki.BundleFile] = pki.Concat(rot.OldCA, rot.NewCA)
	case CASignNew:
		f["ca.crt"], f["ca.key"] = rot.NewCA, rot.NewCAKey
		f[pki.BundleFile] = pki.Concat(rot.NewCA, rot.OldCA)
		f[pki.CrossFile] = rot.Cross
	case CATrustNew:
		f["ca.crt"], f["ca.key"] = rot.NewCA, rot.NewCAKey
		f[pki.BundleFile] = rot.NewCA
		f[pki.CrossFile] = nil
	default:
		return nil, fmt.Errorf("cluster: unknown CA rotation phase %q", rot.Phase)
	}
	if rot.NewSAKey != nil {
		pub, err := pki.PublicKeyPEM(rot.NewSAKey)
		if err != nil {
			return nil, err
		}
		switch rot.Phase {
		case CATrustBoth:
			f["sa.pub"] = pki.Concat(rot.OldSAPub, pub)
		case CASignNew:
			f["sa.key"], f["sa.pub"] = rot.NewSAKey, pki.Concat(pub, rot.OldSAPub)
		case CATrustNew:
			f["sa.key"], f["sa.pub"] = rot.NewSAKey, pub
		}
	}
	return f, nil
}

// restarts says which components must restart to read what the phase
// changes: controller-managers read --root-ca-file (kube-root-ca.crt) and
// their kubeconfig only at start, schedulers their kubeconfig; kube-apiserver
// reads the service-account keys only at start, but reloads its client CA,
// serving certificate and kubelet client certificate from their files by
// itself (waitServing checks that it did).
func (rot *CARotation) restarts() (apiserver, controllerManager, scheduler bool) {
	return rot.NewSAKey != nil, true, rot.Phase != CATrustBoth
}

// WriteCAPhase writes the files of the rotation's phase; see writeCAPhase.
func (r *Runtime) WriteCAPhase(s Spec, rot *CARotation) error { return writeCAPhase(s, rot) }

// writeCAPhase writes the shared PKI files of the rotation's phase on
// every control-plane host, those that differ only. A crash can cut a phase
// between two files (ca.crt written, ca.key not yet): the cluster's files
// hold together again only once the phase is written whole, so a resumed
// cluster writes it before anything reads the CA.
func writeCAPhase(s Spec, rot *CARotation) error {
	files, err := rot.files()
	if err != nil {
		return err
	}
	for _, h := range s.Hosts {
		for name, data := range files {
			path := filepath.Join(s.PKIDir(h), name)
			if data == nil {
				if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
					return err
				}
				continue
			}
			if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
				continue
			}
			if err := pki.WriteFile(path, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// RotateCA applies the rotation's phase to cluster s: it writes the phase's
// files on every control-plane host, issues again what the signing CA did
// not sign, updates cluster-info, restarts the components that must read
// the change one at a time (each healthy before the next stops, so an HA
// cluster keeps serving), moves every node agent to the new trust and
// credentials, and waits until kube-root-ca.crt in every namespace is the
// new trust bundle. say reports progress.
func (r *Runtime) RotateCA(ctx context.Context, s Spec, rot *CARotation, say func(string)) error {
	if err := writeCAPhase(s, rot); err != nil {
		return err
	}
	now := r.cfg.Clock.Now()
	for _, h := range s.Hosts {
		if err := r.ensureHostFiles(s, h, now); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	say(fmt.Sprintf("%s: certificates and trust bundles written on %d control-plane hosts", rot.Phase, len(s.Hosts)))
	bundle, err := pki.Bundle(s.SharedPKIDir())
	if err != nil {
		return err
	}
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	infoCtx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	if err := poll.Until(infoCtx, func(ctx context.Context) error { return bootstrapObjects(ctx, client, s) }); err != nil {
		return fmt.Errorf("cluster %s: cluster-info: %w", s.Name, err)
	}
	if err := r.waitServing(ctx, s); err != nil {
		return err
	}
	say(fmt.Sprintf("%s: every kube-apiserver serves its new certificate and trusts the new bundle", rot.Phase))
	apiserver, cm, sched := rot.restarts()
	for _, h := range s.Hosts {
		var comps []controlplane.Component
		if apiserver {
			comps = append(comps, controlplane.APIServer(s.Cluster, h, etcdServers(s, h)))
		}
		if cm {
			comps = append(comps, controlplane.ControllerManager(s.Cluster, h))
		}
		if sched {
			comps = append(comps, controlplane.Scheduler(s.Cluster, h))
		}
		for _, c := range comps {
			if err := r.restart(ctx, s, c); err != nil {
				return err
			}
			say(fmt.Sprintf("%s: restarted %s", rot.Phase, c.Name))
		}
	}
	if err := r.rotateNodes(ctx, s, rot, bundle); err != nil {
		return err
	}
	say(fmt.Sprintf("%s: node credentials updated", rot.Phase))
	if err := r.waitRootCA(ctx, s, bundle); err != nil {
		return err
	}
	say(fmt.Sprintf("%s: kube-root-ca.crt updated in every namespace", rot.Phase))
	return nil
}

// waitServing waits until every replica's kube-apiserver serves the
// certificate chain of its apiserver.crt.
func (r *Runtime) waitServing(ctx context.Context, s Spec) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	for _, h := range s.Hosts {
		want, err := certutil.CertsFromFile(filepath.Join(s.PKIDir(h), "apiserver.crt"))
		if err != nil {
			return err
		}
		addr := net.JoinHostPort(h.IP.String(), fmt.Sprint(controlplane.APIServerPort))
		err = poll.Until(ctx, func(ctx context.Context) error {
			d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			got := conn.(*tls.Conn).ConnectionState().PeerCertificates
			if !slices.EqualFunc(got, want, func(a, b *x509.Certificate) bool { return a.Equal(b) }) {
				return fmt.Errorf("kube-apiserver-%d does not serve its new certificate yet", h.Index)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return nil
}

// restart stops a component and starts it again, and waits until it is
// healthy. A process that an earlier engine left is adopted first, so that
// it is really stopped rather than adopted again.
func (r *Runtime) restart(ctx context.Context, s Spec, c controlplane.Component) error {
	if err := r.start(s, c); err != nil {
		return err
	}
	if err := r.cfg.Supervisor.Stop(processName(s, c)); err != nil {
		return err
	}
	return r.run(ctx, s, c)
}

// rotateNodes moves every node agent of the cluster to the trust bundle
// and, from SignNew on, to a client certificate signed by the new CA.
func (r *Runtime) rotateNodes(ctx context.Context, s Spec, rot *CARotation, bundle []byte) error {
	issuer, err := pki.ParseCert(rot.NewCA)
	if err != nil {
		return err
	}
	r.mu.Lock()
	var agents []*node.Agent
	var names []string
	for key, a := range r.agents {
		if strings.HasPrefix(key, s.ID+"/") {
			agents = append(agents, a)
			names = append(names, strings.TrimPrefix(key, s.ID+"/"))
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i, a := range agents {
		wg.Go(func() {
			// The new CA may not sign yet: kube-controller-manager reloads
			// its signing CA from the file a moment after it changes.
			errs[i] = poll.Until(ctx, func(ctx context.Context) error { return a.Rotate(ctx, bundle, rot.Phase != CATrustBoth, issuer) })
			if errs[i] == nil {
				errs[i] = r.ensureKubeProxy(s, names[i], a) // with the new credentials
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("cluster %s: %w", s.Name, err)
		}
	}
	return nil
}

// waitRootCA waits until kube-root-ca.crt in every namespace holds bundle.
func (r *Runtime) waitRootCA(ctx context.Context, s Spec, bundle []byte) error {
	client, err := r.AdminClient(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	want := string(bytes.TrimSpace(bundle))
	return poll.Until(ctx, func(ctx context.Context) error {
		cms, err := client.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=kube-root-ca.crt"})
		if err != nil {
			return err
		}
		nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		published := map[string]bool{}
		for _, cm := range cms.Items {
			published[cm.Namespace] = rootCAIs(&cm, want)
		}
		for _, ns := range nss.Items {
			if ns.Status.Phase == corev1.NamespaceActive && !published[ns.Name] {
				return fmt.Errorf("cluster %s: kube-root-ca.crt in %s is not the new trust bundle yet", s.Name, ns.Name)
			}
		}
		return nil
	})
}

func rootCAIs(cm *corev1.ConfigMap, want string) bool {
	return string(bytes.TrimSpace([]byte(cm.Data["ca.crt"]))) == want
}

// AdminKubeconfig reads the cluster's admin.conf.
func (r *Runtime) AdminKubeconfig(s Spec) ([]byte, error) {
	h, _ := s.pkiHost()
	return os.ReadFile(filepath.Join(s.HostDir(h), "admin.conf"))
}
