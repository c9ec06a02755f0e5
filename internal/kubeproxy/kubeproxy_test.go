package kubeproxy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func writeCredentials(t *testing.T, path, cert string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: "https://127.10.0.2", CertificateAuthorityData: []byte("ca")}
	kc.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte(cert), ClientKeyData: []byte("key")}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
	kc.CurrentContext = "default"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// The node's kube-proxy: nftables mode in the node's namespace, the node's
// credentials pointed at the internal endpoint, nothing kernel-wide
// changed, and restarted when the credentials change.
func TestProcess(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "kubelet.conf")
	writeCredentials(t, creds, "cert-1")
	cfg := Config{Node: "node-a", NetNS: "ky-node-a", Dir: filepath.Join(dir, "kube-proxy"), Credentials: creds, Server: "https://10.128.0.2", ClusterCIDR: "10.4.0.0/14"}
	p, err := Process(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.NetNS != "ky-node-a" || !slices.Equal(p.Args[:2], []string{"component", "kube-proxy"}) {
		t.Errorf("process: %+v", p)
	}
	args := strings.Join(p.Args, " ")
	for _, want := range []string{"--proxy-mode=nftables", "--hostname-override=node-a", "--cluster-cidr=10.4.0.0/14", "--conntrack-max-per-core=0", "--conntrack-min=0", "--conntrack-tcp-timeout-established=0s",
		"--kubeconfig=" + filepath.Join(cfg.Dir, "kubeconfig")} {
		if !strings.Contains(args, want) {
			t.Errorf("kube-proxy's flags lack %q: %s", want, args)
		}
	}
	// No configuration file: kube-proxy would take an inotify instance
	// to watch it, and exit when the machine has none left.
	if strings.Contains(args, "--config") {
		t.Errorf("kube-proxy runs from a configuration file: %s", args)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(cfg.Dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if c := kc.Clusters["default-cluster"]; c.Server != "https://10.128.0.2" || string(c.CertificateAuthorityData) != "ca" {
		t.Errorf("kubeconfig cluster: %+v", c)
	}
	if a := kc.AuthInfos["default-auth"]; string(a.ClientCertificateData) != "cert-1" {
		t.Errorf("kubeconfig user: %+v", a)
	}
	again, _ := Process(cfg)
	writeCredentials(t, creds, "cert-2")
	rotated, err := Process(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Env, p.Env) || slices.Equal(rotated.Env, p.Env) {
		t.Errorf("environments: %v, the same credentials %v, new ones %v", p.Env, again.Env, rotated.Env)
	}
}
