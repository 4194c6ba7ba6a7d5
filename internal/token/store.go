package token

import (
	"context"
	"time"
)

// Store keeps tokens. Every method is scoped to one user: a token of another
// user is indistinguishable from a token that does not exist (ErrNotFound).
// Implementations keep the per-user token count exact under concurrency and
// retry their own transaction conflicts, so concurrent calls fail only on
// their own merits.
type Store interface {
	// Create stores tokens (1..MaxCount, built by Spec.Tokens) for userID in
	// one transaction, assigning ids that userID has never used, and returns
	// them with their ids and full keys. ErrLimitReached when the user's
	// token count would pass the limit; nothing is stored then.
	Create(ctx context.Context, userID string, tokens []Token) ([]Token, error)

	// Get returns one token (key masked). ErrNotFound.
	Get(ctx context.Context, userID string, id int64) (Token, error)

	// List returns page (1-based) of size tokens, newest (highest id) first,
	// and the user's token count.
	List(ctx context.Context, userID string, page, size int) (Page, error)

	// Search returns up to limit tokens, newest first, whose name contains
	// q.Keyword (case-insensitive) and whose key matches q.Key (a whole key
	// exactly, or a fragment of the masked key's visible characters).
	Search(ctx context.Context, userID string, q SearchQuery, limit int) ([]Token, error)

	// Update applies p (already validated) in one conditional write and returns
	// the token as it is after it. When p enables the token and the token as
	// updated would read as expired or exhausted at now, nothing changes and
	// the error is ETokenExpired or ETokenExhausted. ErrNotFound. Budgets
	// follow Patch.Apply: a new limit keeps its window's state, 0 removes
	// the window with its state, and a BudgetTimezone other than the stored
	// one clears every window's state in the write that sets it.
	Update(ctx context.Context, userID string, id int64, p Patch, now time.Time) (Token, error)

	// Delete removes one token with its key lookup. ErrNotFound.
	Delete(ctx context.Context, userID string, id int64) error

	// DeleteMany removes the tokens of ids (deduplicated, at most
	// MaxBatchIDs) that userID owns and returns how many it removed; ids the
	// user does not own are skipped, not an error.
	DeleteMany(ctx context.Context, userID string, ids []int64) (int, error)
}

// Page is one page of a user's tokens and the user's token count.
type Page struct {
	Items []Token
	Total int
}

// Sealer encrypts keys at rest. aad binds a ciphertext to its item, so a
// sealed key copied to another item does not open.
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, ciphertext, aad []byte) ([]byte, error)
}

// Tokens builds the tokens a create of s makes for userID at now, each with a
// fresh key, enabled. s must have passed Rules.Validate. Ids are the store's.
func (s Spec) Tokens(userID string, now time.Time) ([]Token, error) {
	names := s.Names()
	out := make([]Token, len(names))
	for i, name := range names {
		key, err := NewKey()
		if err != nil {
			return nil, err
		}
		out[i] = Token{
			UserID:             userID,
			Name:               name,
			Key:                key,
			KeyMask:            MaskKey(key),
			KeyHash:            HashKey(key),
			Status:             StatusEnabled,
			RemainQuota:        s.RemainQuota,
			UnlimitedQuota:     s.UnlimitedQuota,
			ModelLimitsEnabled: s.ModelLimitsEnabled,
			ModelLimits:        s.ModelLimits,
			AllowIPs:           s.AllowIPs,
			Group:              s.Group,
			ExpiredTime:        s.ExpiredTime,
			RPMLimit:           s.RPMLimit,
			Budgets:            s.Budgets.clone(),
			BudgetTimezone:     s.BudgetTimezone,
			CreatedTime:        now.Unix(),
			AccessedTime:       0,
		}
	}
	return out, nil
}

// KeyStore reveals and rotates full keys: the operations that open or seal a
// key after its creation. Like Store, every method is scoped to one user.
type KeyStore interface {
	// RevealKey counts one reveal of userID against limit per clock minute
	// (a *RateLimitError when over it, nothing read then) and returns the
	// token with its full key, whatever its status. ErrNotFound.
	RevealKey(ctx context.Context, userID string, id int64, limit int, now time.Time) (Token, error)

	// RevealKeys counts one reveal (the whole batch) as RevealKey does and
	// returns the tokens among ids (deduplicated, at most MaxBatchIDs) that
	// userID owns, with their full keys; the others are left out.
	RevealKeys(ctx context.Context, userID string, ids []int64, limit int, now time.Time) ([]Token, error)

	// Rotate gives the token a new key (key, as NewKey makes it), keeping
	// everything else, in one transaction. With grace > 0 the old key keeps
	// verifying until now+grace; with 0 it stops at once. It returns the
	// token with its new full key. ErrNotFound. When another rotation
	// changed the key between this one's read and its write, this one
	// returns the token as that rotation left it, with that key: a second
	// rotation would revoke the key the other caller was just given.
	Rotate(ctx context.Context, userID string, id int64, key string, grace time.Duration, now time.Time) (Token, error)
}
