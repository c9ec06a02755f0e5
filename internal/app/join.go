package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/cluster"
	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/node"
	"github.com/kubeyard/kubeyard/internal/supervisor"
)

func newClusters(streams Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "clusters", Short: "kubeyard's own cluster commands (gcloud covers the rest)"}
	cmd.AddCommand(newJoinCommand(streams), newUploadCerts(streams))
	return cmd
}

// clusterFlags are the flags naming the engine and one of its clusters.
type clusterFlags struct {
	engineFlags
	location string
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	c.addOptionalLocation(cmd)
	_ = cmd.MarkFlagRequired("location")
}

// addOptionalLocation adds the flags with --location optional.
func (c *clusterFlags) addOptionalLocation(cmd *cobra.Command) {
	c.engineFlags.add(cmd.Flags())
	cmd.Flags().StringVar(&c.location, "location", "", "the cluster's zone or region")
}

// call posts body to the cluster's admin verb and decodes the answer.
func (c *clusterFlags) call(cluster, verb string, body, out any) error {
	path := fmt.Sprintf("/kubeyard/v1/projects/%s/locations/%s/clusters/%s/%s", url.PathEscape(c.project), url.PathEscape(c.location), url.PathEscape(cluster), verb)
	data, err := c.engineFlags.call("POST", path, body)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

func newJoinCommand(streams Streams) *cobra.Command {
	var c clusterFlags
	var controlPlane bool
	var certKey, ttl string
	cmd := &cobra.Command{
		Use:   "join-command CLUSTER",
		Short: "Print the command that joins another machine to a cluster (a new bootstrap token, 24 h by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"controlPlane": controlPlane}
			if certKey != "" {
				body["certificateKey"] = certKey
			}
			if ttl != "" {
				body["ttl"] = ttl
			}
			var info engine.JoinInfo
			if err := c.call(args[0], "joinCommand", body, &info); err != nil {
				return err
			}
			line := fmt.Sprintf("kubeyard join %s --token %s --discovery-token-ca-cert-hash %s", info.Endpoint, info.Token, info.CACertHash)
			if info.CertificateKey != "" {
				line += " --control-plane --certificate-key " + info.CertificateKey
			}
			fmt.Fprintln(streams.Out, line)
			return nil
		},
	}
	c.add(cmd)
	f := cmd.Flags()
	f.BoolVar(&controlPlane, "control-plane", false, "print the control-plane join (without --certificate-key, uploads the certificates under a new key)")
	f.StringVar(&certKey, "certificate-key", "", "with --control-plane: the key of certificates uploaded before with upload-certs")
	f.StringVar(&ttl, "ttl", "", "the token's lifetime (default 24h; 0 never expires)")
	return cmd
}

func newUploadCerts(streams Streams) *cobra.Command {
	var c clusterFlags
	var certKey string
	cmd := &cobra.Command{
		Use:   "upload-certs CLUSTER",
		Short: "Upload the shared certificates to the kubeadm-certs Secret (kubeadm init phase upload-certs) and print the key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]string{}
			if certKey != "" {
				body["certificateKey"] = certKey
			}
			var out struct {
				CertificateKey string `json:"certificateKey"`
			}
			if err := c.call(args[0], "uploadCerts", body, &out); err != nil {
				return err
			}
			fmt.Fprintln(streams.Out, out.CertificateKey)
			return nil
		},
	}
	c.add(cmd)
	cmd.Flags().StringVar(&certKey, "certificate-key", "", "encrypt under this key (default: a new one)")
	return cmd
}

func newCertificateKey(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "certificate-key",
		Short: "Print a new certificate key (32 random bytes in hex) for kubeadm-certs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := join.NewCertificateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(streams.Out, key)
			return nil
		},
	}
}

