package memstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// RevealKey counts one reveal against limit per clock minute, then returns
// the token with its full key, whatever its status.
func (s *Store) RevealKey(ctx context.Context, userID string, id int64, limit int, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.countReveal(userID, limit, now); err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	it, ok := s.token(userID, id)
	if !ok {
		return token.Token{}, fmt.Errorf("reveal key: %w", token.ErrNotFound)
	}
	t, err := s.open(ctx, it)
	if err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	return t, nil
}

// RevealKeys counts the batch as one reveal, then returns the user's tokens
// among ids, in the order of ids, with their full keys.
func (s *Store) RevealKeys(ctx context.Context, userID string, ids []int64, limit int, now time.Time) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	ids, err := token.UniqueIDs(ids)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.countReveal(userID, limit, now); err != nil {
		if errors.Is(err, errNoUser) {
			return []token.Token{}, nil
		}
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	out := make([]token.Token, 0, len(ids))
	for _, id := range ids {
		it, ok := s.token(userID, id)
		if !ok {
			continue
		}
		t, err := s.open(ctx, it)
		if err != nil {
			return nil, fmt.Errorf("reveal keys: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// errNoUser is countReveal's answer for a user the store has never seen,
// who has no token to reveal (nothing is counted).
var errNoUser = fmt.Errorf("no such user: %w", token.ErrNotFound)

// countReveal counts one reveal of userID against limit in the window of
// now's clock minute, or in a later window already open (a clock behind
// another's never moves the window back). Over the limit it is a
// *token.RateLimitError and nothing is counted. limit <= 0 counts nothing.
// The caller holds s.mu.
func (s *Store) countReveal(userID string, limit int, now time.Time) error {
	if limit <= 0 {
		return nil
	}
	u := s.users[userID]
	if u == nil {
		return errNoUser
	}
	window := token.MinuteStart(now)
	switch {
	case u.revealWindow < window:
		u.revealWindow, u.revealCount = window, 1
	case u.revealCount < int64(limit):
		u.revealCount++
	case u.revealWindow == window:
		return &token.RateLimitError{RetryAfter: token.RetryAfter(now)}
	default:
		return &token.RateLimitError{RetryAfter: max(u.revealWindow-now.Unix(), 1)}
	}
	return nil
}

// Rotate gives the token key in place of its own. With a grace of a second
// or more the replaced key keeps its lookup until now+grace; without, its
// lookup goes at once. A key rotated out earlier loses its lookup: only the
// latest replaced key keeps verifying. Calls are serialised, so no rotation
// ever sees another between its read and its write. A key that already
// names a token, this one included, is refused.
func (s *Store) Rotate(ctx context.Context, userID string, id int64, key string, grace time.Duration, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("rotate key: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if grace < 0 || grace > token.MaxGraceSeconds*time.Second {
		return token.Token{}, token.Errorf(token.EInvalidGrace, "0 to %d seconds", token.MaxGraceSeconds)
	}
	key, err := token.ParseKey(key)
	if err != nil {
		return token.Token{}, fmt.Errorf("rotate key: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, fmt.Errorf("rotate key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.token(userID, id)
	if !ok {
		return token.Token{}, fmt.Errorf("rotate key: %w", token.ErrNotFound)
	}
	oldHash, newHash := it.tok.KeyHash, token.HashKey(key)
	if _, taken := s.lookups[newHash]; taken {
		return token.Token{}, fmt.Errorf("rotate key: %w", errKeyTaken)
	}
	old, ok := s.lookups[oldHash]
	if !ok && grace >= time.Second {
		return token.Token{}, errors.New("rotate key: the replaced key has no lookup")
	}
	sealed, err := s.sealer.Seal(ctx, []byte(key), sealAAD(userID, id))
	if err != nil {
		return token.Token{}, fmt.Errorf("rotate key: seal key: %w", err)
	}

	t := clone(it.tok)
	if prev := t.PrevKeyHash; prev != "" && prev != oldHash && prev != newHash {
		delete(s.lookups, prev)
	}
	t.KeyHash, t.KeyMask = newHash, token.MaskKey(key)
	t.PrevKeyHash, t.PrevKeyExpires = "", 0
	if grace >= time.Second {
		expires := now.Unix() + int64(grace/time.Second)
		old.expiresAt = expires
		s.lookups[oldHash] = old
		t.PrevKeyHash, t.PrevKeyExpires = oldHash, expires
	} else {
		delete(s.lookups, oldHash)
	}
	s.lookups[newHash] = lookup{userID: userID, tokenID: id}
	it.tok, it.sealed = t, sealed
	t = clone(t)
	t.Key = key
	return t, nil
}

// LookupKey maps a key hash to its token at now: ErrNotFound for an
// unknown key, and for a rotated-out key whose grace has ended. The caller
// confirms the mapping with Token.AcceptsKeyHash.
func (s *Store) LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error) {
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("look up key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lookups[keyHash]
	if !ok || (l.expiresAt != 0 && now.Unix() >= l.expiresAt) {
		return "", 0, fmt.Errorf("look up key: %w", token.ErrNotFound)
	}
	return l.userID, l.tokenID, nil
}
