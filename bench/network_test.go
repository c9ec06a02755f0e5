package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// BenchmarkAuthorizedNetworks prints how long a master authorized networks
// update takes to be enforced on the cluster's endpoint: from the REST
// update to the first connection from a newly authorized source that gets
// through, and from the update that removes it to the first one refused.
// Target: 1 s or less for each.
func BenchmarkAuthorizedNetworks(b *testing.B) {
	e := harness.Start(b, harness.Options{})
	authorized := func(cidrs ...string) map[string]any {
		var blocks []any
		for _, c := range cidrs {
			blocks = append(blocks, map[string]any{"cidrBlock": c})
		}
		return map[string]any{"ipEndpointsConfig": map[string]any{"authorizedNetworksConfig": map[string]any{"enabled": true, "cidrBlocks": blocks}}}
	}
	body := map[string]any{"cluster": map[string]any{"name": "an", "nodePools": []any{map[string]any{"name": "default-pool", "initialNodeCount": 1}},
		"controlPlaneEndpointsConfig": authorized("127.77.0.0/16")}}
	code, op := e.API("POST", fmt.Sprintf("/v1/projects/%s/locations/%s/clusters", e.Project, zone), e.Token(), body)
	if code != 200 {
		b.Fatalf("create: HTTP %d %v", code, op)
	}
	waitOperation(b, e, zone, op["name"].(string))
	cluster := fmt.Sprintf("/v1/projects/%s/locations/%s/clusters/an", e.Project, zone)
	_, c := e.API("GET", cluster, e.Token(), nil)
	endpoint := c["endpoint"].(string)
	// update sends the list and returns how long until source's
	// connections are as wanted (admitted or not).
	update := func(source string, admitted bool, cidrs ...string) time.Duration {
		begin := time.Now()
		code, op := e.API("PUT", cluster, e.Token(), map[string]any{"update": map[string]any{"desiredControlPlaneEndpointsConfig": authorized(cidrs...)}})
		if code != 200 {
			b.Fatalf("update: HTTP %d %v", code, op)
		}
		if err := harness.Poll(30*time.Second, 5*time.Millisecond, func() error {
			if (harness.Reach(source, endpoint) == nil) != admitted {
				return fmt.Errorf("%s admitted=%v not in effect", source, admitted)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(begin)
		waitOperation(b, e, zone, op["name"].(string))
		return took
	}
	b.ResetTimer()
	for range b.N {
		add := update("127.78.0.5", true, "127.77.0.0/16", "127.78.0.0/16")
		remove := update("127.78.0.5", false, "127.77.0.0/16")
		fmt.Printf("authorized networks update in effect: added %.3f s, removed %.3f s (target 1 s: %.2fx, %.2fx)\n", add.Seconds(), remove.Seconds(), add.Seconds(), remove.Seconds())
		b.ReportMetric(add.Seconds(), "add-s")
		b.ReportMetric(remove.Seconds(), "remove-s")
	}
}
