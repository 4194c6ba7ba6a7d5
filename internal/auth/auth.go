// Package auth holds user access tokens: the bearer tokens with which a user
// of the gateway calls the token API. A token is "at-" + 43 base64url
// characters (256 random bits); only its SHA-256 is stored, so the table never
// holds a usable access token.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

const (
	tokenPrefix  = "at-"
	tokenBodyLen = 43 // base64url (no padding) of 32 bytes
	// MaxUserIDLength bounds user ids so that keys stay small.
	MaxUserIDLength = 64
)

// Errors of the package.
var (
	// ErrMalformed is a string that cannot be an access token; no storage
	// call is needed to refuse it.
	ErrMalformed = errors.New("auth: malformed access token")
	// ErrUnknown is an access token the store does not know or a revoked one.
	ErrUnknown = errors.New("auth: unknown access token")
	// ErrDisabled is an active access token of a user an administrator
	// disabled (cmd/admin disable-user).
	ErrDisabled = errors.New("auth: user disabled")
)

// Principal is who an access token speaks for.
type Principal struct {
	UserID string
	Role   string
}

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// Store keeps access tokens by hash.
type Store interface {
	// PutAccessToken stores the hash of a new access token for p.
	PutAccessToken(ctx context.Context, hash string, p Principal) error
	// LookupAccessToken returns the principal of an active access token with
	// that hash, read strongly consistently. ErrUnknown; ErrDisabled when
	// the token's user is disabled.
	LookupAccessToken(ctx context.Context, hash string) (Principal, error)
	// RevokeAccessToken removes it; revoking an unknown hash is not an error.
	RevokeAccessToken(ctx context.Context, hash string) error
}

// NewAccessToken returns a fresh access token from crypto/rand.
func NewAccessToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ParseBearer takes an Authorization header value (read by
// ParseAuthorization) and returns the access token in it, or ErrMalformed
// when the header is not "Bearer <access token>" of the right shape.
// Legacy access tokens are not accepted: see Credentials.AccessToken.
func ParseBearer(header string) (string, error) {
	c, err := ParseAuthorization(header)
	if err != nil {
		return "", ErrMalformed
	}
	return c.AccessToken(false)
}

// WellFormed reports whether tok has the shape of an access token.
func WellFormed(tok string) bool {
	body, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(body) != tokenBodyLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(body)
	return err == nil
}

// Hash is what the store keeps of an access token.
func Hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// CheckUserID accepts 1..MaxUserIDLength characters of [A-Za-z0-9_.@-].
func CheckUserID(id string) error {
	if id == "" || len(id) > MaxUserIDLength {
		return errors.New("auth: user id must be 1 to 64 characters")
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '@' || c == '-'
		if !ok {
			return errors.New("auth: user id may hold only letters, digits, _ . @ -")
		}
	}
	return nil
}
