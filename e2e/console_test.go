package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// TestConsole drives the engine's web console in Chromium as a user
// does, and checks with gcloud and kubectl that what it did happened: a
// bad value in the create form shows the API's error and creates
// nothing; a cluster created from the form with intra-node visibility is
// what gcloud describes; its workloads and nodes are shown from the
// cluster; flow logs come on from the networks page and the viewer finds
// the flow between two pods; visibility goes off from the details page
// with its operation shown as it runs; an IP rotation starts and
// completes. Screenshots of every page go to artifacts/console.
func TestConsole(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	b := newBrowser(t, e, 1280, 900)

	// No page without a login: the login page says how to get one.
	b.open("/")
	b.awaitText("main", "kubeyard console", 20*time.Second)
	if eval[bool](b, `!!document.querySelector('script[src*="main.js"]')`) {
		t.Fatal("the console's scripts are served without a login")
	}
	b.shot("01-login")
	consoleLogin(t, e, b)
	b.shot("02-clusters-empty")

	// A bad value: the API's error, its field, and nothing created.
	b.press("Create cluster")
	b.awaitText("h1", "Create a Kubernetes cluster", 20*time.Second)
	b.do(chromedp.SendKeys("input[name=name]", "bad-range"),
		chromedp.Click("input[name=privateNodes]"),
		chromedp.SendKeys("input[name=masterCidr]", "172.16.0.0/24"))
	b.expectLabelled("the create form")
	b.shot("03-create-form")
	b.press("Create")
	b.awaitText("[role=alert]", "INVALID_ARGUMENT", 20*time.Second)
	if msg := b.textOf("[role=alert]"); !strings.Contains(msg, "Field: cluster.privateClusterConfig.masterIpv4CidrBlock") {
		t.Errorf("the form's error does not name the field:\n%s", msg)
	}
	if !eval[bool](b, `document.querySelector('input[name=masterCidr]').getAttribute('aria-invalid') === 'true'`) {
		t.Error("the input of the field at fault is not marked invalid")
	}
	b.shot("04-create-error")
	if out := e.Gcloud("container", "clusters", "list", "--format", "value(name)"); strings.TrimSpace(out) != "" {
		t.Fatalf("a refused create made clusters: %s", out)
	}

	// The cluster of seeds/003, from the form.
	b.do(b.fill("input[name=name]", "console-demo"),
		chromedp.Click("input[name=privateNodes]"), b.fill("input[name=masterCidr]", ""),
		b.fill("input[name=nodes]", "1"),
		chromedp.Click("input[name=intraNodeVisibility]"))
	b.press("Create")
	b.awaitText("h1", "console-demo", 20*time.Second)
	b.awaitText("main", "CREATE_CLUSTER", 20*time.Second) // the operation, as it runs
	b.shot("05-cluster-creating")
	b.awaitText("h1", "RUNNING", 3*time.Minute)
	b.awaitText("main", "Intra-node visibility\nEnabled", 20*time.Second)
	describe := func(format string) string {
		return strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "console-demo", "--zone", zone, "--format", "value("+format+")"))
	}
	if v := describe("networkConfig.enableIntraNodeVisibility"); v != "True" {
		t.Fatalf("gcloud describes the console's cluster with enableIntraNodeVisibility %q", v)
	}
	oldEndpoint := describe("endpoint")
	if !strings.Contains(b.textOf("main"), oldEndpoint) {
		t.Errorf("the details do not show the endpoint %s", oldEndpoint)
	}
	b.expectLabelled("the cluster's details")
	b.shot("06-cluster-details")

	// Two pods on the one node, one calling the other: the workloads
	// page lists them, a pod's log is shown, and with flow logs on from
	// the networks page, the viewer finds their flow.
	e.Gcloud("container", "clusters", "get-credentials", "console-demo", "--zone", zone)
	b.open("/#/networks/subnetworks")
	b.awaitText("main", "us-central1", 20*time.Second)
	b.expectLabelled("the subnetworks")
	b.shot("07-networks")
	b.do(chromedp.Click(`button[aria-label="Turn flow logs on for default in us-central1"]`))
	b.await("flow logs on", 20*time.Second, `!!document.querySelector('button[aria-label="Turn flow logs off for default in us-central1"]')`)
	if out := e.Gcloud("compute", "networks", "subnets", "describe", "default", "--region", "us-central1", "--format", "value(enableFlowLogs)"); strings.TrimSpace(out) != "True" {
		t.Fatalf("gcloud says enableFlowLogs %q after the console turned them on", out)
	}
	for _, pod := range []string{"pod-1", "pod-2"} {
		e.Kubectl("apply", "-f", filepath.Join(harness.RepoRoot(), "examples", pod+".yaml"))
	}
	e.Kubectl("wait", "--for=condition=Ready", "pod/pod-1", "pod/pod-2", "--timeout=120s")
	pod2IP := e.Kubectl("get", "pod", "pod-2", "-o", "jsonpath={.status.podIP}")
	pod1IP := e.Kubectl("get", "pod", "pod-1", "-o", "jsonpath={.status.podIP}")
	if out := e.Kubectl("exec", "pod-1", "--", "wget", "-qO-", pod2IP+":8080"); !strings.Contains(out, "Hostname: pod-2") {
		t.Fatalf("pod-1 to pod-2: %s", out)
	}

	b.open("/#/clusters/" + zone + "/console-demo/workloads")
	b.awaitText("main", "pod-2", 30*time.Second)
	b.awaitText("main", "Running", 30*time.Second)
	b.expectLabelled("the workloads")
	b.shot("08-workloads")
	b.open("/#/clusters/" + zone + "/console-demo/pods/default/pod-2/log")
	b.awaitText("pre.log", "Server listening", 30*time.Second)
	b.shot("09-pod-log")
	b.open("/#/clusters/" + zone + "/console-demo/nodes")
	b.awaitText("main", "default-pool", 30*time.Second)
	b.do(chromedp.Click("td details summary")) // the node's pods
	b.awaitText("main", "default/pod-1", 30*time.Second)
	b.shot("10-nodes")

	b.open("/#/flowlogs")
	b.awaitText("h1", "Flow logs", 20*time.Second)
	b.do(chromedp.SendKeys("input[name=src]", pod1IP), chromedp.SendKeys("input[name=dest]", pod2IP))
	b.press("Run query")
	b.awaitText("main", "gcloud logging read", 20*time.Second)
	// Flow entries come every aggregation interval (5 s); the viewer
	// follows the query.
	b.awaitText("main", pod2IP+":8080", time.Minute)
	b.awaitText("main", "default/pod-1 → default/pod-2", 20*time.Second)
	b.expectLabelled("the flow logs")
	b.shot("11-flow-logs")

	// Visibility off from the details page, by keyboard: the operation
	// shows as it runs, and gcloud sees the change.
	b.open("/#/clusters/" + zone + "/console-demo")
	b.awaitText("main", "Disable intra-node visibility", 20*time.Second)
	b.do(chromedp.Focus(`//button[normalize-space()="Disable intra-node visibility"]`),
		chromedp.KeyEvent("\r"))
	b.await("the dialog", 20*time.Second, `!!document.querySelector('dialog[open]')`)
	if got := eval[string](b, `document.activeElement.innerText`); got != "Disable" {
		t.Errorf("the dialog's focus is on %q, want its Disable button", got)
	}
	b.shot("12-visibility-dialog")
	b.do(chromedp.KeyEvent("\r"))
	b.awaitText("main", "UPDATE_CLUSTER", 20*time.Second)
	b.shot("13-visibility-operation")
	b.awaitText("main", "Intra-node visibility\nDisabled", 3*time.Minute)
	if v := describe("networkConfig.enableIntraNodeVisibility"); v == "True" {
		t.Errorf("gcloud still describes intra-node visibility on")
	}

	// An IP rotation, started and completed from the details page, with
	// gcloud's warnings.
	b.press("Start IP rotation")
	b.awaitText("dialog[open]", "This will start an IP Rotation on cluster [console-demo]", 20*time.Second)
	b.shot("14-rotation-warning")
	b.press("Start rotation")
	b.await("a new endpoint", 3*time.Minute, `!document.querySelector('dialog[open]')`)
	e.Eventually(3*time.Minute, func() error {
		if describe("endpoint") == oldEndpoint {
			return errorf("the endpoint is still %s", oldEndpoint)
		}
		if ops := e.Gcloud("container", "operations", "list", "--filter", "operationType=UPGRADE_NODES AND status=DONE", "--format", "value(name)"); strings.TrimSpace(ops) == "" {
			return errorf("the node pool is not recreated yet")
		}
		if ops := e.Gcloud("container", "operations", "list", "--filter", "status!=DONE", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
			return errorf("operations run: %s", ops)
		}
		return nil
	})
	newEndpoint := describe("endpoint")
	b.awaitText("main", newEndpoint, 20*time.Second)
	b.open("/#/operations")
	b.awaitText("main", "UPGRADE_NODES", 20*time.Second)
	b.expectLabelled("the operations")
	b.shot("15-operations")
	b.open("/#/clusters/" + zone + "/console-demo")
	b.press("Complete IP rotation")
	b.awaitText("dialog[open]", "This will complete the in-progress IP Rotation on cluster [console-demo]", 20*time.Second)
	b.press("Complete rotation")
	b.await("the dialog closed", 20*time.Second, `!document.querySelector('dialog[open]')`)
	e.Eventually(3*time.Minute, func() error {
		if ops := e.Gcloud("container", "operations", "list", "--filter", "status!=DONE", "--format", "value(name)"); strings.TrimSpace(ops) != "" {
			return errorf("operations run: %s", ops)
		}
		return nil
	})
	if out, err := e.Run("kubectl", "get", "--raw", "/readyz", "--server", "https://"+oldEndpoint, "--request-timeout", "5s"); err == nil {
		t.Errorf("the old endpoint %s still answers after the completion: %s", oldEndpoint, out)
	}

	// A narrow window: the same page, the sections above it.
	b.do(chromedp.EmulateViewport(420, 900))
	b.open("/#/clusters/" + zone + "/console-demo")
	b.awaitText("h1", "console-demo", 20*time.Second)
	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 420 {
		t.Errorf("the details page is %d px wide in a 420 px window", w)
	}
	b.shot("16-narrow-details")
}

