package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CookieName is the session cookie a browser holds once logged in.
const CookieName = "kubeyard_session"

// CSRFHeader carries the session's CSRF token on every request that
// changes something; the console's pages read it from the page they are
// served in, which another site cannot.
const CSRFHeader = "X-Kubeyard-Csrf"

const (
	// sessionTTL is how long a login lasts, as a working day.
	sessionTTL = 12 * time.Hour
	// codeTTL is how long a login link works, if nobody uses it.
	codeTTL = 10 * time.Minute
)

var (
	// ErrNoSession: the request carries no live session.
	ErrNoSession = errors.New("console: no session")
	// ErrCrossSite: a request with the session's cookie that changes
	// something came without the session's CSRF token, or from another
	// origin.
	ErrCrossSite = errors.New("console: cross-site request")
)

// Sessions are the browsers logged in to the console, and the one-time
// login codes not yet used. They live in the engine's memory: a restarted
// engine asks for a new login (it prints a new link).
type Sessions struct {
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	codes    map[string]time.Time // expiry, by code
	sessions map[string]session   // by cookie value
}

type session struct {
	csrf    string
	expires time.Time
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewLoginCode is a code that logs one browser in, once, within codeTTL.
func (s *Sessions) NewLoginCode() string {
	code := randomString()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.codes == nil {
		s.codes = map[string]time.Time{}
	}
	now := s.now()
	for c, exp := range s.codes {
		if now.After(exp) {
			delete(s.codes, c)
		}
	}
	s.codes[code] = now.Add(codeTTL)
	return code
}

// LoginURL is the one-time login link of a new code, on the engine's
// base URL ("http://127.0.0.1:8080").
func (s *Sessions) LoginURL(base string) string {
	return base + "/console/login?code=" + url.QueryEscape(s.NewLoginCode())
}

// redeem uses code up: true the first time, within its lifetime.
func (s *Sessions) redeem(code string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.codes[code]
	delete(s.codes, code)
	return ok && !s.now().After(exp)
}

// start opens a session and gives the browser its cookie: HttpOnly (no
// script reads it) and SameSite=Strict (no other site's page or link sends
// it).
func (s *Sessions) start(w http.ResponseWriter) {
	id := randomString()
	exp := s.now().Add(sessionTTL)
	s.mu.Lock()
	if s.sessions == nil {
		s.sessions = map[string]session{}
	}
	s.sessions[id] = session{csrf: randomString(), expires: exp}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", Expires: exp,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// end closes the request's session and clears the browser's cookie.
func (s *Sessions) end(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// lookup is the request's live session.
func (s *Sessions) lookup(r *http.Request) (session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[c.Value]
	if ok && s.now().After(ss.expires) {
		delete(s.sessions, c.Value)
		return session{}, false
	}
	return ss, ok
}

// Authorize admits a request on the strength of its session cookie: nil
// when it carries a live session and, unless it only reads (GET, HEAD),
// the session's CSRF token, and nothing says it comes from another site
// (Origin, Sec-Fetch-Site).
func (s *Sessions) Authorize(r *http.Request) error {
	ss, ok := s.lookup(r)
	if !ok {
		return ErrNoSession
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			return ErrCrossSite
		}
		return nil
	}
	if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(ss.csrf)) != 1 {
		return ErrCrossSite
	}
	return nil
}

// sameOrigin: the request's Origin, when the browser sent one, is the
// engine's own, and the browser does not say it is cross-site.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
