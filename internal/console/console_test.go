package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/auth"
)

const token = "ky.the-engines-token"

// rig is a console on a test server, with a clock the test moves.
type rig struct {
	t   *testing.T
	c   *Console
	srv *httptest.Server
	now time.Time
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, c: New(auth.Identity{Token: token, User: auth.DefaultUser}), now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	r.c.Sessions.Now = func() time.Time { return r.now }
	mux := http.NewServeMux()
	r.c.Register(mux)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// do sends a request without following redirects.
func (r *rig) do(req *http.Request) (*http.Response, string) {
	r.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (r *rig) get(path string, cookie *http.Cookie) (*http.Response, string) {
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return r.do(req)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == CookieName && c.Value != "" {
			return c
		}
	}
	return nil
}

// login logs in with a new one-time link and returns the session cookie.
func (r *rig) login() *http.Cookie {
	r.t.Helper()
	resp, _ := r.get(strings.TrimPrefix(r.c.Sessions.LoginURL(r.srv.URL), r.srv.URL), nil)
	c := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		r.t.Fatalf("login link: %s, cookie %v", resp.Status, c)
	}
	return c
}

func TestNoPageWithoutASession(t *testing.T) {
	r := newRig(t)
	resp, body := r.get("/", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "kubeyard console") || strings.Contains(body, "main.js") || strings.Contains(body, "csrf-token") {
		t.Errorf("GET / without a session: %s\n%s", resp.Status, body)
	}
	for path, want := range map[string]int{
		"/console/assets/js/main.js":           http.StatusUnauthorized,
		"/console/assets/js/views/clusters.js": http.StatusUnauthorized,
		"/console/assets/console.css":          http.StatusOK, // the login page's
	} {
		if resp, _ := r.get(path, nil); resp.StatusCode != want {
			t.Errorf("GET %s without a session: %s, want %d", path, resp.Status, want)
		}
	}
	bogus := &http.Cookie{Name: CookieName, Value: "made-up"}
	if resp, _ := r.get("/", bogus); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / with a made-up session: %s", resp.Status)
	}
}

func TestLoginLinkWorksOnce(t *testing.T) {
	r := newRig(t)
	link := strings.TrimPrefix(r.c.Sessions.LoginURL(r.srv.URL), r.srv.URL)
	resp, _ := r.get(link, nil)
	c := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || c == nil {
		t.Fatalf("first use: %s, Location %q, cookie %v", resp.Status, resp.Header.Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("the session cookie is %+v: want HttpOnly, SameSite=Strict, Path=/", c)
	}
	resp, body := r.get(link, nil)
	if resp.StatusCode != http.StatusUnauthorized || sessionCookie(resp) != nil || !strings.Contains(body, "not valid") {
		t.Errorf("second use: %s, cookie %v", resp.Status, sessionCookie(resp))
	}
	// A link not used within its lifetime does not work either.
	late := strings.TrimPrefix(r.c.Sessions.LoginURL(r.srv.URL), r.srv.URL)
	r.now = r.now.Add(codeTTL + time.Second)
	if resp, _ := r.get(late, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an expired link: %s", resp.Status)
	}
	if resp, _ := r.get("/console/login?code=", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no code: %s", resp.Status)
	}
}

func TestTheConsoleCarriesItsSessionsCSRFToken(t *testing.T) {
	r := newRig(t)
	c := r.login()
	resp, body := r.get("/", c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with a session: %s", resp.Status)
	}
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	ss, _ := r.c.Sessions.lookup(requestWith(c))
	if m[1] != ss.csrf {
		t.Errorf("the page's CSRF token is not the session's")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if resp, _ := r.get("/console/assets/js/main.js", c); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("main.js with a session: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	// A session lasts a working day.
	r.now = r.now.Add(sessionTTL + time.Second)
	if resp, _ := r.get("/", c); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an expired session: %s", resp.Status)
	}
}

func requestWith(c *http.Cookie) *http.Request {
	req := httptest.NewRequest("GET", "http://engine.test/", nil)
	req.AddCookie(c)
	return req
}

func TestLoginWithTheAccessToken(t *testing.T) {
	r := newRig(t)
	post := func(tok, origin string) *http.Response {
		req, _ := http.NewRequest("POST", r.srv.URL+"/console/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, _ := r.do(req)
		return resp
	}
	if resp := post("ky.wrong", r.srv.URL); resp.StatusCode != http.StatusUnauthorized || sessionCookie(resp) != nil {
		t.Errorf("a wrong token: %s", resp.Status)
	}
	if resp := post(token, "http://evil.example"); resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != nil {
		t.Errorf("the token posted from another site: %s", resp.Status)
	}
	resp := post(token, r.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Fatalf("the token: %s", resp.Status)
	}
	if resp, _ := r.get("/", sessionCookie(resp)); resp.StatusCode != http.StatusOK {
		t.Errorf("GET / after logging in with the token: %s", resp.Status)
	}
}

func TestLogout(t *testing.T) {
	r := newRig(t)
	c := r.login()
	req, _ := http.NewRequest("POST", r.srv.URL+"/console/logout", nil)
	req.AddCookie(c)
	req.Header.Set("Origin", "http://evil.example")
	if resp, _ := r.do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a logout from another site: %s", resp.Status)
	}
	req.Header.Set("Origin", r.srv.URL)
	if resp, _ := r.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %s", resp.Status)
	}
	if resp, _ := r.get("/", c); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / after logout: %s", resp.Status)
	}
}

// TestAuthorize: what a session admits on the engine's API.
func TestAuthorize(t *testing.T) {
	r := newRig(t)
	c := r.login()
	ss, _ := r.c.Sessions.lookup(requestWith(c))
	for _, tc := range []struct {
		name         string
		method       string
		cookie       bool
		csrf, origin string
		fetchSite    string
		want         error
	}{
		{name: "no cookie", method: "GET", want: ErrNoSession},
		{name: "a read", method: "GET", cookie: true, want: nil},
		{name: "a read from another site", method: "GET", cookie: true, fetchSite: "cross-site", want: ErrCrossSite},
		{name: "a change without the CSRF token", method: "POST", cookie: true, origin: "http://engine.test", want: ErrCrossSite},
		{name: "a change with a wrong CSRF token", method: "DELETE", cookie: true, csrf: "guess", want: ErrCrossSite},
		{name: "a change from another origin", method: "POST", cookie: true, csrf: ss.csrf, origin: "http://evil.example", want: ErrCrossSite},
		{name: "a change the browser says is cross-site", method: "PUT", cookie: true, csrf: ss.csrf, fetchSite: "same-site", want: ErrCrossSite},
		{name: "a change from the console", method: "POST", cookie: true, csrf: ss.csrf, origin: "http://engine.test", fetchSite: "same-origin", want: nil},
		{name: "a change with the token, no Origin", method: "PATCH", cookie: true, csrf: ss.csrf, want: nil},
	} {
		req := httptest.NewRequest(tc.method, "http://engine.test/v1/projects/p/locations/-/clusters", nil)
		if tc.cookie {
			req.AddCookie(c)
		}
		if tc.csrf != "" {
			req.Header.Set(CSRFHeader, tc.csrf)
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
		}
		if got := r.c.Sessions.Authorize(req); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
