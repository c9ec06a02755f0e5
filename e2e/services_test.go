package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/images"
)

// hostnames are the Hostname lines of hello-app answers.
func hostnames(out string) map[string]bool {
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(line, "Hostname: "); ok {
			seen[h] = true
		}
	}
	return seen
}

// TestServices is issue 15's first steps as a user takes them, with the
// real kubectl: a Deployment exposed as a Service (the upstream kube-proxy
// in nftables mode on every node) and reached by name (CoreDNS behind
// kube-dns), NodePort, headless and sticky Services, pods' DNS settings,
// an in-cluster client that lists pods through the kubernetes Service, and
// a Service that keeps answering through a rolling update.
func TestServices(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "svc", "--zone", zone, "--num-nodes", "2")
	e.Gcloud("container", "clusters", "get-credentials", "svc", "--zone", zone)

	// The kubernetes Service has a real endpoint: the cluster's internal
	// endpoint in its VPC network, at the kube-apiservers' port.
	slice := e.Kubectl("get", "endpointslice", "kubernetes", "-o", "jsonpath={.endpoints[*].addresses[*]} {.ports[*].port}")
	if f := strings.Fields(slice); len(f) != 2 || !strings.HasPrefix(f[0], "10.128.") || f[1] != "6443" {
		t.Fatalf("the kubernetes Service's endpoints: %q", slice)
	}
	if dns := e.Kubectl("-n", "kube-system", "get", "svc", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"); dns != "34.118.224.10" {
		t.Errorf("kube-dns is at %q, not the services range's tenth address", dns)
	}

	e.Kubectl("create", "deployment", "web", "--image=us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0", "--replicas=3")
	e.Kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
	e.Kubectl("rollout", "status", "deployment/web", "--timeout=90s")
	e.Kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=90s")

	// As the issue runs it: on a terminal, the pod removed after. The
	// command waits a moment first: what a container writes before kubectl
	// attaches is not replayed (as with containerd), and wget is quick.
	run := exec.Command("script", "-qc", `kubectl run client --image=busybox --restart=Never -it --rm -- sh -c "sleep 2; wget -qO- http://web.default.svc.cluster.local"`, "/dev/null")
	run.Env = e.Env()
	if out, err := run.CombinedOutput(); err != nil || !strings.Contains(string(out), "Hello, world!") || !strings.Contains(string(out), "Hostname: web-") {
		t.Fatalf("kubectl run client -- wget http://web.default.svc.cluster.local: %v\n%s", err, out)
	}

	e.Kubectl("run", "client", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
	e.Kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
	inClient := func(cmd string) (string, error) { return e.Run("kubectl", "exec", "client", "--", "sh", "-c", cmd) }

	t.Run("ClusterIP spreads over the pods", func(t *testing.T) {
		out, err := inClient("for i in $(seq 30); do wget -qO- http://web; done")
		if seen := hostnames(out); err != nil || len(seen) != 3 {
			t.Errorf("30 requests to http://web reached %d pods (%v): %v", len(seen), seen, err)
		}
	})

	t.Run("NodePort on every node", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-np", "--type", "NodePort", "--port", "80", "--target-port", "8080")
		port := e.Kubectl("get", "svc", "web-np", "-o", "jsonpath={.spec.ports[0].nodePort}")
		ips := strings.Fields(e.Kubectl("get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
		if len(ips) != 2 {
			t.Fatalf("node addresses: %v", ips)
		}
		for _, ip := range ips {
			e.Eventually(20*time.Second, func() error {
				out, err := inClient(fmt.Sprintf("wget -qO- http://%s:%s/", ip, port))
				if err != nil || !strings.Contains(out, "Hello, world!") {
					return fmt.Errorf("NodePort %s:%s: %v %q", ip, port, err, out)
				}
				return nil
			})
		}
	})

	t.Run("headless names the pods", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-headless", "--cluster-ip", "None", "--port", "8080")
		want := map[string]bool{}
		for _, p := range podsOf(t, e, "app=web") {
			want[p.Status.PodIP] = true
		}
		e.Eventually(20*time.Second, func() error {
			out, _ := inClient("nslookup web-headless.default.svc.cluster.local")
			got := map[string]bool{}
			for _, line := range strings.Split(out, "\n") {
				if a, ok := strings.CutPrefix(line, "Address: "); ok {
					got[a] = true
				}
			}
			if len(got) != len(want) {
				return fmt.Errorf("web-headless resolves to %v, want the pods %v:\n%s", got, want, out)
			}
			for ip := range want {
				if !got[ip] {
					return fmt.Errorf("web-headless lacks pod %s:\n%s", ip, out)
				}
			}
			return nil
		})
	})

	t.Run("sessionAffinity ClientIP sticks", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-sticky", "--port", "80", "--target-port", "8080", "--session-affinity", "ClientIP")
		e.Eventually(20*time.Second, func() error {
			out, err := inClient("for i in $(seq 15); do wget -qO- http://web-sticky; done")
			if seen := hostnames(out); err != nil || len(seen) != 1 {
				return fmt.Errorf("15 requests from one client reached %v: %v", seen, err)
			}
			return nil
		})
	})

	t.Run("DNS", func(t *testing.T) {
		resolv, _ := inClient("cat /etc/resolv.conf")
		for _, want := range []string{"search default.svc.cluster.local svc.cluster.local cluster.local", "nameserver 34.118.224.10", "options ndots:5"} {
			if !strings.Contains(resolv, want) {
				t.Errorf("the pod's resolv.conf lacks %q:\n%s", want, resolv)
			}
		}
		p := podsOf(t, e, "app=web")[0]
		podName := strings.ReplaceAll(p.Status.PodIP, ".", "-") + ".default.pod.cluster.local"
		if out, err := inClient("nslookup " + podName); err != nil || !strings.Contains(out, "Address: "+p.Status.PodIP) {
			t.Errorf("nslookup %s: %v\n%s", podName, err, out)
		}
		if out, err := inClient("nslookup kubernetes.default.svc.cluster.local"); err != nil || !strings.Contains(out, "Address: 34.118.224.1") {
			t.Errorf("nslookup kubernetes.default.svc.cluster.local: %v\n%s", err, out)
		}
		// Nothing leaves the machine: a name outside the cluster does not exist.
		start := time.Now()
		if out, err := inClient("nslookup example.com"); err == nil || !strings.Contains(out, "NXDOMAIN") {
			t.Errorf("nslookup example.com: %v\n%s", err, out)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the answer for a name outside the cluster took %s", took)
		}
		// dnsPolicy None takes dnsConfig alone; ClusterFirst adds it to the
		// cluster's settings.
		manifest := filepath.Join(t.TempDir(), "dns-pods.yaml")
		if err := os.WriteFile(manifest, []byte(dnsPods), 0o644); err != nil {
			t.Fatal(err)
		}
		e.Kubectl("apply", "-f", manifest)
		e.Kubectl("wait", "--for=condition=Ready", "pod/dns-none", "pod/dns-extra", "--timeout=60s")
		none := e.Kubectl("exec", "dns-none", "--", "cat", "/etc/resolv.conf")
		if none != "search corp.example\nnameserver 34.118.224.10\noptions ndots:2\n" {
			t.Errorf("dnsPolicy None, resolv.conf:\n%s", none)
		}
		extra := e.Kubectl("exec", "dns-extra", "--", "cat", "/etc/resolv.conf")
		if !strings.Contains(extra, "search default.svc.cluster.local svc.cluster.local cluster.local corp.example") || !strings.Contains(extra, "options ndots:5 edns0") {
			t.Errorf("dnsConfig with ClusterFirst, resolv.conf:\n%s", extra)
		}
		if out, err := e.Run("kubectl", "exec", "dns-none", "--", "wget", "-qO-", "http://web.default.svc.cluster.local"); err != nil || !strings.Contains(out, "Hello, world!") {
			t.Errorf("from the dnsPolicy None pod, http://web.default.svc.cluster.local: %v %q", err, out)
		}
	})

	t.Run("an in-cluster client lists pods", func(t *testing.T) {
		loadKubectlImage(t, e)
		e.Kubectl("create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default")
		e.Kubectl("run", "lister", "--image=kubeyard.test/kubectl:1", "--restart=Never", "--command", "--", "/kubectl", "get", "pods", "-o", "name")
		e.Eventually(60*time.Second, func() error {
			if phase := getPod(t, e, "lister").Status.Phase; phase != "Succeeded" {
				return fmt.Errorf("lister is %s: %s", phase, e.Kubectl("logs", "lister"))
			}
			return nil
		})
		if logs := e.Kubectl("logs", "lister"); !strings.Contains(logs, "pod/client") || !strings.Contains(logs, "pod/lister") {
			t.Errorf("kubectl get pods from inside the cluster:\n%s", logs)
		}
	})

	t.Run("LoadBalancer", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-lb", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080")
		var ip string
		e.Eventually(30*time.Second, func() error {
			if ip = e.Kubectl("get", "svc", "web-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); !strings.HasPrefix(ip, "127.12.") {
				return fmt.Errorf("web-lb's EXTERNAL-IP: %q", ip)
			}
			return nil
		})
		if out := e.Kubectl("get", "svc", "web-lb"); !strings.Contains(out, ip) {
			t.Errorf("kubectl get svc web-lb:\n%s", out)
		}
		seen := map[string]bool{}
		for range 20 {
			out, err := e.Run("curl", "-s", "-m", "5", "http://"+ip+"/")
			if err != nil || !strings.Contains(out, "Hello, world!") {
				t.Fatalf("curl http://%s/: %v %q", ip, err, out)
			}
			for h := range hostnames(out) {
				seen[h] = true
			}
		}
		if len(seen) != 3 {
			t.Errorf("20 requests to the load balancer reached %v", seen)
		}
		// As GKE shows it: a forwarding rule named after the Service's UID
		// at its address, in front of a target pool of the cluster's nodes.
		rule := forwardingRuleName(e.Kubectl("get", "svc", "web-lb", "-o", "jsonpath={.metadata.uid}"))
		if out := e.Gcloud("compute", "forwarding-rules", "list"); !strings.Contains(out, rule) || !strings.Contains(out, ip) {
			t.Errorf("gcloud compute forwarding-rules list has no %s at %s:\n%s", rule, ip, out)
		}
		var fr struct{ IPAddress, IPProtocol, PortRange, Target, LoadBalancingScheme, Description string }
		gcloudJSON(t, e, &fr, "compute", "forwarding-rules", "describe", rule, "--region", "us-central1")
		if fr.IPAddress != ip || fr.IPProtocol != "TCP" || fr.PortRange != "80-80" || fr.LoadBalancingScheme != "EXTERNAL" ||
			!strings.HasSuffix(fr.Target, "/regions/us-central1/targetPools/"+rule) || !strings.Contains(fr.Description, "default/web-lb") {
			t.Errorf("forwarding rule %s: %+v", rule, fr)
		}
		var pool struct{ Instances []string }
		gcloudJSON(t, e, &pool, "compute", "target-pools", "describe", rule, "--region", "us-central1")
		if len(pool.Instances) != 2 || !strings.Contains(pool.Instances[0], "/instances/gke-svc-default-pool-") {
			t.Errorf("target pool %s: %v, not the cluster's two nodes", rule, pool.Instances)
		}
		// loadBalancerSourceRanges, on the client's source address.
		e.Kubectl("patch", "svc", "web-lb", "-p", `{"spec":{"loadBalancerSourceRanges":["127.0.0.2/32"]}}`)
		e.Eventually(20*time.Second, func() error {
			if out, err := e.Run("curl", "-s", "-m", "2", "http://"+ip+"/"); err == nil {
				return fmt.Errorf("a source outside loadBalancerSourceRanges is answered: %q", out)
			}
			return nil
		})
		if out, err := e.Run("curl", "-s", "-m", "5", "--interface", "127.0.0.2", "http://"+ip+"/"); err != nil || !strings.Contains(out, "Hello, world!") {
			t.Errorf("from 127.0.0.2, inside loadBalancerSourceRanges: %v %q", err, out)
		}
		// Deleting the Service releases its address and frontends.
		e.Kubectl("delete", "svc", "web-lb", "--timeout=30s")
		if out, err := e.Run("curl", "-s", "-m", "2", "--interface", "127.0.0.2", "http://"+ip+"/"); err == nil {
			t.Errorf("the deleted Service's load balancer still answers: %q", out)
		}
		if left, _ := filepath.Glob(filepath.Join(e.DataDir, "loadbalancer", "svc-*")); len(left) > 0 {
			t.Errorf("frontends left: %v", left)
		}
		if _, err := e.Run("gcloud", "compute", "forwarding-rules", "describe", rule, "--region", "us-central1"); err == nil || !strings.Contains(err.Error(), "was not found") {
			t.Errorf("the deleted Service's forwarding rule: %v", err)
		}
	})

	t.Run("spec.loadBalancerIP", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-asks", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080", "--load-balancer-ip", "127.12.0.200")
		e.Kubectl("expose", "deployment", "web", "--name", "web-outside", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080", "--load-balancer-ip", "10.1.2.3")
		e.Eventually(30*time.Second, func() error {
			if ip := e.Kubectl("get", "svc", "web-asks", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); ip != "127.12.0.200" {
				return fmt.Errorf("web-asks's EXTERNAL-IP: %q", ip)
			}
			return nil
		})
		if out, err := e.Run("curl", "-s", "-m", "5", "http://127.12.0.200/"); err != nil || !strings.Contains(out, "Hello, world!") {
			t.Errorf("curl http://127.12.0.200/: %v %q", err, out)
		}
		// An address the engine cannot give: told as the service
		// controller tells it, and the Service stays pending.
		e.Eventually(30*time.Second, func() error {
			out := e.Kubectl("get", "events", "--field-selector", "involvedObject.name=web-outside,reason=SyncLoadBalancerFailed", "-o", "jsonpath={.items[*].message}")
			if !strings.Contains(out, "10.1.2.3 is outside 127.12.0.0/16") {
				return fmt.Errorf("web-outside's events: %q", out)
			}
			return nil
		})
		if ip := e.Kubectl("get", "svc", "web-outside", "-o", "jsonpath={.status.loadBalancer.ingress}"); ip != "" {
			t.Errorf("web-outside got %s", ip)
		}
		e.Kubectl("delete", "svc", "web-asks", "web-outside", "--timeout=30s")
	})

	t.Run("internal LoadBalancer", func(t *testing.T) {
		e.Kubectl("expose", "deployment", "web", "--name", "web-ilb", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080",
			"--overrides", `{"metadata":{"annotations":{"networking.gke.io/load-balancer-type":"Internal"}}}`)
		var ip string
		e.Eventually(30*time.Second, func() error {
			if ip = e.Kubectl("get", "svc", "web-ilb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); !strings.HasPrefix(ip, "10.128.") {
				return fmt.Errorf("web-ilb's address: %q, not one of the subnetwork", ip)
			}
			return nil
		})
		if out, err := inClient("timeout 5 wget -qO- http://" + ip + "/"); err != nil || !strings.Contains(out, "Hello, world!") {
			t.Errorf("from a pod, the internal load balancer: %v %q", err, out)
		}
		rule := forwardingRuleName(e.Kubectl("get", "svc", "web-ilb", "-o", "jsonpath={.metadata.uid}"))
		var fr struct {
			IPAddress, LoadBalancingScheme, BackendService, Subnetwork string
			Ports                                                      []string
		}
		gcloudJSON(t, e, &fr, "compute", "forwarding-rules", "describe", rule, "--region", "us-central1")
		if fr.IPAddress != ip || fr.LoadBalancingScheme != "INTERNAL" || !strings.HasSuffix(fr.BackendService, "/backendServices/"+rule) ||
			!strings.HasSuffix(fr.Subnetwork, "/subnetworks/default") || len(fr.Ports) != 1 || fr.Ports[0] != "80" {
			t.Errorf("internal forwarding rule %s: %+v", rule, fr)
		}
		var bs struct {
			LoadBalancingScheme string
			Backends            []struct{ Group string }
		}
		gcloudJSON(t, e, &bs, "compute", "backend-services", "describe", rule, "--region", "us-central1")
		if bs.LoadBalancingScheme != "INTERNAL" || len(bs.Backends) != 1 || !strings.Contains(bs.Backends[0].Group, "/instanceGroups/gke-svc-default-pool-") {
			t.Errorf("backend service %s: %+v, not the node pool's instance group", rule, bs)
		}
		// Only inside the VPC: nothing listens there in the machine's own
		// namespace (no test sends to a non-loopback address from it).
		if out, _ := e.Run("ss", "-Hltn"); strings.Contains(out, ip+":80") {
			t.Errorf("the internal load balancer listens in the machine's namespace:\n%s", out)
		}
		e.Kubectl("delete", "svc", "web-ilb", "--timeout=30s")
		e.Eventually(10*time.Second, func() error {
			if out, err := inClient("timeout 5 wget -qO- http://" + ip + "/"); err == nil {
				return fmt.Errorf("the deleted internal load balancer still answers: %q", out)
			}
			return nil
		})
	})

	t.Run("LoadBalancer over UDP: the cluster's DNS from the machine", func(t *testing.T) {
		e.Kubectl("-n", "kube-system", "expose", "deployment", "coredns", "--name", "dns-lb", "--type", "LoadBalancer", "--port", "53", "--protocol", "UDP")
		var ip string
		e.Eventually(30*time.Second, func() error {
			if ip = e.Kubectl("-n", "kube-system", "get", "svc", "dns-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); !strings.HasPrefix(ip, "127.12.") {
				return fmt.Errorf("dns-lb's EXTERNAL-IP: %q", ip)
			}
			return nil
		})
		web := e.Kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
		e.Eventually(20*time.Second, func() error {
			got, err := lookupA(net.JoinHostPort(ip, "53"), "web.default.svc.cluster.local.")
			if err != nil || len(got) != 1 || got[0] != web {
				return fmt.Errorf("web.default.svc.cluster.local through %s: %v %v, want %s", ip, got, err, web)
			}
			return nil
		})
		rule := forwardingRuleName(e.Kubectl("-n", "kube-system", "get", "svc", "dns-lb", "-o", "jsonpath={.metadata.uid}"))
		var fr struct{ IPProtocol, PortRange string }
		gcloudJSON(t, e, &fr, "compute", "forwarding-rules", "describe", rule, "--region", "us-central1")
		if fr.IPProtocol != "UDP" || fr.PortRange != "53-53" {
			t.Errorf("forwarding rule %s: %+v", rule, fr)
		}
		e.Kubectl("-n", "kube-system", "delete", "svc", "dns-lb", "--timeout=30s")
		if got, err := lookupA(net.JoinHostPort(ip, "53"), "web.default.svc.cluster.local."); err == nil {
			t.Errorf("the deleted Service's load balancer still answers: %v", got)
		}
	})

	t.Run("workload logs and events in Cloud Logging", func(t *testing.T) {
		web := podsOf(t, e, "app=web")[0].Metadata.Name
		filter := `resource.type="k8s_container" AND resource.labels.pod_name="` + web + `"`
		e.Eventually(30*time.Second, func() error {
			var entries []struct {
				TextPayload string `json:"textPayload"`
				Severity    string `json:"severity"`
				Resource    struct {
					Labels map[string]string `json:"labels"`
				} `json:"resource"`
			}
			out := e.Gcloud("logging", "read", filter, "--format=json")
			if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) == 0 {
				return fmt.Errorf("gcloud logging read %s: %v %s", filter, err, out)
			}
			l := entries[0].Resource.Labels
			if !strings.Contains(entries[len(entries)-1].TextPayload, "Server listening on port 8080") || l["cluster_name"] != "svc" ||
				l["namespace_name"] != "default" || l["container_name"] != "hello-app" || l["location"] != zone || l["project_id"] != e.Project {
				return fmt.Errorf("%s's entries: %+v", web, entries)
			}
			return nil
		})
		events := `logName="projects/` + e.Project + `/logs/events" AND resource.type="k8s_pod" AND resource.labels.pod_name="` + web + `"`
		e.Eventually(30*time.Second, func() error {
			if out := e.Gcloud("logging", "read", events, "--format=value(jsonPayload.reason)"); !strings.Contains(out, "Scheduled") {
				return fmt.Errorf("%s's events: %q", web, out)
			}
			return nil
		})
	})

	t.Run("control-plane logs with --logging", func(t *testing.T) {
		e.Gcloud("container", "clusters", "update", "svc", "--zone", zone, "--logging=SYSTEM,WORKLOAD,API_SERVER")
		if got := e.Gcloud("container", "clusters", "describe", "svc", "--zone", zone, "--format=value(loggingConfig.componentConfig.enableComponents)"); got != "SYSTEM_COMPONENTS;WORKLOADS;APISERVER\n" {
			t.Errorf("loggingConfig after --logging=SYSTEM,WORKLOAD,API_SERVER: %q", got)
		}
		// The first PodDisruptionBudget: kube-apiserver logs its quota
		// evaluator, a line written after the update.
		e.Kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=1")
		filter := `resource.type="k8s_control_plane_component" AND resource.labels.cluster_name="svc" AND resource.labels.component_name="apiserver"`
		e.Eventually(30*time.Second, func() error {
			if out := e.Gcloud("logging", "read", filter, "--format=value(textPayload)"); !strings.Contains(out, "poddisruptionbudgets") {
				return fmt.Errorf("kube-apiserver's log in Cloud Logging:\n%s", out)
			}
			return nil
		})
		// A component kubeyard does not collect is refused, by field.
		if _, err := e.Run("gcloud", "container", "clusters", "update", "svc", "--zone", zone, "--logging=SYSTEM,WORKLOAD,ADDON_MANAGER"); err == nil ||
			!strings.Contains(err.Error(), "desiredLoggingConfig.componentConfig.enableComponents") {
			t.Errorf("--logging=SYSTEM,WORKLOAD,ADDON_MANAGER: %v", err)
		}
	})

	t.Run("--logging=SYSTEM leaves workloads out", func(t *testing.T) {
		say := func(name string) {
			t.Helper()
			e.Kubectl("run", name, "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo out-"+name+"; echo err-"+name+" >&2")
			e.Kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/"+name, "--timeout=60s")
		}
		entries := func(pod string) string {
			return e.Gcloud("logging", "read", `resource.type="k8s_container" AND resource.labels.pod_name="`+pod+`"`, "--format=value(severity,textPayload)")
		}
		e.Gcloud("container", "clusters", "update", "svc", "--zone", zone, "--logging=SYSTEM")
		say("quiet")
		e.Gcloud("container", "clusters", "update", "svc", "--zone", zone, "--logging=SYSTEM,WORKLOAD")
		say("loud")
		// Severity from the stream: stdout INFO, stderr ERROR.
		e.Eventually(30*time.Second, func() error {
			if out := entries("loud"); !strings.Contains(out, "INFO\tout-loud") || !strings.Contains(out, "ERROR\terr-loud") {
				return fmt.Errorf("loud's entries: %q", out)
			}
			return nil
		})
		if out := entries("quiet"); out != "" {
			t.Errorf("a pod that ran with workloads off was collected: %q", out)
		}
		e.Kubectl("delete", "pod", "quiet", "loud")
	})

	t.Run("a rolling update drops no request", func(t *testing.T) {
		// A readiness probe, and a preStop pause that lets every node's
		// kube-proxy stop sending before the server stops.
		e.Kubectl("patch", "deployment", "web", "--type=json", "-p", `[
			{"op":"add","path":"/spec/template/spec/containers/0/readinessProbe","value":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}},
			{"op":"add","path":"/spec/template/spec/containers/0/lifecycle","value":{"preStop":{"exec":{"command":["sleep","3"]}}}}]`)
		e.Kubectl("rollout", "status", "deployment/web", "--timeout=120s")
		// The rollout is done once the new pods serve; the old ones, which
		// had no preStop pause, may still be going. What is measured starts
		// when they are gone.
		e.Eventually(60*time.Second, func() error {
			if pods := strings.Fields(e.Kubectl("get", "pods", "-l", "app=web", "-o", "name")); len(pods) != 3 {
				return fmt.Errorf("web's pods: %v", pods)
			}
			return nil
		})
		e.Kubectl("run", "prober", "--image=busybox", "--restart=Never", "--", "sh", "-c",
			"while true; do t=$(date +%T); if out=$(timeout 5 wget -qO- http://web 2>&1); then echo \"$t $(echo \"$out\" | grep -e Version -e Hostname | tr '\\n' ' ')\"; else echo \"$t FAILED $out\"; fi; sleep 0.1; done")
		e.Kubectl("wait", "--for=condition=Ready", "pod/prober", "--timeout=60s")
		time.Sleep(2 * time.Second)
		e.Kubectl("set", "image", "deployment/web", "hello-app=us-docker.pkg.dev/google-samples/containers/gke/hello-app:1.0")
		e.Kubectl("rollout", "status", "deployment/web", "--timeout=120s")
		time.Sleep(2 * time.Second)
		logs := e.Kubectl("logs", "prober")
		e.Kubectl("delete", "pod", "prober", "--grace-period=1")
		failed := strings.Count(logs, "FAILED")
		v1, v2 := strings.Count(logs, "Version: 1.0.0"), strings.Count(logs, "Version: 2.0.0")
		t.Logf("during the rolling update: %d answers from 2.0.0, %d from 1.0.0, %d failed", v2, v1, failed)
		if failed > 0 || v1 == 0 || v2 == 0 {
			t.Errorf("requests through the Service during the rolling update: %d failed, %d answered by 2.0.0, %d by 1.0.0; the prober's log:\n%s", failed, v2, v1, logs)
		}
	})
}

