package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/engine"
)

func newVersion(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubeyard and of the Kubernetes it runs",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(streams.Out, "kubeyard (GKE version %s, Kubernetes v%s)\n", engine.Version, engine.KubernetesVersion)
		},
	}
}
