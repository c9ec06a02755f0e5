package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/engine"
	"github.com/kubeyard/kubeyard/internal/join"
	"github.com/kubeyard/kubeyard/internal/node"
)

func newClusters(streams Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "clusters", Short: "kubeyard's own cluster commands (gcloud covers the rest)"}
	var dataDir, addr, project, location string
	var controlPlane bool
	joinCmd := &cobra.Command{
		Use:   "join-command CLUSTER",
		Short: "Print the command that joins another machine to a cluster (a new 24 h bootstrap token)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if location == "" {
				return errors.New("--location is required")
			}
			path := fmt.Sprintf("/kubeyard/v1/projects/%s/locations/%s/clusters/%s/joinCommand", url.PathEscape(project), url.PathEscape(location), url.PathEscape(args[0]))
			out, err := adminCall(dataDir, addr, "POST", path, map[string]bool{"controlPlane": controlPlane})
			if err != nil {
				return err
			}
			var info engine.JoinInfo
			if err := json.Unmarshal(out, &info); err != nil {
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
	f := joinCmd.Flags()
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "the engine's data dir")
	f.StringVar(&addr, "addr", defaultAddr(), "the engine's address")
	f.StringVar(&project, "project", envOr("CLOUDSDK_CORE_PROJECT", DefaultProject), "the cluster's project")
	f.StringVar(&location, "location", "", "the cluster's zone or region")
	f.BoolVar(&controlPlane, "control-plane", false, "print the control-plane join (uploads the certificates under a new certificate key)")
	cmd.AddCommand(joinCmd)
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
	var dataDir, nodeName, nodeIP, kubeletIP, certKey string
	var controlPlane bool
	cmd := &cobra.Command{
		Use:   "join ENDPOINT",
		Short: "Join this machine to a cluster as a node, the kubeadm way (runs in the foreground)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if controlPlane || certKey != "" {
				return errors.New("kubeyard join --control-plane is not implemented yet: regional clusters join their replicas inside the engine")
			}
			if !strings.Contains(args[0], ":") {
				args[0] += ":443"
			}
			cfg.Endpoint = args[0]
			if nodeName == "" {
				return errors.New("--node-name is required")
			}
			return runNode(cmd.Context(), streams, cfg, dataDir, nodeName, nodeIP, kubeletIP)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Token, "token", "", "bootstrap token (abcdef.0123456789abcdef)")
	f.StringSliceVar(&cfg.CACertHashes, "discovery-token-ca-cert-hash", nil, "the cluster CA's public key pin (sha256:<hex>)")
	f.StringVar(&dataDir, "data-dir", "", "where this node keeps its credentials (required)")
	f.StringVar(&nodeName, "node-name", "", "the node's name")
	f.StringVar(&nodeIP, "node-ip", "10.128.15.250", "the InternalIP the node reports (simulated; never dialled)")
	f.StringVar(&kubeletIP, "kubelet-ip", "127.0.0.1", "loopback address kube-apiserver may dial for this node's kubelet")
	f.BoolVar(&controlPlane, "control-plane", false, "join as a control-plane replica")
	f.StringVar(&certKey, "certificate-key", "", "key that decrypts the kubeadm-certs Secret (with --control-plane)")
	_ = cmd.MarkFlagRequired("token")
	_ = cmd.MarkFlagRequired("discovery-token-ca-cert-hash")
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
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
