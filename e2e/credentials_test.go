package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/pki"
)

// retiredStage is the stage with which a CA rotation stops trusting the
// old CA: clients with old credentials may fail from then on, not before.
const retiredStage = "CA rotation 3/3"

// fingerprint is the SHA-256 of a PKI file.
func fingerprint(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// handIssued writes a kubeconfig with a client certificate issued by hand
// from the cluster CA, as an administrator would with openssl.
func handIssued(t *testing.T, pkiDir, server, path string) {
	t.Helper()
	ca, err := pki.Load(pkiDir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(pki.Leaf{CommonName: "hand-made-admin", Organizations: []string{"kubeadm:cluster-admins"}, Usages: pki.ClientUsage}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.Bundle(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := pki.Kubeconfig{Server: server, ClusterName: "hand", User: "hand-made-admin", CAPEM: bundle, Client: client}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies a file (a kubeconfig kept from before a rotation).
func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestClusterCARotation follows seeds/001 on a regional cluster: `kubeyard
// update credentials --cluster-ca` rolls a new cluster CA in while a client
// with the old credentials sends requests the whole time (none fails until
// the old CA is retired), prints its progress, writes the new kubeconfig and
// the log into the workspace, and leaves the etcd and front-proxy CAs as
// they were. Afterwards the old credentials, and a certificate issued by
// hand from the old CA, are refused; nodes stay Ready and keep their names.
func TestClusterCARotation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "ha", "--region", "us-central1", "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	// Simulated nodes act through their fleet's client, which the
	// rotation reconnects.
	e.Gcloud("container", "node-pools", "create", "sim", "--cluster", "ha", "--region", "us-central1", "--num-nodes", "1", "--node-labels", "kubeyard.dev/simulated=true")
	clusterDir := e.ClusterDir()
	nodesBefore := readyNodes(t, e)
	endpoint := "https://" + strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "ha", "--region", "us-central1", "--format", "value(endpoint)"))

	kept := map[string]string{}
	for i := range 3 {
		for _, f := range []string{"etcd/ca.crt", "front-proxy-ca.crt"} {
			path := filepath.Join(clusterDir, "cp-"+string(rune('0'+i)), "pki", f)
			kept[path] = fingerprint(t, path)
		}
	}
	oldCA := fingerprint(t, filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	oldAdmin := copyFile(t, filepath.Join(clusterDir, "cp-0", "admin.conf"), filepath.Join(e.Dir, "old-admin.conf"))
	oldGcloud := copyFile(t, filepath.Join(e.Dir, "kubeconfig"), filepath.Join(e.Dir, "old-gcloud.kubeconfig"))
	hand := filepath.Join(e.Dir, "hand.kubeconfig")
	handIssued(t, filepath.Join(clusterDir, "cp-0", "pki"), endpoint, hand)
	if _, err := e.Run("kubectl", "--kubeconfig", hand, "get", "namespaces"); err != nil {
		t.Fatalf("the hand-issued certificate does not work before the rotation: %v", err)
	}
	saToken := strings.TrimSpace(e.Kubectl("create", "token", "default", "--duration", "1h"))

	old := e.Client(oldAdmin)
	var failures harness.Failures
	watch := e.WatchStage("us-central1", retiredStage)
	var out string
	var took time.Duration
	load := harness.UnderLoad(failures.Track(harness.Reads(old)), func() {
		begin := time.Now()
		var err error
		out, err = e.Kubeyard("update", "credentials", "--cluster-ca", "--cluster-name", "ha", "--workspace", filepath.Join(e.Dir, "ws"))
		took = time.Since(begin)
		if err != nil {
			t.Fatalf("update credentials: %v\n%s", err, out)
		}
	})
	watch.Stop()
	failedBefore, why := failures.Count(watch.Before)
	t.Logf("cluster CA rotated (regional, 3 replicas) in %.1f s; old-credential client: %d ok, %d failed, %d of them before the old CA was retired\n%s",
		took.Seconds(), load.OK, load.Failed, failedBefore, out)
	if failedBefore > 0 {
		t.Errorf("%d requests with the old credentials failed before the old CA was retired; the first:\n%s", failedBefore, why)
	}
	for _, want := range []string{"CA rotation 1/3", "CA rotation 2/3", retiredStage, "restarted kube-controller-manager-2", "every kube-apiserver serves its new certificate", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("the progress does not mention %q", want)
		}
	}

	// The workspace has the new kubeconfig and the log of this run.
	newKubeconfig := filepath.Join(e.Dir, "ws", "ha", "ha-kubeconfig")
	if _, err := e.Run("kubectl", "--kubeconfig", newKubeconfig, "get", "nodes"); err != nil {
		t.Fatalf("the new kubeconfig: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(e.Dir, "ws", "ha", "log", "update-credentials-*", "update-credentials.log"))
	if len(logs) != 1 {
		t.Fatalf("want one update-credentials.log, got %v", logs)
	}
	if data, _ := os.ReadFile(logs[0]); !strings.Contains(string(data), retiredStage) {
		t.Errorf("the log does not hold the progress:\n%s", data)
	}

	// Only the cluster CA changed, on every replica alike.
	for path, fp := range kept {
		if fingerprint(t, path) != fp {
			t.Errorf("%s changed", path)
		}
	}
	newCA := fingerprint(t, filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	if newCA == oldCA {
		t.Fatal("ca.crt did not change")
	}
	for _, cp := range []string{"cp-1", "cp-2"} {
		if fingerprint(t, filepath.Join(clusterDir, cp, "pki", "ca.crt")) != newCA {
			t.Errorf("%s has another cluster CA", cp)
		}
		if fingerprint(t, filepath.Join(clusterDir, cp, "pki", pki.BundleFile)) != newCA {
			t.Errorf("%s still trusts more than the new CA", cp)
		}
	}

	// The old credentials are refused: the old client certificate, the
	// hand-issued one, and the old CA in a gcloud kubeconfig.
	if _, err := old.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Error("the old admin credentials still work")
	}
	if out, err := e.Run("kubectl", "--kubeconfig", hand, "get", "namespaces"); err == nil {
		t.Errorf("the hand-issued certificate still works:\n%s", out)
	}
	if out, err := e.Run("kubectl", "--kubeconfig", oldGcloud, "get", "namespaces"); err == nil || !strings.Contains(out, "x509") {
		t.Errorf("a kubeconfig with the old CA: %v\n%s", err, out)
	}
	e.Gcloud("container", "clusters", "get-credentials", "ha", "--region", "us-central1")
	rootCA := e.Kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default", "-o", "jsonpath={.data.ca\\.crt}")
	newPEM, _ := os.ReadFile(filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
	if strings.TrimSpace(rootCA) != strings.TrimSpace(string(newPEM)) {
		t.Errorf("kube-root-ca.crt is not the new CA alone:\n%s", rootCA)
	}
	// The service-account key is not part of a cluster CA rotation.
	if _, err := e.Run("kubectl", "--token", saToken, "--user", "", "auth", "whoami"); err != nil {
		t.Errorf("a service-account token from before the rotation: %v", err)
	}
	nodesAfter := readyNodes(t, e)
	if len(nodesAfter) != len(nodesBefore) {
		t.Fatalf("nodes before %v, after %v", nodesBefore, nodesAfter)
	}
	for name := range nodesBefore {
		if _, ok := nodesAfter[name]; !ok {
			t.Errorf("node %s is not Ready after the rotation, or was replaced", name)
		}
	}
	e.Kubectl("run", "ghost", "--image=nginx:1.27", "--overrides", `{"spec":{"nodeSelector":{"cloud.google.com/gke-nodepool":"sim"}}}`)
	if out, err := e.Run("kubectl", "wait", "--for=condition=Ready", "pod/ghost", "--timeout=60s"); err != nil {
		t.Errorf("a pod of the simulated pool after the rotation: %v\n%s", err, out)
	}
}

// withServer copies a kubeconfig with its server replaced.
func withServer(t *testing.T, from, to, server string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	if err := clientcmd.WriteToFile(*cfg, to); err != nil {
		t.Fatal(err)
	}
	return to
}

// rootCAs is how many certificates kube-root-ca.crt holds in default.
func rootCAs(t *testing.T, e *harness.Engine) int {
	t.Helper()
	return strings.Count(e.Kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default", "-o", "jsonpath={.data.ca\\.crt}"), "BEGIN CERTIFICATE")
}

// TestCredentialRotation follows seeds/000's credential rotation on a
// regional cluster, with a client using the credentials from before the
// start sending requests the whole time: none fails until completion
// retires the old CA. During the rotation the old kubeconfig works (on the
// old IP, and on the new IP too: the serving certificate chains to the old
// CA through the cross-certificate), as do service-account tokens from
// before; after completion they are refused, while a kubeconfig fetched
// after the start, and tokens made since, keep working.
func TestCredentialRotation(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	region := []string{"--region", "us-central1"}
	gcloud := func(args ...string) string { return e.Gcloud(append(args, region...)...) }
	gcloud("container", "clusters", "create", "ha", "--num-nodes", "1")
	gcloud("container", "clusters", "get-credentials", "ha")
	clusterDir := e.ClusterDir()
	endpoint := func() string {
		return strings.TrimSpace(gcloud("container", "clusters", "describe", "ha", "--format", "value(endpoint)"))
	}
	oldIP := endpoint()
	oldKubeconfig := copyFile(t, filepath.Join(e.Dir, "kubeconfig"), filepath.Join(e.Dir, "before-start.kubeconfig"))
	oldAdmin := copyFile(t, filepath.Join(clusterDir, "cp-0", "admin.conf"), filepath.Join(e.Dir, "old-admin.conf"))
	oldToken := strings.TrimSpace(e.Kubectl("create", "token", "default", "--duration", "1h"))
	nodesBefore := readyNodes(t, e)
	whoami := func(kubeconfig string, extra ...string) error {
		_, err := e.Run("kubectl", append([]string{"--kubeconfig", kubeconfig, "auth", "whoami"}, extra...)...)
		return err
	}

	// Completion retires the old IP first, then the old CA: the old
	// credentials (on the old IP) may fail from its first stage on.
	var failures harness.Failures
	watch := e.WatchStage("us-central1", "Retiring the old IP")
	var newIP, afterStart, newToken string
	load := harness.UnderLoad(failures.Track(harness.Reads(e.Client(oldAdmin))), func() {
		gcloud("container", "clusters", "update", "ha", "--start-credential-rotation", "--quiet")
		newIP = endpoint()
		if newIP == oldIP {
			t.Fatalf("the endpoint did not move")
		}
		gcloud("container", "clusters", "get-credentials", "ha")
		afterStart = copyFile(t, filepath.Join(e.Dir, "kubeconfig"), filepath.Join(e.Dir, "after-start.kubeconfig"))
		oldOnNewIP := withServer(t, oldKubeconfig, filepath.Join(e.Dir, "old-on-new-ip.kubeconfig"), "https://"+newIP)
		for name, kc := range map[string]string{"before the start": oldKubeconfig, "before the start, on the new IP": oldOnNewIP, "after the start": afterStart} {
			if err := whoami(kc); err != nil {
				t.Errorf("a kubeconfig fetched %s does not work during the rotation: %v", name, err)
			}
		}
		if err := whoami(afterStart, "--token", oldToken, "--user", ""); err != nil {
			t.Errorf("a service-account token from before the start: %v", err)
		}
		newToken = strings.TrimSpace(e.Kubectl("create", "token", "default", "--duration", "1h"))
		if n := rootCAs(t, e); n != 2 {
			t.Errorf("kube-root-ca.crt holds %d CAs during the rotation, want the old and the new", n)
		}
		describedCA := gcloud("container", "clusters", "describe", "ha", "--format", "value(masterAuth.clusterCaCertificate)")
		newPEM, _ := os.ReadFile(filepath.Join(clusterDir, "cp-0", "pki", "ca.crt"))
		if !strings.Contains(describedCA, strings.TrimSpace(base64Of(newPEM))) {
			t.Error("describe does not show the new cluster CA after the start")
		}
		// Every pool is recreated through the new IP before completion.
		e.Eventually(3*time.Minute, func() error {
			if ops := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES AND status!=DONE", "--format", "value(name)")); ops != "" {
				return errorf("recreation running: %s", ops)
			}
			_, err := e.Run("gcloud", append([]string{"container", "clusters", "update", "ha", "--complete-credential-rotation", "--quiet"}, region...)...)
			return err
		})
	})
	watch.Stop()
	failedBefore, why := failures.Count(watch.Before)
	t.Logf("credential rotation (regional): old-credential client %d ok, %d failed, %d of them before completion retired the old CA", load.OK, load.Failed, failedBefore)
	if failedBefore > 0 {
		t.Errorf("%d requests with the old credentials failed before completion; the first:\n%s", failedBefore, why)
	}

	if err := whoami(oldKubeconfig); err == nil {
		t.Error("the kubeconfig fetched before the start still works after completion")
	}
	if out, err := e.Run("kubectl", "--kubeconfig", withServer(t, oldKubeconfig, filepath.Join(e.Dir, "old-on-new-ip-after.kubeconfig"), "https://"+newIP), "get", "ns"); err == nil || !strings.Contains(out, "x509") {
		t.Errorf("the old CA on the new IP after completion: %v\n%s", err, out)
	}
	if err := whoami(afterStart); err != nil {
		t.Errorf("the kubeconfig fetched after the start: %v", err)
	}
	if err := whoami(afterStart, "--token", oldToken, "--user", ""); err == nil {
		t.Error("a service-account token signed with the old key still works after completion")
	}
	if err := whoami(afterStart, "--token", newToken, "--user", ""); err != nil {
		t.Errorf("a service-account token made during the rotation: %v", err)
	}
	if n := rootCAs(t, e); n != 1 {
		t.Errorf("kube-root-ca.crt holds %d CAs after completion", n)
	}
	if nodes := readyNodes(t, e); len(nodes) != len(nodesBefore) {
		t.Errorf("Ready nodes before %v, after %v", nodesBefore, nodes)
	}
}

// nodesOnNewCA checks every node's kubelet.conf: it trusts the cluster CA
// alone and its client certificate is signed by it.
func nodesOnNewCA(t *testing.T, clusterDir, pkiDir string) {
	t.Helper()
	ca, err := pki.Load(pkiDir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	confs, _ := filepath.Glob(filepath.Join(clusterDir, "nodes", "*", "kubelet.conf"))
	if len(confs) == 0 {
		t.Fatal("no node kubeconfigs")
	}
	for _, path := range confs {
		cfg, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cfg.Clusters {
			if strings.TrimSpace(string(c.CertificateAuthorityData)) != strings.TrimSpace(string(ca.CertPEM())) {
				t.Errorf("%s does not trust the new CA alone", path)
			}
		}
		for _, a := range cfg.AuthInfos {
			cert, err := pki.ParseCert(a.ClientCertificateData)
			if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
				t.Errorf("%s: the client certificate is not signed by the new CA (%v)", path, err)
			}
		}
	}
}

func base64Of(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// TestCARotationSurvivesCrashes kills the engine (SIGKILL) in each phase of
// a cluster CA rotation and of a credential rotation's start and
// completion; the next engine resumes each from its recorded phase and
// completes it, and the cluster ends trusting only the new CA. While a
// rotation runs, other operations are refused and it cannot be cancelled.
func TestCARotationSurvivesCrashes(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "demo", "--zone", zone, "--num-nodes", "2")
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	pkiDir := filepath.Join(e.ClusterDir(), "cp-0", "pki")
	trustsOnlySigner := func() {
		t.Helper()
		if fingerprint(t, filepath.Join(pkiDir, pki.BundleFile)) != fingerprint(t, filepath.Join(pkiDir, "ca.crt")) {
			t.Error("the trust bundle is not the signing CA alone")
		}
		if _, err := os.Stat(filepath.Join(pkiDir, pki.CrossFile)); err == nil {
			t.Error("the cross-certificate is still there")
		}
		nodesOnNewCA(t, e.ClusterDir(), pkiDir)
	}
	// crashAt kills the engine as soon as a running operation reaches the
	// stage (polled often: a node recreation takes about a second).
	crashAt := func(stage string) {
		t.Helper()
		if err := harness.Poll(2*time.Minute, 20*time.Millisecond, func() error {
			if !e.HasStage(zone, stage) {
				return errorf("no running operation reached %q", stage)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.Kill()
		e.Restart()
	}

	for i, stage := range []string{"CA rotation 1/3", "CA rotation 2/3", retiredStage} {
		before := fingerprint(t, filepath.Join(pkiDir, "ca.crt"))
		var out strings.Builder // read once the CLI has exited
		cli := e.StartKubeyard(&out, "update", "credentials", "--cluster-ca", "--cluster-name", "demo", "--workspace", filepath.Join(e.Dir, "ws"))
		if i == 0 {
			e.Eventually(30*time.Second, func() error {
				if !e.HasStage(zone, "CA rotation") {
					return errorf("the rotation has not started")
				}
				return nil
			})
			// Through the API gcloud calls, not gcloud: its seconds would
			// outlast the first phase, where the engine is to crash next.
			clusterPath := fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/demo", e.Project, zone)
			if code, out := e.API("DELETE", clusterPath, e.Token(), nil); code != 400 || !strings.Contains(fmt.Sprint(out), "incompatible operation") {
				t.Errorf("delete during a CA rotation: HTTP %d %v", code, out)
			}
			_, ops := e.API("GET", fmt.Sprintf("/v1/projects/%s/locations/%s/operations", e.Project, zone), e.Token(), nil)
			op := ""
			for _, o := range ops["operations"].([]any) {
				if o := o.(map[string]any); o["operationType"] == "UPDATE_CLUSTER" && o["status"] == "RUNNING" {
					op = o["name"].(string)
				}
			}
			if code, out := e.API("POST", fmt.Sprintf("/v1/projects/%s/locations/%s/operations/%s:cancel", e.Project, zone, op), e.Token(), map[string]any{}); code != 400 || !strings.Contains(fmt.Sprint(out), "cannot be cancelled") {
				t.Errorf("cancelling a CA rotation %q: HTTP %d %v", op, code, out)
			}
		}
		crashAt(stage)
		select {
		case <-cli.Exited():
			if err := cli.Wait(); err != nil {
				t.Fatalf("update credentials across an engine crash at %q: %v\n%s", stage, err, out.String())
			}
		case <-time.After(4 * time.Minute):
			t.Fatalf("update credentials did not finish after an engine crash at %q:\n%s", stage, out.String())
		}
		if fingerprint(t, filepath.Join(pkiDir, "ca.crt")) == before {
			t.Errorf("crash at %q: the CA did not change", stage)
		}
		trustsOnlySigner()
		if _, err := e.Run("kubectl", "--kubeconfig", filepath.Join(e.Dir, "ws", "demo", "demo-kubeconfig"), "get", "nodes"); err != nil {
			t.Fatalf("crash at %q: the new kubeconfig: %v", stage, err)
		}
	}

	// A credential rotation: crashes in the start's signing phase, in the
	// node recreation and in the completion.
	e.Gcloud("container", "clusters", "update", "demo", "--zone", zone, "--start-credential-rotation", "--async", "--quiet")
	crashAt("CA rotation 2/3")
	crashAt("Recreating node")
	e.Eventually(4*time.Minute, func() error {
		_, err := e.Run("gcloud", "container", "clusters", "update", "demo", "--zone", zone, "--complete-credential-rotation", "--async", "--quiet")
		return err
	})
	crashAt(retiredStage)
	e.Eventually(2*time.Minute, func() error {
		if st := strings.TrimSpace(e.Gcloud("container", "operations", "list", "--filter", "operationType=UPDATE_CLUSTER AND status!=DONE", "--format", "value(name)")); st != "" {
			return errorf("still running: %s", st)
		}
		return nil
	})
	if failed := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPDATE_CLUSTER AND error:*", "--format", "value(name,error.message)"); strings.TrimSpace(failed) != "" {
		t.Errorf("rotation operations failed: %s", failed)
	}
	trustsOnlySigner()
	e.Gcloud("container", "clusters", "get-credentials", "demo", "--zone", zone)
	e.Eventually(90*time.Second, func() error {
		if n := readyNodes(t, e); len(n) != 2 {
			return errorf("want 2 Ready nodes, got %v", n)
		}
		return nil
	})
	if n := rootCAs(t, e); n != 1 {
		t.Errorf("kube-root-ca.crt holds %d CAs after the rotations", n)
	}
}
