package podruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/cgroups"
	"github.com/kubeyard/kubeyard/internal/jsonfile"
	"github.com/kubeyard/kubeyard/internal/runc"
	"github.com/kubeyard/kubeyard/internal/shim"
)

// ContainerConfig is one attempt at running one of a pod's containers.
type ContainerConfig struct {
	Name    string
	Attempt int
	Image   string
	// Command and Args are the pod's: Command replaces the image's
	// entrypoint (and drops its cmd), Args its cmd.
	Command, Args []string
	// Env is added to the image's (a name set in both is Env's).
	Env        []string
	WorkingDir string
	// RunAsUser and RunAsGroup replace the image's user.
	RunAsUser, RunAsGroup *int64
	ReadOnlyRoot          bool
	AddCaps, DropCaps     []string
	Mounts                []runc.Mount
	MemoryLimit           int64
	CPUMillis             int64
	CPUShares             uint64
	// Stdin keeps the container's standard input open for attaching
	// clients (StdinOnce: until the first goes); TTY gives it a terminal.
	Stdin, StdinOnce, TTY bool
}

// State is where a container is in its life.
type State string

const (
	Created State = "Created" // its shim is starting it
	Running State = "Running"
	Exited  State = "Exited"
	// Unknown is a container whose shim ended without recording how
	// the container did.
	Unknown State = "Unknown"
)

// Container is a container attempt as the runtime knows it.
type Container struct {
	ID      string `json:"id"`
	PodUID  string `json:"podUID"`
	Name    string `json:"name"`
	Attempt int    `json:"attempt"`
	// Image is the image's full name, ImageRef the name with its
	// digest (a container status's image and imageID).
	Image     string    `json:"image"`
	ImageRef  string    `json:"imageRef"`
	LogPath   string    `json:"logPath"`
	CreatedAt time.Time `json:"createdAt"`
	// AttachSocket is where its shim takes attaching clients; Stdin and
	// TTY say whether they may write, and to a terminal.
	AttachSocket string `json:"attachSocket"`
	Stdin        bool   `json:"stdin,omitempty"`
	TTY          bool   `json:"tty,omitempty"`

	State      State     `json:"-"`
	PID        int       `json:"-"`
	StartedAt  time.Time `json:"-"`
	FinishedAt time.Time `json:"-"`
	ExitCode   int       `json:"-"`
	Reason     string    `json:"-"`
	Message    string    `json:"-"`
}

// The files of a container's folder.
const (
	metaFile    = "container.json"
	shimConfig  = "shim.json"
	shimPIDFile = "shim.pid"
	startedFile = "started.json"
	exitFile    = "exit.json"
)

func (r *Runtime) dirOf(c Container) string { return r.containerDir(c.PodUID, c.Name, c.Attempt) }

// StartContainer creates a container attempt in the pod's sandbox and
// starts it, returning once it runs (or has ended already: a container
// that could not start has Reason StartError). An image the store does
// not have is ErrImageNotFound.
func (r *Runtime) StartContainer(ctx context.Context, sb *Sandbox, cfg ContainerConfig) (Container, error) {
	img, named, err := r.cfg.Images.Resolve(cfg.Image)
	if err != nil {
		return Container{}, err
	}
	imgCfg, err := img.ConfigFile()
	if err != nil {
		return Container{}, fmt.Errorf("podruntime: image %s: %w", named.Name, err)
	}
	lower, err := r.cfg.Snapshots.Get(img, named.Digest)
	if err != nil {
		return Container{}, err
	}
	dir := r.containerDir(sb.UID, cfg.Name, cfg.Attempt)
	if _, err := os.Stat(filepath.Join(dir, metaFile)); err == nil {
		return Container{}, fmt.Errorf("podruntime: container %s attempt %d of pod %s exists", cfg.Name, cfg.Attempt, sb.UID)
	}
	c := Container{
		ID: containerID(sb.UID, cfg.Name, cfg.Attempt), PodUID: sb.UID, Name: cfg.Name, Attempt: cfg.Attempt,
		Image: named.Name, ImageRef: imageRef(named.Name, named.Digest), LogPath: r.LogPath(sb, cfg.Name, cfg.Attempt),
		CreatedAt: time.Now().UTC(), Stdin: cfg.Stdin, TTY: cfg.TTY,
	}
	c.AttachSocket = filepath.Join(socketDir, c.ID[:32]+".sock")
	spec, err := r.spec(sb, c, cfg, imgCfg.Config)
	if err != nil {
		return Container{}, err
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Dir(c.LogPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Container{}, fmt.Errorf("podruntime: %w", err)
		}
	}
	// Recorded before anything needs undoing: a container on disk is
	// one RemoveSandbox finds.
	if err := jsonfile.Write(filepath.Join(dir, metaFile), c); err != nil {
		return Container{}, err
	}
	// The image stays as unpacked; what the container writes goes to
	// its own upper layer.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return Container{}, fmt.Errorf("podruntime: root file system of %s: %w", cfg.Name, err)
	}
	spec.Rootfs = rootfs
	if err := runc.WriteBundle(dir, spec); err != nil {
		return Container{}, err
	}
	if err := r.startShim(dir, c, spec, cfg.StdinOnce); err != nil {
		return Container{}, err
	}
	return r.waitStarted(ctx, c)
}

