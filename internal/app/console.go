package app

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

func newConsole(streams Streams) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Print a one-time link that logs a browser in to the engine's web console",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := f.call(http.MethodPost, "/kubeyard/v1/console:loginLink", struct{}{})
			if err != nil {
				return err
			}
			var link struct{ URL string }
			if err := json.Unmarshal(out, &link); err != nil || link.URL == "" {
				return fmt.Errorf("the engine's answer has no link: %s", out)
			}
			fmt.Fprintln(streams.Out, link.URL)
			return nil
		},
	}
	f.add(cmd.Flags())
	return cmd
}
