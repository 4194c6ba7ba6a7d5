package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Tokens is the store of the HTTP handlers (token.Store): a user's tokens
// created, read, listed, searched, updated and deleted, and a key's token
// found for the usage endpoint.
type Tokens struct {
	core *Core
	// sealer seals each new key at create.
	sealer token.Sealer
	limit  int
}

var _ token.Store = (*Tokens)(nil)

// NewTokens returns the token store over core. sealer seals the keys of new
// tokens (a function that creates none passes one that refuses);
// maxTokensPerUser caps a user's token count, 0 meaning
// token.DefaultMaxTokensPerUser.
func NewTokens(core *Core, sealer token.Sealer, maxTokensPerUser int) (*Tokens, error) {
	switch {
	case sealer == nil:
		return nil, errors.New("dynamo: no sealer")
	case maxTokensPerUser < 0:
		return nil, fmt.Errorf("dynamo: negative token limit %d", maxTokensPerUser)
	}
	if maxTokensPerUser == 0 {
		maxTokensPerUser = token.DefaultMaxTokensPerUser
	}
	return &Tokens{core: core, sealer: sealer, limit: maxTokensPerUser}, nil
}

// LookupKey maps a key hash to its token at now with one strongly
// consistent GetItem of the key lookup item, as Ledger.LookupKey does: the
// usage endpoint reads a key's token the way verify does.
func (s *Tokens) LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error) {
	return s.core.lookUpKey(ctx, keyHash, now)
}
