// Package auth issues and verifies the mesh's bearer tokens (JWT, HS256, golang-jwt v5) and
// hashes passwords (bcrypt, x/crypto). It does no I/O: revocation lives in the store.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/themesh/mesh/pkg/mesh"
)

// MinSecretBytes is the shortest JWT secret accepted.
const MinSecretBytes = 32

// Issuer is the "iss" of every token the mesh issues.
const Issuer = "the-mesh"

// Claims are what a verified token says.
type Claims struct {
	ParticipantID string
	TokenID       string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	// Generation is the participant's token generation when the token was issued (the "gen"
	// claim; 0 when absent): a password change or "log out everywhere" raises the
	// participant's, and older tokens are refused.
	Generation int
}

// jwtClaims are the registered claims and the mesh's own.
type jwtClaims struct {
	jwt.RegisteredClaims
	Gen int `json:"gen,omitempty"`
}

// Tokens issues and verifies tokens with one secret.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	parser *jwt.Parser
}

// NewTokens makes a token issuer; secret must be at least MinSecretBytes long.
func NewTokens(secret []byte, ttl time.Duration) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: JWT secret is %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	if ttl <= 0 {
		return nil, errors.New("auth: token lifetime must be positive")
	}
	return &Tokens{
		secret: secret,
		ttl:    ttl,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// NewSecret makes a random secret, base64url-encoded, for a mesh that was given none.
func NewSecret() (string, error) {
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Issue makes a token of generation gen for a participant, valid from now for the issuer's
// lifetime.
func (t *Tokens) Issue(participantID string, gen int, now time.Time) (string, Claims, error) {
	c := Claims{
		ParticipantID: participantID,
		TokenID:       ulid.Make().String(),
		IssuedAt:      now.Truncate(time.Second),
		ExpiresAt:     now.Add(t.ttl).Truncate(time.Second),
		Generation:    gen,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   c.ParticipantID,
		ID:        c.TokenID,
		IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
		ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
	}, Gen: gen})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("auth: sign token: %w", err)
	}
	return s, c, nil
}

// Verify checks a token's signature, issuer and lifetime. Every failure is CodeUnauthorized.
func (t *Tokens) Verify(token string) (Claims, error) {
	var jc jwtClaims
	_, err := t.parser.ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return t.secret, nil })
	rc := jc.RegisteredClaims
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, mesh.Errorf(mesh.CodeUnauthorized, "token expired")
		}
		return Claims{}, mesh.Errorf(mesh.CodeUnauthorized, "invalid token")
	}
	if rc.Subject == "" || rc.ID == "" || jc.Gen < 0 {
		return Claims{}, mesh.Errorf(mesh.CodeUnauthorized, "invalid token")
	}
	return Claims{
		ParticipantID: rc.Subject,
		TokenID:       rc.ID,
		IssuedAt:      rc.IssuedAt.Time,
		ExpiresAt:     rc.ExpiresAt.Time,
		Generation:    jc.Gen,
	}, nil
}

// HashPassword hashes a password with bcrypt at cost (bcrypt.DefaultCost when 0).
func HashPassword(password string, cost int) ([]byte, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: hash password: %w", err)
	}
	return h, nil
}

// CheckPassword reports whether password matches hash.
func CheckPassword(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// dummyHashes are compared against when an account does not exist (one per cost), so that a
// wrong email and a wrong password take the same time.
var dummyHashes sync.Map // int -> []byte

// CheckNoAccount spends about the time CheckPassword would, and reports false.
func CheckNoAccount(password string, cost int) bool {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, ok := dummyHashes.Load(cost)
	if !ok {
		b, err := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
		if err != nil {
			return false
		}
		h, _ = dummyHashes.LoadOrStore(cost, b)
	}
	_ = bcrypt.CompareHashAndPassword(h.([]byte), []byte(password))
	return false
}
