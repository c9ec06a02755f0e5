package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
)

// engineFlags name the engine a command talks to: its address, its data
// dir (where its access token is) and the project. Each defaults to what
// the environment says, the one `kubeyard env` prints, so that after
// `eval "$(kubeyard env --data-dir X --addr Y)"` no command needs them
// again; a flag given still wins.
type engineFlags struct {
	dataDir, addr, project string
}

func (f *engineFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "the engine's data dir (default from $KUBEYARD_DATA_DIR or $CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, as `kubeyard env` sets them)")
	fs.StringVar(&f.addr, "addr", defaultAddr(), "the engine's address (default from $KUBEYARD_ADDR or $CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER)")
	fs.StringVar(&f.project, "project", defaultProject(), "the project (default from $CLOUDSDK_CORE_PROJECT)")
}

// accessTokenFile is the name of the engine's access token in its data dir.
const accessTokenFile = "access-token"

// defaultDataDir is $KUBEYARD_DATA_DIR, or the folder of the access token
// gcloud is told to use, or ~/.kubeyard.
func defaultDataDir() string {
	if d := os.Getenv("KUBEYARD_DATA_DIR"); d != "" {
		return d
	}
	if f := os.Getenv("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"); filepath.Base(f) == accessTokenFile {
		return filepath.Dir(f)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kubeyard"
	}
	return filepath.Join(home, ".kubeyard")
}

// defaultAddr is $KUBEYARD_ADDR, or the address gcloud's container API
// is pointed at, or 127.0.0.1:8080.
func defaultAddr() string {
	if a := os.Getenv("KUBEYARD_ADDR"); a != "" {
		return a
	}
	if u, err := url.Parse(os.Getenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER")); err == nil && u.Scheme == "http" && u.Host != "" {
		return u.Host
	}
	return "127.0.0.1:8080"
}

// defaultProject is gcloud's project, or DefaultProject.
func defaultProject() string {
	if p := os.Getenv("CLOUDSDK_CORE_PROJECT"); p != "" {
		return p
	}
	return DefaultProject
}

// printCall calls the engine and prints its answer.
func (f engineFlags) printCall(streams Streams, method, path string, body any) error {
	out, err := f.call(method, path, body)
	if err != nil {
		return err
	}
	fmt.Fprintln(streams.Out, strings.TrimSpace(string(out)))
	return nil
}

// call calls the engine's API with its access token and returns the
// answer; an error answer is reported with its google.rpc.Status.
func (f engineFlags) call(method, path string, body any) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(data)
	}
	return f.send(method, path, "application/json", reader)
}

// send is call with a body of its own type (an image archive, say).
func (f engineFlags) send(method, path, contentType string, body io.Reader) ([]byte, error) {
	token, err := os.ReadFile(filepath.Join(f.dataDir, accessTokenFile))
	if err != nil {
		return nil, fmt.Errorf("read the engine's access token (is %s the engine's data dir? run `eval \"$(kubeyard env --data-dir DIR --addr ADDR)\"` or pass --data-dir): %w", f.dataDir, err)
	}
	req, err := http.NewRequest(method, "http://"+f.addr+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("engine at %s: %w", f.addr, err)
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