// imageRef is an image's name with its digest in place of its tag.
func imageRef(name, digest string) string {
	repo := name
	if i := strings.LastIndex(name, "@"); i >= 0 {
		repo = name[:i]
	} else if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo = name[:i]
	}
	return repo + "@" + digest
}

// spec is the runc container of an attempt: the image's config merged
// with the pod's, as container runtimes merge them.
func (r *Runtime) spec(sb *Sandbox, c Container, cfg ContainerConfig, img v1.Config) (runc.Container, error) {
	args := slices.Concat(img.Entrypoint, img.Cmd)
	switch {
	case len(cfg.Command) > 0:
		args = slices.Concat(cfg.Command, cfg.Args)
	case len(cfg.Args) > 0:
		args = slices.Concat(img.Entrypoint, cfg.Args)
	}
	if len(args) == 0 {
		return runc.Container{}, fmt.Errorf("podruntime: container %s: no command, and image %s has none", cfg.Name, c.Image)
	}
	uid, gid, err := imageUser(img.User)
	if err != nil {
		return runc.Container{}, fmt.Errorf("podruntime: container %s: %w", cfg.Name, err)
	}
	if cfg.RunAsUser != nil {
		uid = uint32(*cfg.RunAsUser)
	}
	if cfg.RunAsGroup != nil {
		gid = uint32(*cfg.RunAsGroup)
	}
	cwd := img.WorkingDir
	if cfg.WorkingDir != "" {
		cwd = cfg.WorkingDir
	}
	mounts := []runc.Mount{
		{Source: r.etcFile(sb.UID, "hostname"), Destination: "/etc/hostname"},
		{Source: r.etcFile(sb.UID, "hosts"), Destination: "/etc/hosts"},
		{Source: r.etcFile(sb.UID, "resolv.conf"), Destination: "/etc/resolv.conf"},
	}
	return runc.Container{
		ID: c.ID, ReadOnlyRoot: cfg.ReadOnlyRoot, Args: args, Env: mergeEnv(img.Env, sb.Hostname, cfg.Env), Cwd: cwd,
		Hostname: sb.Hostname, UID: uid, GID: gid, AddCaps: cfg.AddCaps, DropCaps: cfg.DropCaps,
		NetNS: "/run/netns/" + sb.NetNS, Mounts: append(mounts, cfg.Mounts...),
		MemoryLimit: cfg.MemoryLimit, CPUMillis: cfg.CPUMillis, CPUShares: cfg.CPUShares,
		CgroupsPath: r.cgroupPath(sb.UID) + "/" + c.ID, Terminal: cfg.TTY,
	}, nil
}

