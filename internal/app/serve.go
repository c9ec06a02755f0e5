package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/api"
	"github.com/kubeyard/kubeyard/internal/auth"
	"github.com/kubeyard/kubeyard/internal/console"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/logging"
	"github.com/kubeyard/kubeyard/internal/store"
)

type serveOptions struct {
	dataDir             string
	addr                string
	etcdEndpoints       []string
	etcdPrefix          string
	endpointPort        int
	fallbackPort        int
	endpointPool        string
	hostPool            string
	lbPool              string
	leaveRunning        bool
	allowPrivilegedPods bool
	logRetention        time.Duration
	logMaxEntries       int
	debugAddr           string
}

func newServe(streams Streams) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine in the foreground (stop with Ctrl-C)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), streams, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "where the engine keeps its state, certificates and logs")
	f.StringVar(&o.addr, "addr", defaultAddr(), "address of the engine's API")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "client URLs of an external etcd for the engine's state (default: embedded etcd under the data dir)")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", store.DefaultPrefix, "where the engine's keys live in etcd: engines sharing one etcd need prefixes of their own")
	f.IntVar(&o.endpointPort, "endpoint-port", 443, "port of every cluster endpoint")
	f.IntVar(&o.fallbackPort, "fallback-endpoint-port", 8443, "port used when --endpoint-port cannot be bound")
	f.StringVar(&o.endpointPool, "endpoint-pool", "127.10.0.0/16", "loopback range for cluster endpoints")
	f.StringVar(&o.hostPool, "host-pool", "127.11.0.0/16", "loopback range for control-plane replicas")
	f.StringVar(&o.lbPool, "load-balancer-pool", "127.12.0.0/16", "loopback range for LoadBalancer Services")
	f.BoolVar(&o.leaveRunning, "leave-clusters-running", false, "on exit, leave control planes and pods running for the next engine to adopt")
	f.BoolVar(&o.allowPrivilegedPods, "allow-privileged-pods", false, "let pods reach into this machine: privileged containers, host PID and IPC namespaces, host paths outside the node's folder")
	f.DurationVar(&o.logRetention, "log-retention", logging.DefaultRetention, "how long Cloud Logging entries (flow logs, firewall logs) are kept")
	f.IntVar(&o.logMaxEntries, "log-max-entries", logging.DefaultMaxEntries, "how many Cloud Logging entries are kept at most, the oldest going first")
	f.StringVar(&o.debugAddr, "debug-addr", "", "loopback address to serve the engine's Go profiles on (/debug/pprof/), as the control-plane components serve theirs")
	return cmd
}

func serve(ctx context.Context, streams Streams, o serveOptions) error {
	log := slog.New(slog.NewTextHandler(streams.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// From the start: a signal that comes while the engine starts cuts the
	// start short and stops what it started, rather than killing it half
	// way.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	starting := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			stop(fmt.Errorf("stopped by %v while starting", sig))
		case <-starting:
		}
	}()
	endpointPool, err := netip.ParsePrefix(o.endpointPool)
	if err != nil {
		return fmt.Errorf("--endpoint-pool: %w", err)
	}
	hostPool, err := netip.ParsePrefix(o.hostPool)
	if err != nil {
		return fmt.Errorf("--host-pool: %w", err)
	}
	lbPool, err := netip.ParsePrefix(o.lbPool)
	if err != nil {
		return fmt.Errorf("--load-balancer-pool: %w", err)
	}
	port, err := usablePort(endpointPool, o.endpointPort, o.fallbackPort)
	if err != nil {
		return err
	}
	if port != o.endpointPort {
		log.Warn(fmt.Sprintf("cannot bind port %d on cluster endpoints (needs root or CAP_NET_BIND_SERVICE); endpoints use port %d and are reported as IP:%d", o.endpointPort, port, port))
	}
	if o.debugAddr != "" {
		stopDebug, err := serveDebug(o.debugAddr)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	token, err := auth.LoadOrCreateToken(filepath.Join(o.dataDir, accessTokenFile))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	defer ln.Close()
	e, err := engine.New(ctx, engine.Config{
		DataDir:          o.dataDir,
		EtcdEndpoints:    o.etcdEndpoints,
		EtcdPrefix:       o.etcdPrefix,
		BaseURL:          "http://" + ln.Addr().String(),
		EndpointPool:     endpointPool,
		HostPool:         hostPool,
		LoadBalancerPool: lbPool,
		EndpointPort:     port,
		Identity:         auth.Identity{Token: token, User: auth.DefaultUser},
		Logger:           log,

		AllowPrivilegedPods: o.allowPrivilegedPods,
		LogRetention:        o.logRetention,
		LogMaxEntries:       o.logMaxEntries,
	})
	if err != nil {
		return err
	}
	con := console.New(e.Identity())
	srv := &http.Server{Handler: api.NewHandler(e, con), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if err := e.Start(ctx); err != nil {
		srv.Close()
		e.Close(!o.leaveRunning)
		return err
	}
	close(starting)
	if err := context.Cause(ctx); err != nil { // a signal came as the start ended
		srv.Close()
		return errors.Join(err, e.Close(!o.leaveRunning))
	}
	log.Info("kubeyard engine serving", "addr", ln.Addr().String(), "data-dir", o.dataDir)
	fmt.Fprintf(streams.Err, "\nPoint gcloud at this engine with:\n  eval \"$(kubeyard env --data-dir %s --addr %s)\"\n", o.dataDir, ln.Addr())
	fmt.Fprintf(streams.Err, "Open the console (a one-time link; `kubeyard console` makes another):\n  %s\n\n", con.Sessions.LoginURL("http://"+ln.Addr().String()))

	select {
	case sig := <-sigs:
		log.Info("stopping", "signal", sig.String())
	case err := <-serveErr:
		log.Error("API server failed", "err", err)
	case <-e.HoldLost():
		// Clusters run on, for whichever engine holds the state now.
		_ = srv.Close()
		e.Close(false)
		return errors.New("the engine's hold on its state lapsed (etcd did not answer in time), and another engine may work on it now: stopped, clusters left running")
	case <-ctx.Done():
		log.Info("stopping", "reason", context.Cause(ctx))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return e.Close(!o.leaveRunning)
}

// usablePort returns port if a listener can bind it on the endpoint range,
// or fallback when it cannot (not root, no CAP_NET_BIND_SERVICE).
func usablePort(pool netip.Prefix, port, fallback int) (int, error) {
	probe := net.JoinHostPort(pool.Addr().Next().String(), fmt.Sprint(port))
	ln, err := net.Listen("tcp", probe)
	if err == nil {
		ln.Close()
		return port, nil
	}
	if errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "permission denied") {
		return fallback, nil
	}
	// In use (another engine?) is not a reason to change ports silently.
	return port, nil
}

// serveDebug serves net/http/pprof on addr, which must be on loopback:
// profiles show what the engine holds and does, to anyone who can connect.
func serveDebug(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--debug-addr: %q is not a loopback address", host)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { srv.Close() }, nil
}
