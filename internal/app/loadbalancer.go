package app

import (
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/loadbalancer"
)

// newLoadBalancer is the process the engine runs for every cluster
// endpoint. It lives apart from the engine so that endpoints keep serving
// while the engine is down; the engine configures it through files.
func newLoadBalancer(streams Streams) *cobra.Command {
	var configDir string
	cmd := &cobra.Command{
		Use:    "loadbalancer",
		Short:  "Run the cluster endpoints' load balancer (started by the engine)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(streams.Err, nil))
			lb := loadbalancer.New(loadbalancer.Config{Logger: log})
			return lb.Follow(ctx, configDir, 200*time.Millisecond)
		},
	}
	cmd.Flags().StringVar(&configDir, "config-dir", "", "folder of frontend files, one per cluster endpoint")
	_ = cmd.MarkFlagRequired("config-dir")
	return cmd
}
