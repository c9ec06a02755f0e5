package kubeletapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/kubeyard/kubeyard/internal/podruntime"
	"github.com/kubeyard/kubeyard/internal/runc"
)

type userInfo = user.Info

func typeMeta(kind string) metav1.TypeMeta { return metav1.TypeMeta{Kind: kind, APIVersion: "v1"} }

// The kubelet's streaming timeouts.
const (
	idleTimeout           = 4 * time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// pod finds the request's pod (and checks its uid, when the path has one).
func (s *Server) pod(w http.ResponseWriter, r *http.Request) (*corev1.Pod, bool) {
	pod, err := s.cfg.Pods.Pod(r.PathValue("namespace"), r.PathValue("pod"))
	if err != nil || (r.PathValue("uid") != "" && string(pod.UID) != r.PathValue("uid")) {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on node %s", r.PathValue("namespace"), r.PathValue("pod"), s.cfg.NodeName), http.StatusNotFound)
		return nil, false
	}
	return pod, true
}

// running is the container's running attempt.
func (s *Server) running(pod *corev1.Pod, name string) (podruntime.Container, error) {
	cs, err := s.cfg.Runtime.Containers(string(pod.UID))
	if err != nil {
		return podruntime.Container{}, err
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Name == name {
			if cs[i].State != podruntime.Running {
				return cs[i], fmt.Errorf("container %s of pod %s is not running", name, pod.Name)
			}
			return cs[i], nil
		}
	}
	return podruntime.Container{}, fmt.Errorf("container %s is not valid for pod %s", name, pod.Name)
}

// streams adapts the node to the streaming server's interfaces.
type streams struct {
	s   *Server
	pod *corev1.Pod
}

func (st streams) ExecInContainer(ctx context.Context, _ string, _ string, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	c, err := st.s.running(st.pod, container)
	if err != nil {
		return err
	}
	p := runc.Process{Args: cmd, Terminal: tty, Stdin: in}
	if out != nil {
		p.Stdout = out
	}
	if errOut != nil {
		p.Stderr = errOut
	}
	p.Resize = sizes(ctx, resize)
	return st.s.cfg.Runtime.Exec(ctx, c, p)
}

func (st streams) PortForward(ctx context.Context, _ string, uid string, port int32, stream io.ReadWriteCloser) error {
	return st.s.cfg.Runtime.PortForward(ctx, uid, port, stream)
}

// AttachContainer attaches to the container through its shim: its
// output from now on, and its input if it keeps it open (stdin: true).
func (st streams) AttachContainer(ctx context.Context, _ string, _ string, container string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := st.s.running(st.pod, container)
	if err != nil {
		return err
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errOut != nil {
		stderr = errOut
	}
	return st.s.cfg.Runtime.Attach(ctx, c, in, stdout, stderr, sizes(ctx, resize))
}

// sizes passes on a client's terminal sizes (nil: it has no terminal).
func sizes(ctx context.Context, resize <-chan remotecommand.TerminalSize) <-chan runc.Size {
	if resize == nil {
		return nil
	}
	out := make(chan runc.Size)
	go func() {
		defer close(out)
		for size := range resize {
			select {
			case out <- runc.Size{Width: size.Width, Height: size.Height}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// stillRunning says, when asked, whether the attempt c still runs.
func (s *Server) stillRunning(pod *corev1.Pod, c podruntime.Container) func() bool {
	return func() bool {
		got, err := s.running(pod, c.Name)
		return err == nil && got.Attempt == c.Attempt
	}
}

// streamRequest is an exec or attach request's pod and streams.
func (s *Server) streamRequest(w http.ResponseWriter, r *http.Request) (*corev1.Pod, *remotecommand.Options, bool) {
	pod, ok := s.pod(w, r)
	if !ok {
		return nil, nil, false
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	return pod, opts, true
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	if pod, opts, ok := s.streamRequest(w, r); ok {
		remotecommand.ServeExec(w, r, streams{s, pod}, pod.Name, string(pod.UID), r.PathValue("container"), r.URL.Query()["command"], opts,
			idleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	}
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	if pod, opts, ok := s.streamRequest(w, r); ok {
		remotecommand.ServeAttach(w, r, streams{s, pod}, pod.Name, string(pod.UID), r.PathValue("container"), opts,
			idleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	}
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	pod, ok := s.pod(w, r)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, streams{s, pod}, pod.Name, string(pod.UID), opts,
		idleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// run runs a command and answers with its output (the kubelet's /run).
func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	pod, ok := s.pod(w, r)
	if !ok {
		return
	}
	c, err := s.running(pod, r.PathValue("container"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var out bytes.Buffer
	err = s.cfg.Runtime.Exec(r.Context(), c, runc.Process{Args: r.URL.Query()["cmd"], Stdout: &out, Stderr: &out})
	if err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", out.String(), err), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(out.Bytes())
}
