package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kubeyard/kubeyard/internal/images"
)

// newImages is `kubeyard images`: the images pods can run, in the engine's
// store.
func newImages(streams Streams) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{Use: "images", Short: "The images pods can run: list, load (docker save or OCI archives), rm"}
	f.add(cmd.PersistentFlags())
	print := func(data []byte) error {
		var out struct {
			Images []images.Image `json:"images"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return err
		}
		w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tDIGEST\tSIZE")
		for _, img := range out.Images {
			fmt.Fprintf(w, "%s\t%s\t%.1fMB\n", img.Name, shortDigest(img.Digest), float64(img.Size)/1e6)
		}
		return w.Flush()
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the images in the store",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			data, err := f.call(http.MethodGet, "/kubeyard/v1/images", nil)
			if err != nil {
				return err
			}
			return print(data)
		},
	}, &cobra.Command{
		Use:   "load FILE",
		Short: "Load the images of an archive (docker save, or an OCI layout in a tar; - for standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var in io.Reader = streams.In
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer file.Close()
				in = file
			}
			data, err := f.send(http.MethodPost, "/kubeyard/v1/images:load", "application/x-tar", in)
			if err != nil {
				return err
			}
			return print(data)
		},
	}, &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove images from the store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			for _, name := range args {
				if _, err := f.call(http.MethodDelete, "/kubeyard/v1/images?name="+url.QueryEscape(name), nil); err != nil {
					return err
				}
				fmt.Fprintln(streams.Out, "removed", name)
			}
			return nil
		},
	})
	return cmd
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