func newJoin(streams Streams) *cobra.Command {
	var cfg join.Config
	var dataDir, nodeName, nodeIP, kubeletIP, certKey, advertise string
	var controlPlane bool
	cmd := &cobra.Command{
		Use:   "join ENDPOINT",
		Short: "Join this machine to a cluster as a node or a control-plane replica, the kubeadm way (runs in the foreground)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.Contains(args[0], ":") {
				args[0] += ":443"
			}
			cfg.Endpoint = args[0]
			if controlPlane || certKey != "" {
				if !controlPlane || certKey == "" {
					return errors.New("a control-plane join needs both --control-plane and --certificate-key")
				}
				if dataDir == "" {
					dataDir = machineDir("control-plane-" + advertise)
				}
				return runControlPlane(cmd.Context(), streams, cfg, dataDir, certKey, advertise)
			}
			if nodeName == "" {
				return errors.New("--node-name is required")
			}
			if dataDir == "" {
				dataDir = machineDir(nodeName)
			}
			return runNode(cmd.Context(), streams, cfg, dataDir, nodeName, nodeIP, kubeletIP)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Token, "token", "", "bootstrap token (abcdef.0123456789abcdef)")
	f.StringSliceVar(&cfg.CACertHashes, "discovery-token-ca-cert-hash", nil, "the cluster CA's public key pin (sha256:<hex>)")
	f.DurationVar(&cfg.DiscoveryTimeout, "discovery-timeout", 5*time.Minute, "how long to wait for the cluster to confirm the token")
	f.StringVar(&dataDir, "data-dir", "", "where this machine keeps its credentials and files (default: machines/<node name or control-plane-<address>> in the engine's data dir)")
	f.StringVar(&nodeName, "node-name", "", "the node's name")
	f.StringVar(&nodeIP, "node-ip", "10.128.15.250", "the InternalIP the node reports (simulated; never dialled)")
	f.StringVar(&kubeletIP, "kubelet-ip", "127.0.0.1", "loopback address kube-apiserver may dial for this node's kubelet")
	f.BoolVar(&controlPlane, "control-plane", false, "join as a control-plane replica")
	f.StringVar(&certKey, "certificate-key", "", "key that decrypts the kubeadm-certs Secret (with --control-plane)")
	f.StringVar(&advertise, "apiserver-advertise-address", "", "with --control-plane: the loopback address this replica's kube-apiserver and etcd member listen on")
	_ = cmd.MarkFlagRequired("token")
	_ = cmd.MarkFlagRequired("discovery-token-ca-cert-hash")
	return cmd
}

// machineDir is where a machine joined on this computer keeps its files
// unless told otherwise: a folder of its own beside the engine's.
func machineDir(name string) string { return filepath.Join(defaultDataDir(), "machines", name) }

// runControlPlane joins this machine as a control-plane replica and runs
// it until SIGINT or SIGTERM, when it leaves the cluster (kubeadm reset):
// a replica that is gone must not stay an etcd member.
func runControlPlane(ctx context.Context, streams Streams, cfg join.Config, dataDir, certKey, advertise string) error {
	log := slog.New(slog.NewTextHandler(streams.Err, nil))
	ip := net.ParseIP(advertise)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("--apiserver-advertise-address must be a loopback address (127.0.0.0/8) for a control-plane join")
	}
	sup, err := supervisor.New(supervisor.Config{Logger: log})
	if err != nil {
		return err
	}
	defer sup.Close()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, err := cluster.JoinMachine(ctx, cluster.MachineConfig{Dir: dataDir, IP: ip, Join: cfg, CertificateKey: certKey, Supervisor: sup, Logger: log})
	if err != nil {
		return err
	}
	log.Info("this machine joined the control plane", "replica", m.Name(), "apiserver", net.JoinHostPort(advertise, "6443"))
	<-ctx.Done()
	log.Info("leaving the cluster", "replica", m.Name())
	leaveCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return m.Leave(leaveCtx)
}

// runNode joins and runs a node agent until SIGINT or SIGTERM.
func runNode(ctx context.Context, streams Streams, cfg join.Config, dataDir, name, nodeIP, kubeletIP string) error {
	log := slog.New(slog.NewTextHandler(streams.Err, nil))
	ip, kip := net.ParseIP(nodeIP), net.ParseIP(kubeletIP)
	if ip == nil || kip == nil || !kip.IsLoopback() {
		return errors.New("--node-ip must be an IP address and --kubelet-ip a loopback address")
	}
	agent, err := node.New(node.Config{Name: name, Dir: dataDir, Join: cfg, InternalIP: ip, KubeletIP: kip, Version: "v" + engine.KubernetesVersion, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := agent.Start(ctx); err != nil {
		return err
	}
	defer agent.Close()
	log.Info("node joined and running", "node", name)
	<-ctx.Done()
	return nil
}
