package memstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Create stores tokens for userID with the next ids, their keys sealed and
// looked up by hash, all or nothing.
func (s *Store) Create(ctx context.Context, userID string, tokens []token.Token) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	n := len(tokens)
	if n < 1 || n > token.MaxCount {
		return nil, token.Errorf(token.EInvalidCount, "1 to %d", token.MaxCount)
	}
	prepared := make([]token.Token, n)
	hashes := make(map[string]bool, n)
	for i, t := range tokens {
		key, err := token.ParseKey(t.Key)
		if err != nil {
			return nil, fmt.Errorf("create token: token %d: %w", i, err)
		}
		t = clone(t)
		t.UserID, t.Key, t.KeyHash, t.KeyMask = userID, key, token.HashKey(key), token.MaskKey(key)
		t.PrevKeyHash, t.PrevKeyExpires = "", 0
		if hashes[t.KeyHash] {
			return nil, fmt.Errorf("create token: token %d: %w", i, errKeyTaken)
		}
		hashes[t.KeyHash] = true
		prepared[i] = t
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	count, lastID := 0, int64(0)
	if u != nil {
		count, lastID = len(u.tokens), u.lastID
	}
	if count+n > s.limit {
		return nil, fmt.Errorf("create token: %w", token.ErrLimitReached)
	}
	for i, t := range prepared {
		if _, taken := s.lookups[t.KeyHash]; taken {
			return nil, fmt.Errorf("create token: token %d: %w", i, errKeyTaken)
		}
	}
	items := make([]*item, n)
	created := make([]token.Token, n)
	for i, t := range prepared {
		t.ID = lastID + int64(i) + 1
		sealed, err := s.sealer.Seal(ctx, []byte(t.Key), sealAAD(userID, t.ID))
		if err != nil {
			return nil, fmt.Errorf("create token: seal key: %w", err)
		}
		created[i] = clone(t)
		t.Key = ""
		items[i] = &item{tok: t, sealed: sealed}
	}
	u = s.user(userID, true)
	for _, it := range items {
		u.tokens[it.tok.ID] = it
		s.lookups[it.tok.KeyHash] = lookup{userID: userID, tokenID: it.tok.ID}
	}
	u.lastID = lastID + int64(n)
	return created, nil
}

// errKeyTaken refuses a key that already names a token: a key collision,
// never retried.
var errKeyTaken = errors.New("a token with this key exists")

// Get returns one token, its key masked.
func (s *Store) Get(ctx context.Context, userID string, id int64) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("get token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, fmt.Errorf("get token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.token(userID, id)
	if !ok {
		return token.Token{}, fmt.Errorf("get token: %w", token.ErrNotFound)
	}
	return clone(it.tok), nil
}

// GetWithUser returns one token and its user's disabled flag, read
// together as the DynamoDB store reads them. ErrNotFound.
func (s *Store) GetWithUser(ctx context.Context, userID string, id int64) (token.Token, bool, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.token(userID, id)
	if !ok {
		return token.Token{}, false, fmt.Errorf("get token with user: %w", token.ErrNotFound)
	}
	return clone(it.tok), s.users[userID].disabled, nil
}

// List returns page (1-based) of size tokens, newest first, and the
// user's token count.
func (s *Store) List(ctx context.Context, userID string, page, size int) (token.Page, error) {
	if err := checkUser(userID); err != nil {
		return token.Page{}, fmt.Errorf("list tokens: %w", err)
	}
	if page < 1 || size < 1 {
		return token.Page{}, token.Errorf(token.EInvalidRequest, "page and page size must be positive")
	}
	if err := ctx.Err(); err != nil {
		return token.Page{}, fmt.Errorf("list tokens: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	ids := u.newestFirst()
	res := token.Page{Items: []token.Token{}, Total: len(ids)}
	start := len(ids) // past the end, whatever page is (no overflow)
	if page-1 <= len(ids)/size {
		start = min((page-1)*size, len(ids))
	}
	for _, id := range ids[start:min(start+size, len(ids))] {
		res.Items = append(res.Items, clone(u.tokens[id].tok))
	}
	return res, nil
}

// Search returns up to limit of the user's tokens, newest first, whose
// name holds q.Keyword (any case) and whose key is q.Key (a whole key,
// through its lookup) or shows q.Key among the masked key's visible
// characters.
func (s *Store) Search(ctx context.Context, userID string, q token.SearchQuery, limit int) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("search tokens: %w", err)
	}
	if limit < 1 {
		return nil, token.Errorf(token.EInvalidRequest, "limit must be positive")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("search tokens: %w", err)
	}
	keyword := strings.ToLower(q.Keyword)
	nameMatches := func(t token.Token) bool {
		return strings.Contains(strings.ToLower(t.Name), keyword)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := []token.Token{}
	if key, err := token.KeyParser(q.AcceptLegacyKey)(q.Key); err == nil {
		// The key's lookup, confirmed by the token's own hash: a key of
		// another user, or one rotated out, is not found.
		hash := token.HashKey(key)
		l, ok := s.lookups[hash]
		if !ok || l.userID != userID {
			return found, nil
		}
		it, ok := s.token(userID, l.tokenID)
		if !ok || it.tok.KeyHash != hash || !nameMatches(it.tok) {
			return found, nil
		}
		return append(found, clone(it.tok)), nil
	}
	u := s.users[userID]
	for _, id := range u.newestFirst() {
		t := u.tokens[id].tok
		if nameMatches(t) && token.MatchesKeyFragment(t.KeyMask, q.Key) {
			if found = append(found, clone(t)); len(found) == limit {
				break
			}
		}
	}
	return found, nil
}

// Update applies p and returns the token after it. An enabling patch that
// would leave the token expired or exhausted at now changes nothing and
// answers ETokenExpired or ETokenExhausted.
func (s *Store) Update(ctx context.Context, userID string, id int64, p token.Patch, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("update token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if err := ctx.Err(); err != nil {
		return token.Token{}, fmt.Errorf("update token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.token(userID, id)
	if !ok {
		return token.Token{}, fmt.Errorf("update token: %w", token.ErrNotFound)
	}
	updated := clone(p.Apply(clone(it.tok)))
	if p.Status != nil && *p.Status == token.StatusEnabled {
		if err := updated.CheckEnable(now); err != nil {
			return token.Token{}, fmt.Errorf("update token: %w", err)
		}
	}
	it.tok = updated
	return clone(updated), nil
}

// Delete removes one token with its key lookups.
func (s *Store) Delete(ctx context.Context, userID string, id int64) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.remove(userID, id) {
		return fmt.Errorf("delete token: %w", token.ErrNotFound)
	}
	return nil
}

// DeleteMany removes the user's tokens among ids and returns how many it
// removed; ids the user does not own are skipped.
func (s *Store) DeleteMany(ctx context.Context, userID string, ids []int64) (int, error) {
	if err := checkUser(userID); err != nil {
		return 0, fmt.Errorf("delete tokens: %w", err)
	}
	ids, err := token.UniqueIDs(ids)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("delete tokens: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s.remove(userID, id) {
			n++
		}
	}
	return n, nil
}

// remove deletes the user's token id, the lookup of its key and that of a
// key rotated out of it, and reports whether it existed.
func (s *Store) remove(userID string, id int64) bool {
	it, ok := s.token(userID, id)
	if !ok {
		return false
	}
	delete(s.lookups, it.tok.KeyHash)
	if prev := it.tok.PrevKeyHash; prev != "" {
		delete(s.lookups, prev)
	}
	delete(s.users[userID].tokens, id)
	return true
}
