// Package apitest is a client of the engine's REST API for tests, unit and
// end to end alike: calls with the engine's token, waiting for GKE
// operations, replaying requests a real client recorded, and checking the
// fields it reads back.
package apitest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Client calls one engine.
type Client struct {
	T testing.TB
	// Base is the engine's address ("http://127.0.0.1:8080").
	Base, Token string
}

// Call sends a request and decodes the JSON answer; an answer that is not
// JSON fails the test (every error is a google.rpc.Status).
func (c *Client) Call(method, path string, body io.Reader) (int, map[string]any) {
	c.T.Helper()
	req, err := http.NewRequest(method, c.Base+path, body)
	if err != nil {
		c.T.Fatal(err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) == 0 {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, &out); err != nil {
		c.T.Fatalf("%s %s: HTTP %d, not JSON: %q", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

// Get is a GET that must succeed.
func (c *Client) Get(path string) map[string]any {
	c.T.Helper()
	code, out := c.Call("GET", path, nil)
	if code != 200 {
		c.T.Fatalf("GET %s: HTTP %d %v", path, code, out)
	}
	return out
}

// Must is a call that must succeed; a GKE operation it starts is waited
// for.
func (c *Client) Must(method, path, body string) map[string]any {
	c.T.Helper()
	code, out := c.Call(method, path, strings.NewReader(body))
	if code != 200 {
		c.T.Fatalf("%s %s: HTTP %d %v", method, path, code, out)
	}
	c.Wait(out)
	return out
}

// Wait waits until a GKE operation is DONE, failing on its error; other
// answers (Compute's and Cloud DNS's operations are done when returned)
// pass.
func (c *Client) Wait(op map[string]any) {
	c.T.Helper()
	self, _ := op["selfLink"].(string)
	if self == "" || op["operationType"] == nil {
		return
	}
	path := strings.TrimPrefix(self, c.Base)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		cur := c.Get(path)
		if cur["status"] == "DONE" {
			if cur["error"] != nil {
				c.T.Fatalf("operation %s failed: %v", cur["name"], cur["error"])
			}
			return
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("operation %s not done: %v", cur["name"], cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Fixture is a file of ../shared/fixtures, beside the repository.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("fixture %s: %v (../shared must be beside the repository)", name, err)
	}
	return path
}

var fingerprintRE = regexp.MustCompile(`"(fingerprint|labelFingerprint)": "[0-9a-f]+"`)

// Replay sends every request of a recording (METHOD PATH BODY, a line
// each) as the client sent it, waiting for each operation, and fails on
// the first one refused. Fingerprints are the current ones (the
// recording's were another server's), and http://127.0.0.1:PORT the
// engine.
func (c *Client) Replay(file string) {
	c.T.Helper()
	f, err := os.Open(file)
	if err != nil {
		c.T.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		method, rest, _ := strings.Cut(sc.Text(), " ")
		path, body, _ := strings.Cut(rest, " ")
		body = strings.ReplaceAll(body, "http://127.0.0.1:PORT", c.Base)
		if m := fingerprintRE.FindStringSubmatch(body); m != nil {
			resource := strings.TrimSuffix(strings.Split(path, "?")[0], ":setResourceLabels")
			cur := c.Get(resource)[m[1]]
			body = fingerprintRE.ReplaceAllString(body, fmt.Sprintf(`"%s": "%v"`, m[1], cur))
		}
		c.Must(method, path, body)
	}
	if err := sc.Err(); err != nil {
		c.T.Fatal(err)
	}
}

// Value is the value at a dotted path ("nodePools.0.name") of a JSON
// document, or nil.
func Value(doc any, path string) any {
	for _, seg := range strings.Split(path, ".") {
		switch t := doc.(type) {
		case map[string]any:
			doc = t[seg]
		case []any:
			var i int
			if _, err := fmt.Sscan(seg, &i); err != nil || i >= len(t) {
				return nil
			}
			doc = t[i]
		default:
			return nil
		}
	}
	return doc
}

// Present stands for any value in Expect.
var Present = struct{ name string }{"present"}

// Expect checks fields of a resource as a client reads them back: want
// maps a path to its value, or to Present (the field must be there,
// whatever it holds).
func (c *Client) Expect(resource string, want map[string]any) map[string]any {
	c.T.Helper()
	doc := c.Get(resource)
	for path, w := range want {
		got := Value(doc, path)
		switch {
		case w == Present && got == nil:
			c.T.Errorf("%s: %s is missing", resource, path)
		case w != Present && fmt.Sprint(got) != fmt.Sprint(w):
			c.T.Errorf("%s: %s = %v, want %v", resource, path, got, w)
		}
	}
	return doc
}
