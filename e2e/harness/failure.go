package harness

import (
	"os"
	"path/filepath"
	"strings"
)

// ArtifactsDir is the folder test artifacts go under: $KUBEYARD_ARTIFACTS,
// or artifacts/ in the repository.
func ArtifactsDir() string {
	if root := os.Getenv("KUBEYARD_ARTIFACTS"); root != "" {
		return root
	}
	return filepath.Join(RepoRoot(), "artifacts")
}

// clusterState is what the test's kubeconfig shows of the cluster it
// last fetched, read while the engine still runs: where a pod waited, and
// why.
func (e *Engine) clusterState() map[string]string {
	if _, err := os.Stat(filepath.Join(e.Dir, "kubeconfig")); err != nil {
		return nil
	}
	out := map[string]string{}
	for file, args := range map[string][]string{
		"kubectl-get.txt":    {"get", "nodes,pods,services,endpointslices", "--all-namespaces", "--output", "wide", "--request-timeout", "10s"},
		"kubectl-events.txt": {"get", "events", "--all-namespaces", "--sort-by", ".lastTimestamp", "--request-timeout", "10s"},
	} {
		stdout, stderr, _ := e.run("kubectl", args...)
		out[file] = stdout + stderr
	}
	return out
}

// keepLogs keeps a failed test's evidence in artifacts/e2e/TEST: the
// engine's log, every component's, container's and machine's log, and the
// cluster's state. The test's output gets the engine log's last lines and
// the folder's path only: dumped in full there, they pushed the test's own
// error out of what CI shows of it.
func (e *Engine) keepLogs() {
	dir := filepath.Join(ArtifactsDir(), "e2e", strings.ReplaceAll(e.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Logf("keeping the logs: %v", err)
		return
	}
	engineLog := e.Log()
	files := map[string]string{"engine.log": engineLog}
	if e.cmd != nil && e.cmd.ProcessState == nil {
		for name, data := range e.clusterState() {
			files[name] = data
		}
	}
	logs, _ := filepath.Glob(filepath.Join(e.DataDir, "clusters", "*", "logs", "*.log"))
	podLogs, _ := filepath.Glob(filepath.Join(e.DataDir, "clusters", "*", "nodes", "*", "pods", "logs", "*", "*", "*.log"))
	proxyLogs, _ := filepath.Glob(filepath.Join(e.DataDir, "clusters", "*", "nodes", "*", "kube-proxy", "*.log"))
	engineLogs, _ := filepath.Glob(filepath.Join(e.DataDir, "logs", "*.log"))
	logs = append(append(append(logs, podLogs...), proxyLogs...), engineLogs...)
	for _, m := range e.machines {
		machineLogs, _ := filepath.Glob(filepath.Join(m, "logs", "*.log"))
		logs = append(logs, machineLogs...)
	}
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		rel, _ := filepath.Rel(e.Dir, l)
		files[strings.ReplaceAll(rel, "/", "_")] = string(data)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			e.t.Logf("keeping the logs: %v", err)
		}
	}
	e.t.Logf("engine log's last lines (all of it, every component's log and the cluster's state in %s):\n%s", dir, tail(engineLog, 15))
}
