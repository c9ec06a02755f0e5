// Package console is the engine's web console, served by `kubeyard serve`
// at its own address: the pages (plain HTML, CSS and JavaScript modules,
// embedded in the binary; there is no build step) and the sessions that
// let a browser in. The pages call the same REST API gcloud does, with a
// session cookie where gcloud sends the access token; this package only
// serves them and says which requests a session admits (Authorize).
//
// A browser logs in with a one-time link (`kubeyard serve` prints one,
// `kubeyard console` makes another) or by pasting the engine's access
// token; no page but the login page is served without a session.
package console

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/kubeyard/kubeyard/internal/auth"
)

//go:embed web
var web embed.FS

var (
	pages  = template.Must(template.ParseFS(web, "web/*.html"))
	assets = must(fs.Sub(web, "web/assets"))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Console serves the console's pages.
type Console struct {
	Sessions *Sessions
	identity auth.Identity
}

// New returns a console whose login form takes identity's token.
func New(identity auth.Identity) *Console {
	return &Console{Sessions: &Sessions{}, identity: identity}
}

// Register adds the console's routes to mux: / (the console, or the login
// page), /console/login, /console/logout and /console/assets/.
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.index)
	mux.HandleFunc("GET /console/login", c.loginWithCode)
	mux.HandleFunc("POST /console/login", c.loginWithToken)
	mux.HandleFunc("POST /console/logout", c.logout)
	mux.HandleFunc("GET /console/assets/", c.asset)
}

// securityHeaders: the pages load only the engine's own scripts and
// styles, and no other site may frame them or learn their address. (Not
// no-referrer: under it a browser sends its forms' posts with Origin
// "null", which the login and logout forms are refused for.)
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	ss, ok := c.Sessions.lookup(r)
	if !ok {
		c.loginPage(w, http.StatusUnauthorized, "")
		return
	}
	render(w, http.StatusOK, "index.html", map[string]string{"CSRF": ss.csrf})
}

// loginPage says how to log in; problem says why the last try failed.
func (c *Console) loginPage(w http.ResponseWriter, code int, problem string) {
	render(w, code, "login.html", map[string]string{"Problem": problem})
}

func render(w http.ResponseWriter, code int, page string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, page, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (c *Console) loginWithCode(w http.ResponseWriter, r *http.Request) {
	if !c.Sessions.redeem(r.URL.Query().Get("code")) {
		c.loginPage(w, http.StatusUnauthorized, "This login link is not valid: it was used already, it expired, or the engine restarted since it was made.")
		return
	}
	c.Sessions.start(w)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) loginWithToken(w http.ResponseWriter, r *http.Request) {
	// Not another site logging the browser in as someone else.
	if !sameOrigin(r) {
		c.loginPage(w, http.StatusForbidden, "Login refused: the form was sent from another site.")
		return
	}
	if !c.identity.ValidToken(r.PostFormValue("token")) {
		c.loginPage(w, http.StatusUnauthorized, "That is not this engine's access token.")
		return
	}
	c.Sessions.start(w)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout is a plain form's post (no CSRF header): from the console's own
// origin only.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	c.Sessions.end(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// asset serves the pages' scripts and styles; the stylesheet also to the
// login page, everything else to a session only.
func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/console/assets/")
	if _, ok := c.Sessions.lookup(r); !ok && name != "console.css" {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	data, err := fs.ReadFile(assets, path.Clean(name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	securityHeaders(w)
	w.Header().Set("Cache-Control", "no-cache")
	switch path.Ext(name) {
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Write(data)
}
