package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	container "google.golang.org/api/container/v1"

	"github.com/kubeyard/kubeyard/internal/pki"
)

func newUpdate(streams Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Update a cluster's credentials"}
	cmd.AddCommand(newUpdateCredentials(streams))
	return cmd
}

// newUpdateCredentials is `kubeyard update credentials --cluster-ca`, after
// the bare-metal `bmctl update credentials --cluster-ca`: it rotates the
// cluster CA, prints the progress as it goes, and exits when the rotation
// is done, leaving the new admin kubeconfig and a log in the workspace.
func newUpdateCredentials(streams Streams) *cobra.Command {
	var c clusterFlags
	var name, workspace string
	var clusterCA bool
	cmd := &cobra.Command{
		Use:   "credentials --cluster-ca --cluster-name CLUSTER",
		Short: "Rotate a cluster's CA: trust bundles first, then new certificates, then the old CA retired (no pause, no rollback)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !clusterCA {
				return errors.New("say what to rotate: --cluster-ca (the only credential kubeyard rotates this way)")
			}
			if c.location == "" {
				loc, err := c.findLocation(name)
				if err != nil {
					return err
				}
				c.location = loc
			}
			return rotateClusterCA(cmd, streams, c, name, workspace)
		},
	}
	c.addOptionalLocation(cmd)
	f := cmd.Flags()
	f.BoolVar(&clusterCA, "cluster-ca", false, "rotate the cluster CA (the etcd and front-proxy CAs stay)")
	f.StringVar(&name, "cluster-name", "", "the cluster")
	f.StringVar(&workspace, "workspace", "kubeyard-workspace", "where the new kubeconfig (<workspace>/<cluster>/<cluster>-kubeconfig) and the log go")
	_ = cmd.MarkFlagRequired("cluster-name")
	return cmd
}

// findLocation finds the location of the project's cluster called name.
func (c *clusterFlags) findLocation(name string) (string, error) {
	data, err := c.engineFlags.call(http.MethodGet, fmt.Sprintf("/v1/projects/%s/locations/-/clusters", url.PathEscape(c.project)), nil)
	if err != nil {
		return "", err
	}
	var list container.ListClustersResponse
	if err := json.Unmarshal(data, &list); err != nil {
		return "", err
	}
	var found []string
	for _, cl := range list.Clusters {
		if cl.Name == name {
			found = append(found, cl.Location)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no cluster %q in project %s", name, c.project)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("clusters called %q are in %v; say which with --location", name, found)
}

func rotateClusterCA(cmd *cobra.Command, streams Streams, c clusterFlags, name, workspace string) error {
	started := time.Now()
	logDir := filepath.Join(workspace, name, "log", "update-credentials-"+started.Format("20060102-150405"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(logDir, "update-credentials.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	out := io.MultiWriter(streams.Out, logFile)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "[%s] %s\n", time.Now().Format("2006-01-02 15:04:05"), fmt.Sprintf(format, a...))
	}
	var op container.Operation
	if err := c.call(name, "rotateClusterCA", map[string]any{}, &op); err != nil {
		say("Cluster CA rotation of %s refused: %v", name, err)
		return err
	}
	say("Rotating the cluster CA of %s in %s (operation %s). It cannot be paused or rolled back.", name, c.location, op.Name)
	opPath := fmt.Sprintf("/v1/projects/%s/locations/%s/operations/%s", url.PathEscape(c.project), url.PathEscape(c.location), url.PathEscape(op.Name))
	printed := 0
	for {
		select {
		case <-cmd.Context().Done():
			say("Stopped watching; the rotation goes on in the engine (operation %s).", op.Name)
			return cmd.Context().Err()
		case <-time.After(300 * time.Millisecond):
		}
		data, err := c.engineFlags.call(http.MethodGet, opPath, nil)
		if err != nil {
			// The engine may be restarting; the rotation resumes with it.
			continue
		}
		var cur container.Operation
		if err := json.Unmarshal(data, &cur); err != nil {
			return err
		}
		if cur.Progress != nil {
			for ; printed < len(cur.Progress.Stages); printed++ {
				say("%s", cur.Progress.Stages[printed].Name)
			}
		}
		if cur.Status != "DONE" {
			continue
		}
		if cur.Error != nil {
			say("Cluster CA rotation failed: %s", cur.Error.Message)
			return fmt.Errorf("cluster CA rotation failed: %s", cur.Error.Message)
		}
		break
	}
	var kc struct {
		Kubeconfig string `json:"kubeconfig"`
	}
	data, err := c.engineFlags.call(http.MethodGet, fmt.Sprintf("/kubeyard/v1/projects/%s/locations/%s/clusters/%s/adminKubeconfig", url.PathEscape(c.project), url.PathEscape(c.location), url.PathEscape(name)), nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &kc); err != nil {
		return err
	}
	path := filepath.Join(workspace, name, name+"-kubeconfig")
	if err := pki.WriteFile(path, []byte(kc.Kubeconfig)); err != nil {
		return err
	}
	say("Cluster CA rotation of %s done in %s. The new admin kubeconfig is %s; the log is %s.", name, time.Since(started).Round(time.Second), path, logFile.Name())
	return nil
}
