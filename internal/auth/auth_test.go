package auth

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
)

func TestTokenFileIsPrivateAndStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access-token")
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 || len(tok) < 40 {
		t.Fatalf("mode %v token %q", info.Mode().Perm(), tok)
	}
	again, _ := LoadOrCreateToken(path)
	if again != tok {
		t.Fatal("a second start changed the token")
	}
}

func TestTokenReview(t *testing.T) {
	id := Identity{Token: "ky.secret", User: DefaultUser}
	for tok, want := range map[string]bool{"ky.secret": true, "ky.other": false, "": false} {
		body, _ := json.Marshal(authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tok}})
		rec := httptest.NewRecorder()
		id.TokenReviewHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(string(body))))
		var review authnv1.TokenReview
		if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil {
			t.Fatal(err)
		}
		if review.Status.Authenticated != want || (want && review.Status.User.Username != DefaultUser) {
			t.Errorf("token %q: %+v", tok, review.Status)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer ky.secret")
	if !id.Valid(req) {
		t.Error("the engine's token is refused")
	}
	req.Header.Set("Authorization", "Bearer ky.secre")
	if id.Valid(req) || (Identity{}).Valid(req) {
		t.Error("a wrong token is accepted")
	}
}
