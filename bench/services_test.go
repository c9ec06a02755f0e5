package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeyard/kubeyard/e2e/harness"
	"github.com/kubeyard/kubeyard/internal/netns"
)

// BenchmarkServices prints, on a 2-node cluster with three hello-app
// backends: the latency of a request through a ClusterIP Service (the
// upstream kube-proxy's nftables rules) against calling the same pods
// directly, from a pod (p50, p99 of 300 requests, a connection each; the
// ratio is the Service's cost); a DNS lookup of the Service's name from
// a pod, against the cluster's CoreDNS; and a LoadBalancer Service's time
// from its create call to its first answer on its external address
// (target under 2 s), with the time its delete takes to stop it answering.
func BenchmarkServices(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	createCluster(b, e, zone, "svc", 2)
	client, _ := clusterClient(b, e, "svc")
	ctx := context.Background()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 2 {
		b.Fatalf("nodes: %v", err)
	}
	a, other := nodes.Items[0].Name, nodes.Items[1].Name
	pods := podsOn(b, client, a, a, other, other)
	from, backends := podNS(e, pods[0]), pods[1:]
	var direct []string
	for _, p := range backends {
		patch := []byte(`{"metadata":{"labels":{"app":"web"}}}`)
		if _, err := client.CoreV1().Pods("default").Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/")
	}
	svc := webService(b, client, "web", corev1.ServiceTypeClusterIP)
	waitEndpoints(b, client, "default", "web", len(backends))
	through := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"
	// kube-proxy programs the rules a moment after the EndpointSlice.
	if err := harness.Poll(30*time.Second, 50*time.Millisecond, func() error {
		return netns.Do(from, func() error {
			resp, err := (&http.Client{Timeout: time.Second}).Get(through)
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
	}); err != nil {
		b.Fatalf("the Service does not answer: %v", err)
	}
	dns, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	waitEndpoints(b, client, "kube-system", "kube-dns", 2) // CoreDNS's two replicas
	b.ResetTimer()
	for range b.N {
		// Interleaved, so that both paths see the same moments of the
		// machine: a pod, the Service, the next pod, the Service...
		var targets []string
		for _, d := range direct {
			targets = append(targets, d, through)
		}
		requests(b, from, 60, targets...) // warm both alike
		var pod, service []time.Duration
		for i, d := range requests(b, from, 600, targets...) {
			if i%2 == 0 {
				pod = append(pod, d)
			} else {
				service = append(service, d)
			}
		}
		pp50, sp50 := percentile(pod, 0.5), percentile(service, 0.5)
		fmt.Printf("request to a pod directly:     p50 %.2f ms, p99 %.2f ms\n", ms(pp50), ms(percentile(pod, 0.99)))
		fmt.Printf("request through the ClusterIP: p50 %.2f ms, p99 %.2f ms (Service/direct at p50: %.2fx)\n",
			ms(sp50), ms(percentile(service, 0.99)), sp50.Seconds()/pp50.Seconds())
		b.ReportMetric(sp50.Seconds()/pp50.Seconds(), "service/direct-x")

		lookups := lookups(b, from, dns.Spec.ClusterIP, "web.default.svc.cluster.local.", 300)
		fmt.Printf("DNS lookup of web.default.svc.cluster.local from a pod (CoreDNS, over UDP): p50 %.2f ms, p99 %.2f ms\n",
			ms(percentile(lookups, 0.5)), ms(percentile(lookups, 0.99)))
		b.ReportMetric(ms(percentile(lookups, 0.5)), "dns-p50-ms")

		var answering, released []time.Duration
		for i := range 5 {
			up, down := loadBalancerRound(b, client, fmt.Sprint("web-lb-", i))
			answering, released = append(answering, up), append(released, down)
		}
		up := percentile(answering, 0.5)
		fmt.Printf("LoadBalancer Service, create to first answer on its address: median %.2f s, max %.2f s of 5 (target 2 s: %.2fx at the median)\n",
			up.Seconds(), percentile(answering, 1).Seconds(), up.Seconds()/2)
		fmt.Printf("LoadBalancer Service, delete to no answer: median %.2f s, max %.2f s of 5\n",
			percentile(released, 0.5).Seconds(), percentile(released, 1).Seconds())
		b.ReportMetric(up.Seconds(), "lb-answering-s")
	}
}

// webService creates a Service of port 80 in front of the pods labelled
// app=web.
func webService(b *testing.B, client *kubernetes.Clientset, name string, typ corev1.ServiceType) *corev1.Service {
	b.Helper()
	svc, err := client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// waitEndpoints waits for the Service's EndpointSlices to hold n ready
// endpoints.
func waitEndpoints(b *testing.B, client *kubernetes.Clientset, namespace, service string, n int) {
	b.Helper()
	if err := harness.Poll(time.Minute, 50*time.Millisecond, func() error {
		slices, err := client.DiscoveryV1().EndpointSlices(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
		if err != nil {
			return err
		}
		got := 0
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					got++
				}
			}
		}
		if got != n {
			return fmt.Errorf("%s has %d ready endpoints, want %d", service, got, n)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// loadBalancerRound creates a LoadBalancer Service and returns the time
// from the create call to the first answer on its address, then deletes
// it and returns the time from the delete call to the address refusing.
func loadBalancerRound(b *testing.B, client *kubernetes.Clientset, name string) (up, down time.Duration) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	webService(b, client, name, corev1.ServiceTypeLoadBalancer)
	var addr string
	if err := harness.Poll(30*time.Second, 10*time.Millisecond, func() error {
		svc, err := client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("%s has no address yet", name)
		}
		addr = svc.Status.LoadBalancer.Ingress[0].IP
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// Only ever the machine's loopback: the external pool is there.
	if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
		b.Fatalf("%s got %q, not a loopback address", name, addr)
	}
	url := "http://" + net.JoinHostPort(addr, "80") + "/"
	get := func() error {
		resp, err := (&http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	if err := harness.Poll(30*time.Second, 10*time.Millisecond, get); err != nil {
		b.Fatalf("%s at %s: %v", name, addr, err)
	}
	up = time.Since(start)
	start = time.Now()
	if err := client.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := harness.Poll(30*time.Second, 10*time.Millisecond, func() error {
		if get() == nil {
			return fmt.Errorf("%s still answers at %s", name, addr)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return up, time.Since(start)
}

// lookups times n A queries of name to the DNS server at server, from
// inside network namespace ns. The socket is made there (it stays in that
// namespace), and used from here: Go's resolver would look up on other
// goroutines, outside the namespace.
func lookups(b *testing.B, ns, server, name string, n int) []time.Duration {
	b.Helper()
	var conn net.Conn
	if err := netns.Do(ns, func() (err error) {
		conn, err = net.Dial("udp", net.JoinHostPort(server, "53"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	buf := make([]byte, 512)
	var took []time.Duration
	for i := range n {
		msg := dnsmessage.Message{Header: dnsmessage.Header{ID: uint16(i), RecursionDesired: true}, Questions: []dnsmessage.Question{q}}
		packed, err := msg.Pack()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		conn.SetDeadline(start.Add(2 * time.Second))
		if _, err := conn.Write(packed); err != nil {
			b.Fatal(err)
		}
		var reply dnsmessage.Message
		for {
			k, err := conn.Read(buf)
			if err != nil {
				b.Fatalf("lookup of %s: %v", name, err)
			}
			if reply.Unpack(buf[:k]) == nil && reply.ID == uint16(i) {
				break
			}
		}
		took = append(took, time.Since(start))
		if reply.RCode != dnsmessage.RCodeSuccess || len(reply.Answers) == 0 {
			b.Fatalf("lookup of %s: %v, %d answers", name, reply.RCode, len(reply.Answers))
		}
	}
	return took
}
