package kubelet_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubeyard/kubeyard/internal/kubelet"
	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/podruntime/podruntimetest"
	"github.com/kubeyard/kubeyard/internal/runc"
)

func TestMain(m *testing.M) { podruntimetest.Main(m) }

// The kubelet's API is the client's: the pods, ConfigMaps and status
// updates of a fake clientset; its containers are real.
type node struct {
	k       *kubelet.Kubelet
	client  *fake.Clientset
	runtime *podruntime.Runtime
	dir     string
}

func newNode(t *testing.T, allowPrivileged bool) *node {
	rt, _ := podruntimetest.New(t)
	client := fake.NewClientset()
	// Pods are kept as the API server keeps them: through JSON (times to
	// the second).
	client.PrependReactor("*", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if a, ok := action.(k8stesting.CreateAction); ok {
			if pod, ok := a.GetObject().(*corev1.Pod); ok {
				data, err := json.Marshal(pod)
				if err != nil {
					return true, nil, err
				}
				var stored corev1.Pod
				if err := json.Unmarshal(data, &stored); err != nil {
					return true, nil, err
				}
				*pod = stored
			}
		}
		return false, nil, nil // the tracker goes on with it
	})
	dir := t.TempDir()
	k := kubelet.New(kubelet.Config{
		NodeName: "node-1", NodeIP: netip.MustParseAddr("10.128.0.2"), Client: client, Runtime: rt,
		PodCIDR:    func(context.Context) (netip.Prefix, error) { return netip.MustParsePrefix("10.4.0.0/24"), nil },
		ClusterDNS: []string{"10.8.0.10"}, NodeDir: dir, AllowPrivileged: allowPrivileged, VolumeRefresh: 100 * time.Millisecond,
	})
	t.Cleanup(k.Close)
	return &node{k: k, client: client, runtime: rt, dir: dir}
}

var uids int

func (n *node) create(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	uids++
	pod.UID = types.UID("uid-" + string(rune('a'+uids)))
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	pod.Spec.NodeName = "node-1"
	got, err := n.client.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// syncUntil syncs the pod as the node agent would until ok says its
// status is what the test waits for.
func (n *node) syncUntil(t *testing.T, pod *corev1.Pod, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := n.client.CoreV1().Pods(pod.Namespace).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s never %s; status: %+v", pod.Name, what, got.Status)
		}
		if _, err := n.k.SyncPod(t.Context(), got); err != nil {
			t.Logf("sync: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) log(t *testing.T, pod *corev1.Pod, container string, attempt int) string {
	t.Helper()
	sb, err := n.runtime.Sandbox(string(pod.UID))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(n.runtime.LogPath(sb, container, attempt))
	return string(data)
}

func phase(p corev1.PodPhase) func(*corev1.Pod) bool {
	return func(pod *corev1.Pod) bool { return pod.Status.Phase == p }
}

// Init containers run first, in order, sharing volumes with the
// containers; env comes from values, the downward API and ConfigMaps,
// with $(VAR) expanded; a pod whose containers all exit 0 under
// restartPolicy Never Succeeds.
func TestPodRunsToCompletion(t *testing.T) {
	n := newNode(t, false)
	if _, err := n.client.CoreV1().ConfigMaps("default").Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"color": "blue", "size": "9"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job-1", Labels: map[string]string{"app": "job"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			InitContainers: []corev1.Container{
				{Name: "first", Image: "busybox", Command: []string{"sh", "-c", "echo first > /work/order"}, VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}},
				{Name: "second", Image: "busybox", Command: []string{"sh", "-c", "echo second >> /work/order"}, VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}},
			},
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox",
				// $(POD_IP) is the kubelet's to expand, $GREETING the shell's.
				Command: []string{"sh", "-c", "cat /work/order; echo \"$GREETING\" $WHO $(POD_IP) $COLOR; cat /config/size; echo; cat /info/labels; echo"},
				Env: []corev1.EnvVar{
					{Name: "GREETING", Value: "hello $(POD_NAME)"}, // POD_NAME comes after: left as it is
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "WHO", Value: "$(POD_NAME)-x"},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "color"}}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}, {Name: "config", MountPath: "/config"}, {Name: "info", MountPath: "/info"}},
			}},
			Volumes: []corev1.Volume{
				{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			},
		},
	})
	got := n.syncUntil(t, pod, "Succeeded", phase(corev1.PodSucceeded))
	if log := n.log(t, got, "main", 0); !strings.Contains(log, "F first") || !strings.Contains(log, "F second") ||
		!strings.Contains(log, "F hello $(POD_NAME) job-1-x 10.4.0.2 blue") || !strings.Contains(log, "F 9") || !strings.Contains(log, `F app="job"`) {
		t.Errorf("the container's log:\n%s", log)
	}
	for _, s := range append(got.Status.InitContainerStatuses, got.Status.ContainerStatuses...) {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 || s.State.Terminated.Reason != "Completed" ||
			!strings.HasPrefix(s.ContainerID, "kubeyard://") || !strings.HasPrefix(s.ImageID, "docker.io/library/busybox@sha256:") {
			t.Errorf("container %s: %+v", s.Name, s)
		}
	}
	if got.Status.PodIP != "10.4.0.2" || got.Status.HostIP != "10.128.0.2" || got.Status.StartTime == nil {
		t.Errorf("addresses: %+v", got.Status)
	}
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted") {
			t.Errorf("a completed pod's Ready: %+v", c)
		}
	}
}

