// Package harness runs real kubeyard engines for end-to-end tests and
// benchmarks: it builds the binary once (`make build`), starts `kubeyard
// serve` on a free port with its own data dir and loopback ranges, and drives
// it with the real gcloud and kubectl. Every process and folder it creates is
// removed when the test ends, whether it passed or not.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/apitest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary returns the kubeyard binary: $KUBEYARD_BINARY, or one built with
// `make build` at the repository root (once per test process).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("KUBEYARD_BINARY"); b != "" {
			binary = b
			return
		}
		root := RepoRoot()
		cmd := exec.Command("make", "-C", root, "build")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make build: %v\n%s", err, out)
			return
		}
		binary = filepath.Join(root, "bin", "kubeyard")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// envIndex gives each engine of a test process its own loopback ranges.
var envIndex atomic.Int32

// Engine is a running kubeyard engine.
type Engine struct {
	t       testing.TB
	Dir     string // everything of this engine lives here
	DataDir string
	Addr    string
	Project string
	// ExtraArgs are added to `kubeyard serve`.
	ExtraArgs              []string
	EndpointPool, HostPool string

	cmd      *exec.Cmd
	exited   chan error
	log      *os.File
	machines []string // data dirs of other "machines" (kubeyard join)
	killed   bool     // by Kill, and not restarted since
}

// Options adjust Start.
type Options struct {
	ExtraArgs []string
}

// Start starts an engine and waits until its API answers.
func Start(t testing.TB, opts Options) *Engine {
	t.Helper()
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "kubeyard-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	n := int(envIndex.Add(1)) + os.Getpid()%20*3
	e := &Engine{
		t: t, Dir: dir, DataDir: filepath.Join(dir, "data"), Addr: FreeAddr(t), Project: "e2e-project",
		ExtraArgs:    opts.ExtraArgs,
		EndpointPool: fmt.Sprintf("127.%d.0.0/16", 100+n%70),
		HostPool:     fmt.Sprintf("127.%d.0.0/16", 180+n%70),
	}
	t.Cleanup(e.cleanup)
	e.start(bin)
	return e
}

// FreeAddr is a free address on 127.0.0.1 (a port the kernel picked).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is the port of a FreeAddr.
func FreePort(t testing.TB) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	return port
}

