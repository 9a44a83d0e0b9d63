package auth

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/themesh/mesh/pkg/mesh"
)

func TestTokens(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tk, err := NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := tk.Issue("p1", 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.ParticipantID != "p1" || got.TokenID != c.TokenID || got.TokenID == "" || got.Generation != 3 {
		t.Fatalf("claims = %+v, issued %+v", got, c)
	}

	other, _ := NewTokens([]byte(strings.Repeat("x", 32)), time.Hour)
	expired, _ := NewTokens(secret, time.Second)
	old, _, _ := expired.Issue("p1", 0, time.Now().Add(-time.Hour))
	for name, bad := range map[string]string{
		"garbage":       "not.a.token",
		"empty":         "",
		"other secret":  mustIssue(t, other),
		"expired":       old,
		"alg none":      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJwMSIsImp0aSI6IngiLCJpc3MiOiJ0aGUtbWVzaCJ9.",
		"tampered body": tok[:len(tok)-2] + "xx",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tk.Verify(bad); !mesh.IsCode(err, mesh.CodeUnauthorized) {
				t.Fatalf("Verify(%q) = %v, want unauthorized", bad, err)
			}
		})
	}
	if _, err := NewTokens([]byte("short"), time.Hour); err == nil {
		t.Fatal("short secret accepted")
	}
}

func mustIssue(t *testing.T, tk *Tokens) string {
	t.Helper()
	s, _, err := tk.Issue("p1", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPasswords(t *testing.T) {
	h, err := HashPassword("correct horse", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, "correct horse") || CheckPassword(h, "wrong horse") {
		t.Fatal("password check wrong")
	}
	if CheckNoAccount("x", bcrypt.MinCost) {
		t.Fatal("CheckNoAccount must report false")
	}
	s, err := NewSecret()
	if err != nil || len(s) < MinSecretBytes {
		t.Fatalf("NewSecret = %q, %v", s, err)
	}
}