// defaultPath is the PATH of an image that sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mergeEnv is the image's environment, HOSTNAME, then the pod's; a later
// name replaces an earlier one in place.
func mergeEnv(image []string, hostname string, pod []string) []string {
	var out []string
	index := map[string]int{}
	for _, kv := range slices.Concat([]string{defaultPath}, image, []string{"HOSTNAME=" + hostname}, pod) {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := index[name]; ok {
			out[i] = kv
			continue
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	return out
}

// imageUser reads an image's numeric user[:group]; a name needs the
// image's /etc/passwd, which is not read: refused rather than guessed.
func imageUser(user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, _ := strings.Cut(user, ":")
	n, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("the image's user %q is not numeric; set securityContext.runAsUser", user)
	}
	uid = uint32(n)
	if g != "" {
		m, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("the image's group %q is not numeric; set securityContext.runAsGroup", g)
		}
		gid = uint32(m)
	}
	return uid, gid, nil
}

// startShim starts the container's shim, a process in a session of its
// own that outlives this one.
func (r *Runtime) startShim(dir string, c Container, spec runc.Container, stdinOnce bool) error {
	if err := os.MkdirAll(socketDir, 0o700); err != nil {
		return fmt.Errorf("podruntime: %w", err)
	}
	cfg := shim.Config{
		ID: c.ID, Bundle: dir, Runc: r.cfg.Runc, Log: c.LogPath,
		StartedFile: filepath.Join(dir, startedFile), ExitFile: filepath.Join(dir, exitFile),
		CgroupMemory: cgroups.MemoryDir(spec.CgroupsPath),
		AttachSocket: c.AttachSocket, Stdin: c.Stdin, StdinOnce: stdinOnce, Terminal: c.TTY,
	}
	cfgPath := filepath.Join(dir, shimConfig)
	if err := shim.WriteConfig(cfgPath, cfg); err != nil {
		return err
	}
	shimLog, err := os.OpenFile(filepath.Join(dir, "shim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("podruntime: %w", err)
	}
	defer shimLog.Close()
	cmd := exec.Command(r.cfg.Shim, cfgPath)
	cmd.Stdout, cmd.Stderr = shimLog, shimLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("podruntime: start the shim of %s: %w", c.Name, err)
	}
	go cmd.Wait() // reaped here while this process lives; by init after
	return os.WriteFile(filepath.Join(dir, shimPIDFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
}

// waitStarted waits until the container runs or has ended.
func (r *Runtime) waitStarted(ctx context.Context, c Container) (Container, error) {
	for {
		got, err := r.container(r.dirOf(c))
		if err != nil {
			return got, err
		}
		if got.State != Created {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("podruntime: container %s did not start: %w", c.Name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// container reads a container's folder.
func (r *Runtime) container(dir string) (Container, error) {
	c, err := jsonfile.Read[Container](filepath.Join(dir, metaFile))
	if err != nil {
		return c, err
	}
	if readExit(dir, &c) {
		return c, nil
	}
	started, startErr := shim.ReadStarted(filepath.Join(dir, startedFile))
	switch {
	case !shimAlive(dir):
		// Read again: the shim may have recorded the exit and ended
		// since the first look.
		if readExit(dir, &c) {
			return c, nil
		}
		c.State, c.Reason = Unknown, "Unknown"
		c.Message = "the container's shim ended without recording how the container ended"
		if said, _ := os.ReadFile(filepath.Join(dir, "shim.log")); len(said) > 0 {
			c.Message += ": " + strings.TrimSpace(string(said))
		}
	case startErr == nil:
		c.State, c.PID, c.StartedAt = Running, started.PID, started.StartedAt
	default:
		c.State = Created
	}
	return c, nil
}

// readExit fills in c's end from its exit file, if it has one.
func readExit(dir string, c *Container) bool {
	end, err := shim.ReadExit(filepath.Join(dir, exitFile))
	if err != nil {
		return false
	}
	c.State, c.ExitCode, c.Reason, c.Message = Exited, end.Code, end.Reason, end.Message
	c.StartedAt, c.FinishedAt = end.StartedAt, end.FinishedAt
	return true
}

// shimAlive says whether the shim of a container folder runs: the
// process of its pid file is a shim of this folder.
func shimAlive(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, shimPIDFile))
	if err != nil {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strings.TrimSpace(string(data)) + "/cmdline")
	return err == nil && strings.Contains(string(cmdline), filepath.Join(dir, shimConfig))
}

// Containers lists a pod's container attempts, oldest first for each
// name.
func (r *Runtime) Containers(uid string) ([]Container, error) {
	entries, err := os.ReadDir(filepath.Join(r.podDir(uid), "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("podruntime: %w", err)
	}
	var out []Container
	for _, e := range entries {
		if c, err := r.container(filepath.Join(r.podDir(uid), "containers", e.Name())); err == nil {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Container) int {
		if a.Name != b.Name {
			return strings.Compare(a.Name, b.Name)
		}
		return a.Attempt - b.Attempt
	})
	return out, nil
}

// StopContainer stops a container as the kubelet does: SIGTERM to its
// process, then, after grace, SIGKILL to all of them. It returns once
// the container has ended.
func (r *Runtime) StopContainer(ctx context.Context, c Container, grace time.Duration) error {
	c, err := r.container(r.dirOf(c))
	if err != nil {
		return err
	}
	switch c.State {
	case Exited:
		return nil
	case Unknown:
		// No shim to record the end: runc's word is all there is.
		_ = r.cfg.Runc.Delete(ctx, c.ID, true)
		if c.PID > 0 && !waitGone(c.PID, 10*time.Second) {
			return fmt.Errorf("podruntime: container %s of pod %s: process %d did not end after SIGKILL", c.Name, c.PodUID, c.PID)
		}
		return jsonfile.Write(filepath.Join(r.dirOf(c), exitFile), shim.Exit{
			Code: 137, Reason: "Error", Message: c.Message, StartedAt: c.StartedAt, FinishedAt: time.Now().UTC(),
		})
	}
	if grace > 0 {
		_ = r.cfg.Runc.Kill(ctx, c.ID, syscall.SIGTERM, false)
		if r.waitExited(ctx, c, grace) {
			return nil
		}
	}
	// Killed again until it has ended: a container still starting (its
	// shim's runc not done yet) is not there for the first SIGKILL, and
	// runs once it is.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = r.cfg.Runc.Kill(ctx, c.ID, syscall.SIGKILL, true)
		if r.waitExited(ctx, c, 500*time.Millisecond) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("podruntime: container %s of pod %s did not end after SIGKILL", c.Name, c.PodUID)
		}
	}
}

// waitGone waits for a process to end (a zombie has ended).
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// The state follows the command's closing parenthesis.
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || (i > 0 && strings.HasPrefix(string(stat[i:]), ") Z")) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *Runtime) waitExited(ctx context.Context, c Container, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if got, err := r.container(r.dirOf(c)); err != nil || got.State == Exited {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoveContainer removes an ended container attempt: its root file
// system and its folder. Its log stays until its sandbox goes.
func (r *Runtime) RemoveContainer(c Container) error {
	dir := r.dirOf(c)
	if got, err := r.container(dir); err == nil && got.State != Exited {
		return fmt.Errorf("podruntime: container %s of pod %s is %s, not ended", c.Name, c.PodUID, got.State)
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	// Its shim removes it as it ends; one killed could not.
	if c.AttachSocket != "" {
		if err := os.Remove(c.AttachSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("podruntime: %w", err)
		}
	}
	return os.RemoveAll(dir)
}

// socketDir holds the shims' attach sockets: a unix socket's path must be
// short, which a node's folder is not.
const socketDir = "/run/kubeyard"

// Attach attaches to a running container (kubectl attach): its output
// from now on and, if it keeps its input open, its input.
func (r *Runtime) Attach(ctx context.Context, c Container, stdin io.Reader, stdout, stderr io.Writer, resize <-chan shim.Size) error {
	if !c.Stdin {
		stdin = nil
	}
	return shim.Attach(ctx, c.AttachSocket, stdin, stdout, stderr, resize)
}

// Exec runs a process in a running container (kubectl exec).
func (r *Runtime) Exec(ctx context.Context, c Container, p runc.Process) error {
	return r.cfg.Runc.Exec(ctx, c.ID, r.dirOf(c), p)
}