// A container that keeps failing is restarted at once the first time,
// then after the back-off (CrashLoopBackOff, 10 s), its last end kept;
// under Never, a failure fails the pod.
func TestRestartsAndBackOff(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox", Command: []string{"sh", "-c", "echo crashing; exit 3"}}}},
	})
	got := n.syncUntil(t, pod, "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	s := got.Status.ContainerStatuses[0]
	if s.RestartCount != 1 || !strings.Contains(s.State.Waiting.Message, "back-off 10s restarting failed container=app pod=crash_default") ||
		s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 3 || s.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("in back-off: %+v", s)
	}
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("a pod in CrashLoopBackOff under Always is Running, not %s", got.Status.Phase)
	}
	// Synced again within the back-off: not restarted.
	if _, err := n.k.SyncPod(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	if cs, _ := n.runtime.Containers(string(pod.UID)); len(cs) != 2 {
		t.Errorf("restarted within its back-off: %d attempts", len(cs))
	}

	never := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "app", Image: "busybox", Command: []string{"sh", "-c", "exit 2"}}}},
	})
	got = n.syncUntil(t, never, "Failed", phase(corev1.PodFailed))
	if s := got.Status.ContainerStatuses[0]; s.RestartCount != 0 || s.State.Terminated == nil || s.State.Terminated.ExitCode != 2 {
		t.Errorf("under Never: %+v", s)
	}
}

// An image the store lacks: ErrImagePull, then ImagePullBackOff, both
// naming the image and how to load it.
func TestMissingImage(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
	})
	waiting := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == reason
		}
	}
	for _, reason := range []string{"ErrImagePull", "ImagePullBackOff"} {
		got := n.syncUntil(t, pod, reason, waiting(reason))
		if msg := got.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, `"nginx:1.27"`) || !strings.Contains(msg, "kubeyard images load") {
			t.Errorf("%s: %q", reason, msg)
		}
		if got.Status.Phase != corev1.PodPending {
			t.Errorf("%s: phase %s", reason, got.Status.Phase)
		}
	}
}

// Pods that would reach into the machine fail, the field named, unless
// the engine allows them.
func TestPrivilegedPodsRefused(t *testing.T) {
	n := newNode(t, false)
	cases := map[string]corev1.PodSpec{
		"spec.containers[0].securityContext.privileged": {Containers: []corev1.Container{{Name: "a", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
		"spec.hostPID": {HostPID: true, Containers: []corev1.Container{{Name: "a", Image: "busybox"}}},
		"spec.volumes[0].hostPath": {Containers: []corev1.Container{{Name: "a", Image: "busybox"}},
			Volumes: []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}},
	}
	i := 0
	for field, spec := range cases {
		i++
		pod := n.create(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('0'+i))}, Spec: spec})
		got := n.syncUntil(t, pod, "Failed", phase(corev1.PodFailed))
		if got.Status.Reason != "Forbidden" || !strings.Contains(got.Status.Message, field) || !strings.Contains(got.Status.Message, "--allow-privileged-pods") {
			t.Errorf("%s: %s %q", field, got.Status.Reason, got.Status.Message)
		}
		if sb, err := n.runtime.Sandbox(string(pod.UID)); err == nil {
			t.Errorf("%s: a sandbox was made: %+v", field, sb)
		}
	}
	pvc := n.create(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pvc"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "a", Image: "busybox"}},
		Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
	}})
	got := n.syncUntil(t, pvc, "Failed", phase(corev1.PodFailed))
	if !strings.Contains(got.Status.Message, `volume "data": persistentVolumeClaim volumes are not supported`) {
		t.Errorf("an unsupported volume: %q", got.Status.Message)
	}
}

