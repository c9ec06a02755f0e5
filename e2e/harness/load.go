package harness

import (
	"context"
	"fmt"
	"path/filepath"
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
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(clusterDir, "cp-0", "admin.conf"))
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