func (e *Engine) start(bin string) {
	e.t.Helper()
	args := append([]string{"serve", "--data-dir", e.DataDir, "--addr", e.Addr,
		"--endpoint-pool", e.EndpointPool, "--host-pool", e.HostPool}, e.ExtraArgs...)
	log, err := os.OpenFile(filepath.Join(e.Dir, "engine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.log = log
	e.cmd = exec.Command(bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(e.cmd, e.exited)
	e.Eventually(60*time.Second, func() error {
		select {
		case err := <-e.exited:
			e.exited <- err
			return fmt.Errorf("engine exited: %v\n%s", err, e.Log())
		default:
		}
		resp, err := http.Get("http://" + e.Addr + "/v1/projects/x/locations/-/clusters")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Log returns the engine's log so far.
func (e *Engine) Log() string {
	data, _ := os.ReadFile(filepath.Join(e.Dir, "engine.log"))
	return string(data)
}

// PID is the engine's process ID.
func (e *Engine) PID() int { return e.cmd.Process.Pid }

// Kill ends the engine with SIGKILL, as a crash would: its control planes
// keep running.
func (e *Engine) Kill() {
	e.t.Helper()
	_ = e.cmd.Process.Kill()
	<-e.exited
	e.log.Close()
	e.killed = true
}

// Stop sends sig and waits for the engine to exit, returning its error.
func (e *Engine) Stop(sig syscall.Signal) error {
	_ = e.cmd.Process.Signal(sig)
	select {
	case err := <-e.exited:
		e.log.Close()
		return err
	case <-time.After(90 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
		e.log.Close()
		return fmt.Errorf("engine did not stop within 90s after %v", sig)
	}
}

// Restart starts the engine again on the same data dir and address.
func (e *Engine) Restart() {
	e.t.Helper()
	e.killed = false
	e.start(Binary(e.t))
}

// ComponentPIDs returns the control-plane processes recorded in pidfiles,
// named "component@clusterID".
func (e *Engine) ComponentPIDs() map[string]int {
	return readPIDFiles(filepath.Join(e.DataDir, "clusters", "*", "run", "*.pid"), func(f string) string {
		return filepath.Base(filepath.Dir(filepath.Dir(f)))
	})
}

// containerFiles is the glob pattern of a file every container of the
// engine's nodes has: .../nodes/NODE/pods/pods/UID/containers/NAME/file.
func (e *Engine) containerFiles(file string) string {
	return filepath.Join(e.DataDir, "clusters", "*", "nodes", "*", "pods", "pods", "*", "containers", "*", file)
}

// NodePIDs returns the processes of the engine's real nodes, from their
// pidfiles: each node's kube-proxy, as "kube-proxy@node", and each
// container and its shim, as "container:NAME@pod-uid" and
// "shim:NAME@pod-uid".
func (e *Engine) NodePIDs() map[string]int {
	nodes := filepath.Join(e.DataDir, "clusters", "*", "nodes", "*")
	out := readPIDFiles(filepath.Join(nodes, "kube-proxy", "*.pid"), func(f string) string {
		return filepath.Base(filepath.Dir(filepath.Dir(f)))
	})
	for _, kind := range []string{"container", "shim"} {
		for name, pid := range readPIDFiles(e.containerFiles(kind+".pid"), func(f string) string {
			container := filepath.Dir(f)
			return filepath.Base(container) + "@" + filepath.Base(filepath.Dir(filepath.Dir(container)))
		}) {
			out[strings.Replace(name, "@", ":", 1)] = pid // kind:NAME@pod-uid
		}
	}
	return out
}

// MachineDir returns a data dir for another "machine" (a `kubeyard join`):
// whatever processes it records are killed when the test ends.
func (e *Engine) MachineDir(name string) string {
	dir := filepath.Join(e.Dir, name)
	e.machines = append(e.machines, dir)
	return dir
}

// SpareIP returns an address of the engine's host range that the engine
// does not hand out in a test (i from 1 to 250), for a joining machine.
func (e *Engine) SpareIP(i int) string {
	prefix, _, _ := strings.Cut(e.HostPool, ".0.0/")
	return fmt.Sprintf("%s.255.%d", prefix, i)
}

// ProcessPIDs returns every process the engine started: the control planes
// and the engine's own (the load balancer, as "loadbalancer@engine").
func (e *Engine) ProcessPIDs() map[string]int {
	out := e.ComponentPIDs()
	for name, pid := range readPIDFiles(filepath.Join(e.DataDir, "run", "*.pid"), func(string) string { return "engine" }) {
		out[name] = pid
	}
	return out
}

func readPIDFiles(pattern string, owner func(file string) string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.Fields(string(data) + " 0")[0]); err == nil && pid > 0 {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")+"@"+owner(f)] = pid
		}
	}
	return out
}

// ComponentPID returns the PID of the first control-plane process whose
// name ("kube-apiserver-0", "etcd-2", ...) has the prefix, or 0.
func (e *Engine) ComponentPID(prefix string) int {
	for name, pid := range e.ComponentPIDs() {
		if strings.HasPrefix(name, prefix) {
			return pid
		}
	}
	return 0
}

// cleanup stops the engine (SIGTERM stops its clusters), kills whatever
// control-plane process is still recorded, and removes the folder.
func (e *Engine) cleanup() {
	if e.t.Failed() {
		e.keepLogs() // before the stop removes the containers' logs
	}
	if e.cmd != nil && e.cmd.ProcessState == nil {
		select {
		case err := <-e.exited:
			e.exited <- err
		default:
			if err := e.Stop(syscall.SIGTERM); err != nil {
				e.t.Logf("engine stop: %v", err)
			}
		}
	}
	leftovers := e.ProcessPIDs()
	for _, dir := range e.machines {
		for name, pid := range readPIDFiles(filepath.Join(dir, "run", "*.pid"), func(string) string { return filepath.Base(dir) }) {
			leftovers[name] = pid
		}
	}
	for name, pid := range leftovers {
		if syscall.Kill(pid, 0) == nil {
			e.t.Logf("killing leftover %s (pid %d)", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// An engine stopped with SIGTERM stops its nodes' containers and
	// removes their namespaces and cgroups; one that was killed leaves
	// them, for the next engine to adopt.
	if left := e.Leftovers(); len(left) > 0 {
		if !e.killed && !slices.Contains(e.ExtraArgs, "--leave-clusters-running") {
			e.t.Errorf("the stopped engine left on the machine: %s", strings.Join(left, ", "))
		}
		e.removeLeftovers()
		if left := e.Leftovers(); len(left) > 0 {
			e.t.Errorf("could not remove: %s", strings.Join(left, ", "))
		}
	}
	os.RemoveAll(e.Dir)
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Env is the environment for gcloud and kubectl against this engine, with a
// throwaway gcloud config and kubeconfig.
func (e *Engine) Env() []string {
	base := "http://" + e.Addr + "/"
	env := []string{
		"CLOUDSDK_CONFIG=" + filepath.Join(e.Dir, "gcloud"),
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER=" + base,
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=" + base + "compute/v1/",
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING=" + base,
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE=" + base,
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS=" + base,
		"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=" + filepath.Join(e.DataDir, "access-token"),
		"CLOUDSDK_CORE_PROJECT=" + e.Project,
		"KUBECONFIG=" + filepath.Join(e.Dir, "kubeconfig"),
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDSDK_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	return env
}

// Run runs a command with the engine's environment and returns its
// combined output (where gcloud's errors are).
func (e *Engine) Run(name string, args ...string) (string, error) {
	stdout, stderr, err := e.run(name, args...)
	return stdout + stderr, err
}

func (e *Engine) run(name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// Gcloud runs gcloud, fails the test if it fails, and returns its standard
// output (gcloud reports progress on standard error).
func (e *Engine) Gcloud(args ...string) string {
	e.t.Helper()
	out, _, err := e.run("gcloud", args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Kubectl runs kubectl, fails the test if it fails, and returns its
// standard output.
func (e *Engine) Kubectl(args ...string) string {
	e.t.Helper()
	out, _, err := e.run("kubectl", args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Token is the engine's access token.
func (e *Engine) Token() string {
	data, err := os.ReadFile(filepath.Join(e.DataDir, "access-token"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// API calls the engine's REST API with token (none when empty) and returns
// the status code and decoded JSON body; body is a string (sent as it is)
// or a value (sent as JSON).
func (e *Engine) API(method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	return e.APIClient(token).Call(method, path, reader)
}

// APIClient is a client of the engine's API with token.
func (e *Engine) APIClient(token string) *apitest.Client {
	return &apitest.Client{T: e.t, Base: "http://" + e.Addr, Token: token}
}

// Eventually polls cond until it returns nil, failing the test after timeout.
func (e *Engine) Eventually(timeout time.Duration, cond func() error) {
	e.t.Helper()
	if err := Poll(timeout, 200*time.Millisecond, cond); err != nil {
		e.t.Fatal(err)
	}
}

// Poll calls cond every interval until it returns nil, and then returns
// nil; after timeout it returns cond's last error.
func Poll(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Kubeyard runs the kubeyard CLI, from the engine's folder, in the
// environment `kubeyard env` prints for the engine (the CLI finds the
// engine's address, token and project there), and returns its combined
// output.
func (e *Engine) Kubeyard(args ...string) (string, error) {
	cmd := e.kubeyard(args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// StartKubeyard starts the kubeyard CLI as Kubeyard does, in the
// background, its output to out (standard error when nil). It is killed
// when the test ends, if it still runs.
func (e *Engine) StartKubeyard(out io.Writer, args ...string) *Process {
	e.t.Helper()
	return e.background(e.kubeyard(args...), out)
}

// Start starts a command (kubectl port-forward) in the background with
// the engine's environment, as StartKubeyard does.
func (e *Engine) Start(out io.Writer, name string, args ...string) *Process {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = e.Env(), e.Dir
	return e.background(cmd, out)
}

func (e *Engine) background(cmd *exec.Cmd, out io.Writer) *Process {
	e.t.Helper()
	if out == nil {
		out = os.Stderr
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Process is a command running in the background.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits until the process has exited and returns how.
func (p *Process) Wait() error { <-p.done; return p.err }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

func (e *Engine) kubeyard(args ...string) *exec.Cmd {
	cmd := exec.Command(Binary(e.t), args...)
	cmd.Env, cmd.Dir = e.Env(), e.Dir
	return cmd
}
