package dcs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokenStore: a token is refused when wrong, expired, for another
// role, bound to another name or used; a failed join leaves it usable by
// the same name; nothing but a hash of the secret is stored.
func TestTokenStore(t *testing.T) {
	s := TokenStore{Dir: t.TempDir()}
	tok, _, err := s.Create(RoleWitness, time.Hour, strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ParseToken(tok.String()); err != nil || p != tok {
		t.Fatalf("parse %s: %+v %v", tok, p, err)
	}
	raw, _ := os.ReadFile(filepath.Join(s.Dir, "tokens.json"))
	if strings.Contains(string(raw), tok.Secret) {
		t.Fatal("the secret is stored in the clear")
	}
	if fi, _ := os.Stat(filepath.Join(s.Dir, "tokens.json")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens.json is %v", fi.Mode())
	}
	if err := s.Reserve(tok.ID, strings.Repeat("0", 32), "w", RoleWitness); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := s.Reserve(tok.ID, tok.Secret, "w", RoleData); err == nil || !strings.Contains(err.Error(), "admits a witness member, not a data one") {
		t.Fatalf("wrong role: %v", err)
	}
	if err := s.Reserve(tok.ID, tok.Secret, "w", RoleWitness); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(tok.ID, tok.Secret, "w", RoleWitness); err != nil {
		t.Fatalf("the same name again (a failed join): %v", err)
	}
	if err := s.Reserve(tok.ID, tok.Secret, "x", RoleWitness); err == nil || !strings.Contains(err.Error(), "member w's certificates") {
		t.Fatalf("another name: %v", err)
	}
	if err := s.Consume(tok.ID, "w"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(tok.ID, tok.Secret, "w", RoleWitness); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("reused: %v", err)
	}

	old, _, err := s.Create(RoleData, time.Hour, strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	s.update(func(ts map[string]*storedToken) (bool, error) {
		ts[old.ID].Expires = time.Now().Add(-time.Minute)
		return true, nil
	})
	if err := s.Reserve(old.ID, old.Secret, "d", RoleData); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	for _, bad := range []string{"", "pgherd1.", "pgherd1.a.b.c", "x" + tok.String(), strings.Replace(tok.String(), tok.ID, "zzzzzzzzzzzzzzzz", 1)} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
	if _, _, err := s.Create("admin", time.Hour, ""); err == nil {
		t.Error("a token for role admin was made")
	}
	var ts map[string]storedToken
	raw, _ = os.ReadFile(filepath.Join(s.Dir, "tokens.json"))
	if err := json.Unmarshal(raw, &ts); err != nil || len(ts) != 2 {
		t.Fatalf("tokens.json: %v %s", err, raw)
	}
}