// TestConsoleRefusesWithoutASession: the console's pages and scripts, and
// the API with a made-up session, answer nothing to a browser that has not
// logged in; a login link works once.
func TestConsoleRefusesWithoutASession(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	get := func(path string, cookie string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+e.Addr+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", "kubeyard_session="+cookie)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/", "/console/assets/js/main.js", "/v1/projects/" + e.Project + "/locations/-/clusters"} {
		if code, body := get(path, "made-up"); code != http.StatusUnauthorized || strings.Contains(body, "csrf-token") {
			t.Errorf("GET %s without a login: %d", path, code)
		}
	}
	link, err := e.Kubeyard("console")
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(strings.TrimSpace(link), "http://"+e.Addr)
	if code, _ := get(path, ""); code != http.StatusSeeOther {
		t.Errorf("the link: %d", code)
	}
	if code, _ := get(path, ""); code != http.StatusUnauthorized {
		t.Errorf("the link again: %d", code)
	}
	// The engine prints a first link when it starts.
	log, _ := os.ReadFile(filepath.Join(e.Dir, "engine.log"))
	if !strings.Contains(string(log), "http://"+e.Addr+"/console/login?code=") {
		t.Errorf("the engine's start does not print a console link:\n%s", log)
	}
}

// TestConsoleChanges: the rest of what the console changes, each checked
// with gcloud or kubectl: labels, authorized networks, a refused request
// whose error the dialog shows, a node pool resized, the cluster CA
// rotated with its progress shown, and a delete that asks for the name.
func TestConsoleChanges(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	e.Gcloud("container", "clusters", "create", "edits", "--zone", zone, "--num-nodes", "1")
	e.Gcloud("container", "clusters", "get-credentials", "edits", "--zone", zone)
	describe := func(format string) string {
		return strings.TrimSpace(e.Gcloud("container", "clusters", "describe", "edits", "--zone", zone, "--format", "value("+format+")"))
	}
	b := newBrowser(t, e, 1280, 900)
	link, err := e.Kubeyard("console")
	if err != nil {
		t.Fatal(err)
	}
	b.open(strings.TrimPrefix(strings.TrimSpace(link), b.base))
	b.do(b.fill("#project", e.Project+"\n"))
	b.awaitText("main", "edits", 20*time.Second)
	b.shot("20-clusters")
	b.press("edits")
	b.awaitText("h1", "RUNNING", 20*time.Second)
	idle := func() {
		t.Helper()
		b.await("the cluster idle", 3*time.Minute, `!document.querySelector('.notice') && !!document.querySelector('h1 .status.ok')`)
	}

	// Labels.
	b.press("Edit labels")
	b.do(b.fill("dialog textarea[name=labels]", "team=platform"))
	b.press("Save")
	b.awaitText("main", "team", 20*time.Second)
	if got := describe("resourceLabels.team"); got != "platform" {
		t.Errorf("gcloud describes the label team=%q", got)
	}

	// Authorized networks: the endpoints admit only loopback, which the
	// test (and kubectl) still is.
	b.press("Edit authorized networks")
	b.do(chromedp.Click("dialog input[name=enabled]"), b.fill("dialog textarea[name=cidrs]", "127.0.0.0/8"))
	b.press("Save")
	b.awaitText("main", "127.0.0.0/8", time.Minute)
	idle()
	if got := describe("masterAuthorizedNetworksConfig.cidrBlocks[0].cidrBlock"); got != "127.0.0.0/8" {
		t.Errorf("gcloud describes the authorized networks %q", got)
	}
	e.Kubectl("get", "nodes")

	// A request the engine refuses: its error, in the dialog, which
	// stays open; nothing runs.
	b.press("Complete IP rotation")
	b.press("Complete rotation")
	b.awaitText("dialog[open] [role=alert]", "FAILED_PRECONDITION", 20*time.Second)
	if msg := b.textOf("dialog[open] [role=alert]"); !strings.Contains(msg, "is not rotating its IP") {
		t.Errorf("the refusal says %q", msg)
	}
	b.shot("21-refused-in-dialog")
	b.press("Cancel")

	// A node pool resized from the nodes page.
	b.press("Nodes")
	b.awaitText("main", "default-pool", 20*time.Second)
	b.press("Resize")
	b.do(b.fill("dialog input[name=count]", "2"))
	b.press("Resize")
	e.Eventually(3*time.Minute, func() error {
		if n := strings.Count(e.Kubectl("get", "nodes", "-o", "name"), "node/"); n != 2 {
			return errorf("%d nodes", n)
		}
		return nil
	})
	b.await("two nodes on the page", time.Minute, `document.querySelectorAll('main table')[1]?.querySelectorAll('tbody tr').length === 2`)
	b.shot("22-resized")

	// The cluster CA rotation, its phases shown as they go.
	b.press("Details")
	idle()
	oldCA := describe("masterAuth.clusterCaCertificate")
	b.press("Rotate cluster CA")
	b.awaitText("dialog[open]", "cannot be paused or rolled back", 20*time.Second)
	b.press("Rotate the cluster CA")
	b.awaitText(".notice", "CA rotation 1/3", time.Minute)
	b.shot("23-ca-rotation")
	idle()
	if describe("masterAuth.clusterCaCertificate") == oldCA {
		t.Error("the cluster CA is the same after the rotation")
	}
	b.open("/#/operations")
	b.awaitText("main", "UPDATE_CLUSTER", 20*time.Second)
	b.do(chromedp.Click("tbody tr:first-child details summary")) // the newest's stages
	b.awaitText("main", "CA rotation 3/3", 20*time.Second)

	// Delete, once the name is typed.
	b.open("/#/clusters/" + zone + "/edits")
	b.press("Delete cluster")
	b.do(b.fill("dialog input[name=confirm]", "edit"))
	b.press("Delete")
	b.awaitText("dialog[open] [role=alert]", "Type edits to confirm", 20*time.Second)
	if got := describe("status"); got != "RUNNING" {
		t.Fatalf("the cluster is %s after a delete that was not confirmed", got)
	}
	b.do(b.fill("dialog input[name=confirm]", "edits"))
	b.press("Delete")
	b.awaitText("h1", "Kubernetes clusters", 20*time.Second)
	e.Eventually(3*time.Minute, func() error {
		if out := e.Gcloud("container", "clusters", "list", "--format", "value(name)"); strings.TrimSpace(out) != "" {
			return errorf("clusters: %s", out)
		}
		return nil
	})
	b.awaitText("main", "No clusters in project", 20*time.Second)

	// Log out, and in again with the access token pasted: the browser's
	// own form posts.
	b.press("Log out")
	b.awaitText("main", "Or log in with the engine's access token", 20*time.Second)
	if code := eval[int](b, `fetch('/v1/projects/p/locations/-/clusters').then(r => r.status)`, chromedp.EvalAwaitPromise); code != http.StatusUnauthorized {
		t.Errorf("the API after logging out: %d", code)
	}
	b.do(b.fill("#token", e.Token()+"\n"))
	b.awaitText("h1", "Kubernetes clusters", 20*time.Second)
}
