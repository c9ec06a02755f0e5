package app

import (
	"net/http"

	"github.com/spf13/cobra"
)

func newClock(streams Streams) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "clock",
		Short: "Show or advance the engine's clock (for testing expiry and deadlines)",
	}
	f.add(cmd.PersistentFlags())
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the engine's time and its offset from real time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.printCall(streams, http.MethodGet, "/kubeyard/v1/clock", nil)
		},
	}, &cobra.Command{
		Use:   "advance DURATION",
		Short: "Move the engine's clock forward, e.g. 168h for seven days",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.printCall(streams, http.MethodPost, "/kubeyard/v1/clock:advance", map[string]string{"duration": args[0]})
		},
	})
	return cmd
}
