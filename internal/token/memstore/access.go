package memstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmgw/token-service/internal/auth"
)

// PutAccessToken stores the hash of a new user access token for p. It never
// replaces an existing one.
func (s *Store) PutAccessToken(ctx context.Context, hash string, p auth.Principal) error {
	if hash == "" {
		return errors.New("put access token: empty hash")
	}
	if err := checkUser(p.UserID); err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	if p.Role != auth.RoleUser && p.Role != auth.RoleAdmin {
		return fmt.Errorf("put access token: unknown role %q", p.Role)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.access[hash]; ok {
		return errors.New("put access token: an access token with this hash exists")
	}
	s.access[hash] = p
	return nil
}

// LookupAccessToken returns the principal of the access token with hash:
// auth.ErrUnknown for an unknown or revoked one, auth.ErrDisabled for a
// disabled user's.
func (s *Store) LookupAccessToken(ctx context.Context, hash string) (auth.Principal, error) {
	if err := ctx.Err(); err != nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.access[hash]
	if !ok {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	if u := s.users[p.UserID]; u != nil && u.disabled {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrDisabled)
	}
	return p, nil
}

// RevokeAccessToken deletes the access token with hash; an unknown hash is
// not an error.
func (s *Store) RevokeAccessToken(ctx context.Context, hash string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.access, hash)
	return nil
}

// SetUserDisabled sets the user's disabled flag (cmd/admin disable-user):
// a disabled user's access tokens are refused.
func (s *Store) SetUserDisabled(ctx context.Context, userID string, disabled bool) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user(userID, true).disabled = disabled
	return nil
}
