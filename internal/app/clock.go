package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func newClock(streams Streams) *cobra.Command {
	var dataDir, addr string
	cmd := &cobra.Command{
		Use:   "clock",
		Short: "Show or advance the engine's clock (for testing expiry and deadlines)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the engine's data dir")
	cmd.PersistentFlags().StringVar(&addr, "addr", defaultAddr(), "the engine's address")
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the engine's time and its offset from real time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printCall(streams, dataDir, addr, http.MethodGet, "/kubeyard/v1/clock", nil)
		},
	}, &cobra.Command{
		Use:   "advance DURATION",
		Short: "Move the engine's clock forward, e.g. 168h for seven days",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printCall(streams, dataDir, addr, http.MethodPost, "/kubeyard/v1/clock:advance", map[string]string{"duration": args[0]})
		},
	})
	return cmd
}

func printCall(streams Streams, dataDir, addr, method, path string, body any) error {
	out, err := adminCall(dataDir, addr, method, path, body)
	if err != nil {
		return err
	}
	fmt.Fprintln(streams.Out, strings.TrimSpace(string(out)))
	return nil
}

// adminCall calls the engine's own API with its access token and returns
// the answer.
func adminCall(dataDir, addr, method, path string, body any) ([]byte, error) {
	token, err := os.ReadFile(filepath.Join(dataDir, "access-token"))
	if err != nil {
		return nil, fmt.Errorf("read the engine's access token: %w", err)
	}
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, reader)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("engine at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var status struct {
			Error struct{ Status, Message string } `json:"error"`
		}
		if json.Unmarshal(out, &status) == nil && status.Error.Message != "" {
			return nil, fmt.Errorf("%s: %s", status.Error.Status, status.Error.Message)
		}
		return nil, fmt.Errorf("engine answered %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}