// Readiness follows its probe; a failing liveness probe restarts the
// container.
func TestProbes(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		// httpd, its PID namespace's init, ignores SIGTERM: killed after 1 s.
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(1)), Containers: []corev1.Container{{
			Name: "web", Image: "busybox",
			Command:        []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && touch /alive && exec httpd -f -p 8080 -h /www"},
			ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromInt32(8080)}}},
			LivenessProbe: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
				ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/alive"}}}},
		}}},
	})
	ready := func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	}
	got := n.syncUntil(t, pod, "Ready", ready)
	cs, _ := n.runtime.Containers(string(pod.UID))
	if err := n.runtime.Exec(t.Context(), cs[0], runc.Process{Args: []string{"rm", "/alive"}}); err != nil {
		t.Fatal(err)
	}
	got = n.syncUntil(t, got, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	n.syncUntil(t, got, "Ready again", ready)
}

// Deleting a pod runs its preStop hook, then SIGTERM; the sandbox goes.
func TestGracefulTermination(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "graceful"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers: []corev1.Container{{
				Name: "app", Image: "busybox",
				Command:   []string{"sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done"},
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop > /proc/1/fd/1"}}}},
			}},
		},
	})
	got := n.syncUntil(t, pod, "Running", phase(corev1.PodRunning))
	sb, _ := n.runtime.Sandbox(string(pod.UID))
	logPath := n.runtime.LogPath(sb, "app", 0)
	now := metav1.Now()
	got.DeletionTimestamp, got.DeletionGracePeriodSeconds = &now, ptr.To(int64(5))
	start := time.Now()
	// The log goes with the sandbox: read it as the container ends.
	done := make(chan string)
	go func() {
		var last []byte
		for time.Since(start) < 10*time.Second {
			if data, err := os.ReadFile(logPath); err == nil {
				last = data
			} else {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		done <- string(last)
	}()
	if err := n.k.TerminatePod(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("a container that handles SIGTERM took %s to stop", took)
	}
	log := <-done
	if i, j := strings.Index(log, "prestop"), strings.Index(log, "got TERM"); i < 0 || j < i {
		t.Errorf("preStop, then SIGTERM; the log:\n%s", log)
	}
	if _, err := n.runtime.Sandbox(string(pod.UID)); err == nil {
		t.Error("the sandbox is left")
	}
}

// Resources are cgroup limits (a container over its memory limit is
// OOMKilled, exit 137); the security context sets the user and a
// read-only root.
func TestLimitsAndSecurityContext(t *testing.T) {
	n := newNode(t, false)
	hog := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hog"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "hog", Image: "busybox", Command: []string{"sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}},
		}}},
	})
	got := n.syncUntil(t, hog, "Failed", phase(corev1.PodFailed))
	if term := got.Status.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("over its memory limit: %+v", got.Status.ContainerStatuses[0].State)
	}
	user := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "user"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "app", Image: "busybox", Command: []string{"sh", "-c", "id -u; id -g; touch /file || echo read-only"},
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(3000)), ReadOnlyRootFilesystem: ptr.To(true)},
		}}},
	})
	got = n.syncUntil(t, user, "Succeeded", phase(corev1.PodSucceeded))
	if log := n.log(t, got, "app", 0); !strings.Contains(log, "F 1000\n") || !strings.Contains(log, "F 3000\n") || !strings.Contains(log, "F read-only") {
		t.Errorf("runAsUser 1000, runAsGroup 3000, a read-only root; the log:\n%s", log)
	}
}

// A ConfigMap's change reaches the running pod's volume, swapped whole.
func TestConfigMapVolumeUpdates(t *testing.T) {
	n := newNode(t, false)
	cms := n.client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "conf"}, Data: map[string]string{"greeting": "hello"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "busybox", Command: []string{"sh", "-c", "while true; do cat /conf/greeting; echo; sleep 0.1; done"},
			VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}},
		}}, Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}}}},
	})
	got := n.syncUntil(t, pod, "Running", phase(corev1.PodRunning))
	cm.Data["greeting"] = "bonjour"
	if _, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.syncUntil(t, got, "reading the new value", func(p *corev1.Pod) bool {
		return strings.Contains(n.log(t, p, "app", 0), "F bonjour")
	})
}

