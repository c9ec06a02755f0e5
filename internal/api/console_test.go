package api

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kubeyard/kubeyard/internal/console"
)

// TestConsoleSessionsOnTheAPI: a console session reads the engine's API as
// the access token does, and changes things only with its CSRF token from
// the engine's own origin; refused, it changes nothing.
func TestConsoleSessionsOnTheAPI(t *testing.T) {
	te := newTestEngine(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// send returns the answer's code and body, or, when it sets the
	// session cookie, the session.
	send := func(method, path, body string, header map[string]string, cookie *http.Cookie) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, te.srv.URL+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			if c.Name == console.CookieName {
				return resp.StatusCode, c.Value
			}
		}
		return resp.StatusCode, string(data)
	}

	// `kubeyard console` asks for a link with the token.
	code, body := send("POST", "/kubeyard/v1/console:loginLink", "{}", map[string]string{"Authorization": "Bearer " + te.Token}, nil)
	var link struct{ URL string }
	if code != 200 || json.Unmarshal([]byte(body), &link) != nil || !strings.HasPrefix(link.URL, te.srv.URL+"/console/login?code=") {
		t.Fatalf("loginLink: %d %s", code, body)
	}
	if code, _ := send("POST", "/kubeyard/v1/console:loginLink", "{}", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("loginLink without the token: %d", code)
	}
	code, id := send("GET", strings.TrimPrefix(link.URL, te.srv.URL), "", nil, nil)
	if code != http.StatusSeeOther || id == "" {
		t.Fatalf("the login link: %d", code)
	}
	cookie := &http.Cookie{Name: console.CookieName, Value: id}
	_, page := send("GET", "/", "", nil, cookie)
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the console's page")
	}
	csrf := m[1]

	const clusters = "/v1/projects/p/locations/us-central1-a/clusters"
	create := `{"cluster": {"name": "c1", "nodePools": [{"name": "default-pool", "initialNodeCount": 1}]}}`
	for name, header := range map[string]map[string]string{
		"without the CSRF token":   {"Origin": te.srv.URL},
		"with a wrong CSRF token":  {console.CSRFHeader: "guess", "Origin": te.srv.URL},
		"from another site's page": {console.CSRFHeader: csrf, "Origin": "http://evil.example"},
	} {
		code, body := send("POST", clusters, create, header, cookie)
		if code != http.StatusForbidden || !strings.Contains(body, "PERMISSION_DENIED") {
			t.Errorf("a create %s: %d %s", name, code, body)
		}
	}
	if code, body := send("POST", clusters, create, map[string]string{console.CSRFHeader: csrf}, nil); code != http.StatusUnauthorized {
		t.Errorf("a create with the CSRF token and no session: %d %s", code, body)
	}
	if code, body := send("GET", clusters, "", nil, cookie); code != 200 || strings.Contains(body, `"c1"`) {
		t.Fatalf("clusters after the refused creates: %d %s", code, body)
	}
	code, body = send("POST", clusters, create, map[string]string{console.CSRFHeader: csrf, "Origin": te.srv.URL, "Sec-Fetch-Site": "same-origin"}, cookie)
	if code != 200 || !strings.Contains(body, "CREATE_CLUSTER") {
		t.Fatalf("a create from the console: %d %s", code, body)
	}
	if code, body := send("GET", clusters+"/c1", "", nil, cookie); code != 200 || !strings.Contains(body, `"name":"c1"`) {
		t.Errorf("the console's cluster: %d %s", code, body)
	}
	// The token still works alone, and a session does not open the
	// registry, which authenticates as registries do.
	if code, _ := send("GET", clusters, "", map[string]string{"Authorization": "Bearer " + te.Token}, nil); code != 200 {
		t.Errorf("the token: %d", code)
	}
	if code, _ := send("GET", "/v2/", "", nil, cookie); code != http.StatusUnauthorized {
		t.Errorf("the registry with a console session: %d", code)
	}
}