// dnsPods are two pods with DNS settings of their own.
const dnsPods = `
apiVersion: v1
kind: Pod
metadata: {name: dns-none}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: [34.118.224.10]
    searches: [corp.example]
    options: [{name: ndots, value: "2"}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns-extra}
spec:
  dnsConfig:
    searches: [corp.example]
    options: [{name: edns0}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`

// loadKubectlImage loads an image of the kubectl on this machine (a
// static binary: a real client-go in-cluster client) into the engine's
// store, as kubeyard.test/kubectl:1.
func loadKubectlImage(t *testing.T, e *harness.Engine) {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Build(map[string]images.File{"kubectl": {Data: bin, Mode: 0o755}}, v1.Config{Entrypoint: []string{"/kubectl"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("kubeyard.test/kubectl:1")
	archive := filepath.Join(t.TempDir(), "kubectl.tar")
	if err := tarball.WriteToFile(archive, ref, img); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Kubeyard("images", "load", archive); err != nil {
		t.Fatalf("kubeyard images load: %v\n%s", err, out)
	}
}

// forwardingRuleName is GKE's name for a LoadBalancer Service's forwarding
// rule: "a" and its UID without dashes, 32 characters.
func forwardingRuleName(uid string) string {
	return ("a" + strings.ReplaceAll(uid, "-", ""))[:32]
}

// lookupA asks the DNS server at addr (a loopback address) for name's A
// records over UDP.
func lookupA(addr, name string) ([]string, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	packed, err := q.Pack()
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(packed); err != nil {
		return nil, err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, err
	}
	var reply dnsmessage.Message
	if err := reply.Unpack(buf[:n]); err != nil {
		return nil, err
	}
	if reply.RCode != dnsmessage.RCodeSuccess {
		return nil, fmt.Errorf("%s: %v", name, reply.RCode)
	}
	var out []string
	for _, a := range reply.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, net.IP(r.A[:]).String())
		}
	}
	return out, nil
}
