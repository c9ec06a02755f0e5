package harness

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Load is what clients saw while a fault happened.
type Load struct {
	OK, Failed int64
}

// Clients is how many clients UnderLoad runs.
const Clients = 4

// UnderLoad runs fault while Clients clients send requests through the
// cluster endpoint the whole time (from 2 s before the fault to 3 s after
// it), and counts the requests that succeeded and failed.
func UnderLoad(request func(context.Context) error, fault func()) Load {
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range Clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := request(ctx)
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(2 * time.Second)
	fault()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	return Load{OK: ok.Load(), Failed: failed.Load()}
}

// AwaitRestart waits until the supervisor has restarted the control-plane
// process (a new PID for the name prefix) and the cluster kubectl points at
// answers again.
func (e *Engine) AwaitRestart(prefix string, old int) {
	e.t.Helper()
	e.Eventually(90*time.Second, func() error {
		if pid := e.ComponentPID(prefix); pid == 0 || pid == old {
			return fmt.Errorf("%s not restarted", prefix)
		}
		_, err := e.Run("kubectl", "get", "--raw", "/readyz")
		return err
	})
}

// ClusterDir returns the folder of the engine's only cluster.
func (e *Engine) ClusterDir() string {
	e.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.DataDir, "clusters", "*"))
	if len(dirs) != 1 {
		e.t.Fatalf("want one cluster folder, got %v", dirs)
	}
	return dirs[0]
}

// AdminClient is a client with the kubernetes-admin credentials of the
// cluster's first replica, through the cluster endpoint, and no client-side
// rate limit (which would hide a fault).
func (e *Engine) AdminClient(clusterDir string) kubernetes.Interface {
	e.t.Helper()
	return e.Client(filepath.Join(clusterDir, "cp-0", "admin.conf"))
}

// Client is a client with the credentials of a kubeconfig file, and no
// client-side rate limit.
func (e *Engine) Client(kubeconfig string) kubernetes.Interface {
	e.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return kubernetes.NewForConfigOrDie(cfg)
}

// Writes returns a request that creates a ConfigMap, and the number of them
// that started after down was closed and succeeded.
func Writes(client kubernetes.Interface, down <-chan struct{}) (func(context.Context) error, *atomic.Int64) {
	var okAfter atomic.Int64
	return func(ctx context.Context) error {
		after := false
		select {
		case <-down:
			after = true
		default:
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "load-"}}
		_, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
		if after && err == nil {
			okAfter.Add(1)
		}
		return err
	}, &okAfter
}

// Reads returns a request that lists the nodes.
func Reads(client kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err
	}
}

// StageWatch tells whether an operation stage had started by a given time.
// It polls the location's operations; a poll that does not see the stage
// proves it had not started when the poll was sent.
type StageWatch struct {
	mu        sync.Mutex
	notBefore time.Time // when the last poll without the stage was sent
	stop      chan struct{}
	done      sync.WaitGroup
}

// WatchStage watches for a stage whose name starts with prefix in any
// running operation of the location.
func (e *Engine) WatchStage(location, prefix string) *StageWatch {
	w := &StageWatch{stop: make(chan struct{})}
	path := fmt.Sprintf("/v1/projects/%s/locations/%s/operations", e.Project, location)
	token := e.Token()
	w.done.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			sent := time.Now()
			if seen, ok := e.stageSeen(path, token, prefix); ok {
				if seen {
					return
				}
				w.mu.Lock()
				w.notBefore = sent
				w.mu.Unlock()
			}
		}
	})
	return w
}

// HasStage says whether a running operation of the location has reached a
// stage whose name starts with prefix.
func (e *Engine) HasStage(location, prefix string) bool {
	seen, _ := e.stageSeen(fmt.Sprintf("/v1/projects/%s/locations/%s/operations", e.Project, location), e.Token(), prefix)
	return seen
}

// stageSeen reports whether a running operation has the stage, and whether
// the engine answered (it may be restarting).
func (e *Engine) stageSeen(path, token, prefix string) (seen, ok bool) {
	req, err := http.NewRequest(http.MethodGet, "http://"+e.Addr+path, nil)
	if err != nil {
		return false, false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	var list struct {
		Operations []struct {
			Status   string `json:"status"`
			Progress struct {
				Stages []struct{ Name string } `json:"stages"`
			} `json:"progress"`
		} `json:"operations"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return false, false
	}
	for _, op := range list.Operations {
		for _, s := range op.Progress.Stages {
			if op.Status == "RUNNING" && strings.HasPrefix(s.Name, prefix) {
				return true, true
			}
		}
	}
	return false, true
}

// Before says whether t is surely before the stage started.
func (w *StageWatch) Before(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return t.Before(w.notBefore)
}

// Stop ends the watch.
func (w *StageWatch) Stop() {
	close(w.stop)
	w.done.Wait()
}

// Failures records when requests failed, and why.
type Failures struct {
	mu     sync.Mutex
	times  []time.Time
	errors []error
}

// Track wraps request so that the end time and error of each failure is
// recorded.
func (f *Failures) Track(request func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		err := request(ctx)
		if err != nil {
			f.mu.Lock()
			f.times = append(f.times, time.Now())
			f.errors = append(f.errors, err)
			f.mu.Unlock()
		}
		return err
	}
}

// Count returns how many failures match, and the first few of them
// with their times, to say why.
func (f *Failures) Count(match func(time.Time) bool) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	var first []string
	for i, t := range f.times {
		if match(t) {
			if n++; n <= 3 {
				first = append(first, fmt.Sprintf("%s: %v", t.Format("15:04:05.000"), f.errors[i]))
			}
		}
	}
	return n, strings.Join(first, "\n")
}

// Reach makes an HTTPS request to https://endpoint/version over a
// connection from source, as a client at that address would: nil when
// kube-apiserver answers (any HTTP status), the error otherwise (a
// frontend that does not admit source resets the connection).
func Reach(source, endpoint string) error {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 3 * time.Second}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + endpoint + "/version")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}