// A startup probe holds liveness and readiness back until it passes; a
// tcpSocket readiness probe then makes the pod Ready. Capabilities and a
// CPU limit reach the container: it sees them in its own /proc and cgroup.
func TestStartupProbeCapabilitiesAndCPU(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "busybox",
			// Listens only after a second: the startup probe waits for it.
			Command: []string{"sh", "-c", "grep CapEff /proc/self/status; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; sleep 1; exec nc -ll -p 9000 -e echo hi"},
			StartupProbe: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 10,
				ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}},
			ReadinessProbe:  &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}},
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}},
			Resources:       corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
		}}},
	})
	got := n.syncUntil(t, pod, "Running, not yet started", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	if s := got.Status.ContainerStatuses[0]; *s.Started || s.Ready {
		t.Errorf("before its startup probe passed: started %v, ready %v", *s.Started, s.Ready)
	}
	got = n.syncUntil(t, got, "started and Ready", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses[0]
		return *s.Started && s.Ready
	})
	// CAP_NET_BIND_SERVICE alone is bit 10: 0x400.
	if log := n.log(t, got, "app", 0); !strings.Contains(log, "CapEff:\t0000000000000400") || !strings.Contains(log, "F 25000\n") {
		t.Errorf("capabilities (drop ALL, add NET_BIND_SERVICE) and a 250m CPU limit (25000 of 100000 µs); the log:\n%s", log)
	}
}

// A container whose startup probe has just passed is probed for readiness
// at once, not at the readiness probe's next period (here 60 s).
func TestReadinessRunsOnceStarted(t *testing.T) {
	n := newNode(t, false)
	probe := corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "busybox",
			Command:        []string{"sh", "-c", "sleep 1; exec nc -ll -p 9000 -e echo hi"},
			StartupProbe:   &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 10, ProbeHandler: probe},
			ReadinessProbe: &corev1.Probe{PeriodSeconds: 60, ProbeHandler: probe},
		}}},
	})
	start := time.Now()
	n.syncUntil(t, pod, "started and Ready", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && *p.Status.ContainerStatuses[0].Started && p.Status.ContainerStatuses[0].Ready
	})
	t.Logf("Ready %v after the first sync", time.Since(start).Round(time.Millisecond))
}

// Pods synced side by side, as the node agent's workers sync them, each
// get an address of their own.
func TestPodsStartedTogetherGetTheirOwnAddresses(t *testing.T) {
	n := newNode(t, false)
	const count = 6
	pods := make([]*corev1.Pod, count)
	for i := range pods {
		pods[i] = n.create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + string(rune('a'+i))},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "60"}}}},
		})
	}
	var wg sync.WaitGroup
	for _, pod := range pods {
		wg.Go(func() {
			if _, err := n.k.SyncPod(t.Context(), pod); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[string]string{}
	for _, pod := range pods {
		got := n.syncUntil(t, pod, "Running", phase(corev1.PodRunning))
		if other, dup := seen[got.Status.PodIP]; dup {
			t.Errorf("%s and %s both have %s", other, pod.Name, got.Status.PodIP)
		}
		seen[got.Status.PodIP] = pod.Name
	}
}

// A pod whose containers run on unchanged is not posted again: the
// status the kubelet computes is the one the API server keeps.
func TestUnchangedStatusIsNotPostedAgain(t *testing.T) {
	n := newNode(t, false)
	pod := n.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "steady"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "60"}}}},
	})
	got := n.syncUntil(t, pod, "Running", phase(corev1.PodRunning))
	posts := func() int {
		count := 0
		for _, a := range n.client.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" {
				count++
			}
		}
		return count
	}
	before := posts()
	for range 3 {
		time.Sleep(1100 * time.Millisecond) // a second apart, as the agent resyncs
		got, _ = n.client.CoreV1().Pods(pod.Namespace).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if _, err := n.k.SyncPod(t.Context(), got); err != nil {
			t.Fatal(err)
		}
	}
	if after := posts(); after != before {
		t.Errorf("%d status updates of a pod that did not change", after-before)
	}
}
