package app

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func newEnv(streams Streams) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print the environment that points gcloud at the engine (use with eval)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(f.dataDir)
			if err != nil {
				return err
			}
			fmt.Fprint(streams.Out, Env(abs, f.addr, f.project))
			return nil
		},
	}
	f.add(cmd.Flags())
	return cmd
}

// Env returns the shell exports that point gcloud (and, through
// gke-gcloud-auth-plugin, kubectl) at an engine.
func Env(dataDir, addr, project string) string {
	base := "http://" + addr + "/"
	vars := [][2]string{
		{"CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER", base},
		{"CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", base + "compute/v1/"},
		{"CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING", base},
		{"CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE", base},
		{"CLOUDSDK_API_ENDPOINT_OVERRIDES_DNS", base},
		{"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", filepath.Join(dataDir, accessTokenFile)},
		{"CLOUDSDK_CORE_PROJECT", project},
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	return b.String()
}

func shellQuote(s string) string {
	if strings.ContainsAny(s, " '\"$`\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}
