// Package memstore is an in-memory implementation of the token store
// interfaces: token.Store, token.KeyStore, the key lookup and token read
// of the usage endpoint and verify (LookupKey, GetWithUser), and
// auth.Store, with the user flag of cmd/admin (SetUserDisabled). It has the DynamoDB store's semantics, held
// to them by the contract suite in internal/token/storetest, which runs
// against both: per-user scoping, ids never reused, the per-user limit,
// keys kept only as hash, mask and sealed copy, the reveal limit, rotation
// with grace.
//
// It is test support: the HTTP handler and authorizer tests run on it
// without DynamoDB Local. No function may link it (tools/fence checks).
package memstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
)

// Config configures a Store.
type Config struct {
	// MaxTokensPerUser caps a user's token count; 0 means
	// token.DefaultMaxTokensPerUser.
	MaxTokensPerUser int
	// Sealer encrypts each stored key, bound to its user and token id; nil
	// means AES-256-GCM under a random key.
	Sealer token.Sealer
}

// Store keeps tokens, key lookups, user access tokens and user flags in
// memory. One mutex serialises every call, so concurrent calls see the
// exact counts a DynamoDB transaction keeps.
type Store struct {
	sealer token.Sealer
	limit  int

	mu      sync.Mutex
	users   map[string]*user          // by user id
	lookups map[string]lookup         // by key hash
	access  map[string]auth.Principal // by access token hash
}

var (
	_ token.Store    = (*Store)(nil)
	_ token.KeyStore = (*Store)(nil)
	_ auth.Store     = (*Store)(nil)
)

// user is what the DynamoDB store keeps on a user's meta item, and the
// user's tokens. A user exists from their first create (or a
// SetUserDisabled) on, even with no tokens left.
type user struct {
	tokens map[int64]*item
	lastID int64 // the last id issued; ids are never reused
	// disabled refuses the user's access tokens and keys.
	disabled bool
	// revealWindow (a minute start) and revealCount count reveals per minute.
	revealWindow, revealCount int64
}

// item is a stored token: Key always empty, the key only sealed.
type item struct {
	tok    token.Token
	sealed []byte
}

// lookup maps a key hash to its token. expiresAt (Unix seconds) is set on
// the lookup of a key rotated out with a grace window; from then on it is
// missing, as the DynamoDB store reads its TTL'd item.
type lookup struct {
	userID    string
	tokenID   int64
	expiresAt int64
}

// New returns an empty Store for cfg.
func New(cfg Config) (*Store, error) {
	limit := cfg.MaxTokensPerUser
	switch {
	case limit < 0:
		return nil, fmt.Errorf("memstore: negative token limit %d", limit)
	case limit == 0:
		limit = token.DefaultMaxTokensPerUser
	}
	sealer := cfg.Sealer
	if sealer == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("memstore: sealing key: %w", err)
		}
		s, err := seal.NewAESGCM(key)
		if err != nil {
			return nil, fmt.Errorf("memstore: %w", err)
		}
		sealer = s
	}
	return &Store{
		sealer:  sealer,
		limit:   limit,
		users:   map[string]*user{},
		lookups: map[string]lookup{},
		access:  map[string]auth.Principal{},
	}, nil
}

// Edit changes a stored token with f, behind the store's rules, as a test
// writing the DynamoDB item directly would: the key lookups, the count and
// the sealed key stay as they are, whatever f does to the hash. It reaches
// states the interfaces cannot (a used quota verify charged, a key hash
// that no longer matches its lookup). ErrNotFound.
func (s *Store) Edit(userID string, id int64, f func(*token.Token)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.token(userID, id)
	if !ok {
		return fmt.Errorf("edit token: %w", token.ErrNotFound)
	}
	t := clone(it.tok)
	f(&t)
	t.ID, t.UserID, t.Key = id, userID, ""
	it.tok = clone(t)
	return nil
}

// checkUser refuses a user id that could escape its key space, as the
// DynamoDB store does.
func checkUser(userID string) error {
	if err := auth.CheckUserID(userID); err != nil {
		return fmt.Errorf("invalid user id: %w", err)
	}
	return nil
}

// user returns the user's record, made when create is set; nil otherwise
// for a user the store has never seen.
func (s *Store) user(userID string, create bool) *user {
	u := s.users[userID]
	if u == nil && create {
		u = &user{tokens: map[int64]*item{}}
		s.users[userID] = u
	}
	return u
}

// token returns the user's stored token id.
func (s *Store) token(userID string, id int64) (*item, bool) {
	u := s.users[userID]
	if u == nil {
		return nil, false
	}
	it, ok := u.tokens[id]
	return it, ok
}

// newestFirst returns the user's token ids, highest first.
func (u *user) newestFirst() []int64 {
	if u == nil {
		return nil
	}
	ids := make([]int64, 0, len(u.tokens))
	for id := range u.tokens {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids
}

// sealAAD binds a sealed key to its user and token id.
func sealAAD(userID string, id int64) []byte {
	return []byte(userID + "\x00" + strconv.FormatInt(id, 10))
}

// open returns the token of it with its full key, checking that the
// sealed key is the one the token's hash names.
func (s *Store) open(ctx context.Context, it *item) (token.Token, error) {
	key, err := s.sealer.Open(ctx, it.sealed, sealAAD(it.tok.UserID, it.tok.ID))
	if err != nil {
		return token.Token{}, fmt.Errorf("open key of token %d: %w", it.tok.ID, err)
	}
	if token.HashKey(string(key)) != it.tok.KeyHash {
		return token.Token{}, fmt.Errorf("open key of token %d: %w", it.tok.ID, errKeyMismatch)
	}
	t := clone(it.tok)
	t.Key = string(key)
	return t, nil
}

var errKeyMismatch = errors.New("the sealed key does not match its hash")

// clone copies t's lists, reading an empty list as nil as every read of
// the DynamoDB store does.
func clone(t token.Token) token.Token {
	t.ModelLimits = cloneList(t.ModelLimits)
	t.AllowIPs = cloneList(t.AllowIPs)
	// Maps empty or nil read as nil, as the DynamoDB store reads them.
	t.Budgets = cloneMap(t.Budgets)
	t.Windows = cloneMap(t.Windows)
	return t
}

func cloneMap[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func cloneList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
