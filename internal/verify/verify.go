// Package verify answers the relay's "may this key be used, and charge it"
// (API.md "Verify and consume"): the Verifier runs the ordered checks of the
// contract over the DynamoDB store, and Handler is its Lambda Invoke face.
//
// DynamoDB work per verify: a key's first use in a container reads its
// lookup item (GetItem); every verify then reads the token and its user's
// meta item in one strongly consistent BatchGetItem. A consume, a settle, a
// refund and an rpm_limit count are one conditional UpdateItem (together
// when both apply); a verify with no write touches accessed_time at most
// once per key per minute. A malformed key makes no request.
package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// DefaultCacheSize bounds the key -> token mapping cache of a Verifier.
const DefaultCacheSize = 10_000

// maxChecks bounds the check-and-write rounds of one verify: a round is
// repeated only when a concurrent change made the write's condition fail.
const maxChecks = 16

// Answer is the verify answer of the contract.
type Answer struct {
	Valid             bool       `json:"valid"`
	Token             *TokenView `json:"token,omitempty"`
	Charged           *int64     `json:"charged,omitempty"`
	Shortfall         *int64     `json:"shortfall,omitempty"`
	Code              string     `json:"code,omitempty"`
	Message           string     `json:"message,omitempty"`
	RetryAfterSeconds int64      `json:"retry_after_seconds,omitempty"`
}

// TokenView is the token of a valid answer.
type TokenView struct {
	ID                 int64        `json:"id"`
	UserID             string       `json:"user_id"`
	Name               string       `json:"name"`
	Group              string       `json:"group"`
	Status             token.Status `json:"status"`
	RemainQuota        int64        `json:"remain_quota"`
	UsedQuota          int64        `json:"used_quota"`
	UnlimitedQuota     bool         `json:"unlimited_quota"`
	ModelLimitsEnabled bool         `json:"model_limits_enabled"`
	ModelLimits        string       `json:"model_limits"`
	ExpiredTime        int64        `json:"expired_time"`
	RPMLimit           int64        `json:"rpm_limit"`
}

// Refused is the answer of a refused verify with code.
func Refused(code string) Answer {
	return Answer{Code: code, Message: api.Message(code, api.LangZH)}
}

func valid(t token.Token, now time.Time) Answer {
	return Answer{Valid: true, Token: &TokenView{
		ID:                 t.ID,
		UserID:             t.UserID,
		Name:               t.Name,
		Group:              t.Group,
		Status:             t.EffectiveStatus(now),
		RemainQuota:        t.RemainQuota,
		UsedQuota:          t.UsedQuota,
		UnlimitedQuota:     t.UnlimitedQuota,
		ModelLimitsEnabled: t.ModelLimitsEnabled,
		ModelLimits:        t.ModelLimitsString(),
		ExpiredTime:        t.ExpiredTime,
		RPMLimit:           t.RPMLimit,
	}}
}

// Verifier answers verify requests. It caches, per container, the key ->
// (user, token) mapping, which never changes; each verify still reads the
// token and confirms its key hash, so a deleted or rotated-out key fails
// at once. Status, limits and quota are never cached. Safe for concurrent use.
type Verifier struct {
	store *dynamo.Store
	cache *mappingCache
}

// New returns a Verifier over store caching at most cacheSize mappings
// (DefaultCacheSize when cacheSize <= 0).
func New(store *dynamo.Store, cacheSize int) *Verifier {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Verifier{store: store, cache: newMappingCache(cacheSize)}
}

// Verify answers req at now. A refusal is an Answer; the error is only for
// a store failure (the relay retries), never a refusal.
func (v *Verifier) Verify(ctx context.Context, req token.VerifyRequest, now time.Time) (Answer, error) {
	if req.CheckConsume() != nil {
		return Refused(token.VerifyInvalidRequest), nil
	}
	key, err := token.ParseKey(req.Key)
	if err != nil {
		return Refused(token.VerifyNotFound), nil
	}
	hash := token.HashKey(key)
	ref, cached := v.cache.get(hash)
	if !cached {
		ref.userID, ref.tokenID, err = v.store.LookupKey(ctx, hash, now)
		if isNotFound(err) {
			return Refused(token.VerifyNotFound), nil
		}
		if err != nil {
			return Answer{}, fmt.Errorf("verify: %w", err)
		}
	}
	st, err := v.store.ReadForVerify(ctx, ref.userID, ref.tokenID)
	// The token's key hashes confirm the mapping: its current key, or the
	// key a rotation replaced while its grace window lasts.
	if isNotFound(err) || (err == nil && !st.Token.AcceptsKeyHash(hash, now)) {
		v.cache.remove(hash)
		return Refused(token.VerifyNotFound), nil
	}
	if err != nil {
		return Answer{}, fmt.Errorf("verify: %w", err)
	}
	if !cached {
		v.cache.put(hash, ref)
	}

	var a Answer
	switch req.Kind() {
	case token.KindSettle:
		a, err = v.settle(ctx, st, hash, req.Consume, now)
	case token.KindRefund:
		a, err = v.refund(ctx, st, hash, -req.Consume, now)
	default:
		a, err = v.check(ctx, st, hash, req, now)
	}
	if isNotFound(err) {
		v.cache.remove(hash)
		return Refused(token.VerifyNotFound), nil
	}
	if err != nil {
		return Answer{}, fmt.Errorf("verify: %w", err)
	}
	return a, nil
}

// check runs the ordered checks on st (found by the key with keyHash) and,
// when they pass, the one conditional write that charges req.Consume and
// counts the rpm window, again on a fresh read, after a short jittered
// pause, when the write finds the token changed.
//
// The rpm window counted in is now's minute, or the stored one when it is
// later (another container's clock is slightly ahead and opened it): the
// window never moves back, and its count limits this verify too.
func (v *Verifier) check(ctx context.Context, st dynamo.VerifyState, keyHash string, req token.VerifyRequest, now time.Time) (Answer, error) {
	window := token.MinuteStart(now)
	for round := 1; ; round++ {
		t := st.Token
		if !t.AcceptsKeyHash(keyHash, now) {
			return Answer{}, token.ErrNotFound
		}
		if code := token.CheckUse(t, st.UserDisabled, req.Model, req.ClientIP, now); code != "" {
			return Refused(code), nil
		}
		if t.RPMLimit > 0 && st.RPMWindow >= window && st.RPMCount >= t.RPMLimit {
			a := Refused(token.VerifyRateLimited)
			a.RetryAfterSeconds = max(st.RPMWindow+60-now.Unix(), 1)
			return a, nil
		}
		if req.Consume > 0 && !t.UnlimitedQuota && t.RemainQuota < req.Consume {
			return Refused(token.VerifyInsufficientQuota), nil
		}
		if req.Consume == 0 && t.RPMLimit == 0 {
			// Nothing to charge or count: only keep accessed_time to the minute.
			if t.AccessedTime < window {
				if err := v.store.Touch(ctx, t.UserID, t.ID, t.KeyHash, now); err != nil {
					return Answer{}, err
				}
			}
			return valid(t, now), nil
		}
		next, err := v.store.Charge(ctx, st, dynamo.Charge{Consume: req.Consume, CountRate: t.RPMLimit > 0, KeyHash: keyHash}, now)
		if err == nil {
			return valid(next.Token, now), nil
		}
		var stale *dynamo.StaleError
		if !errors.As(err, &stale) {
			return Answer{}, err
		}
		if round >= maxChecks {
			return Answer{}, errors.New("verify: too many concurrent changes")
		}
		if err := pause(ctx, round); err != nil {
			return Answer{}, err
		}
		st = stale.Current
	}
}

// pause sleeps before check round n+1: a random time up to 1 ms << n,
// capped at 50 ms (full jitter), so that verifies racing on one token
// spread out; ctx's error if it ends first.
func pause(ctx context.Context, n int) error {
	ceiling := min(time.Millisecond<<min(n, 10), 50*time.Millisecond)
	t := time.NewTimer(rand.N(ceiling) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (v *Verifier) settle(ctx context.Context, st dynamo.VerifyState, keyHash string, amount int64, now time.Time) (Answer, error) {
	next, charged, shortfall, err := v.store.Settle(ctx, st, keyHash, amount, now)
	if err != nil {
		return Answer{}, err
	}
	a := valid(next.Token, now)
	a.Charged, a.Shortfall = &charged, &shortfall
	return a, nil
}

func (v *Verifier) refund(ctx context.Context, st dynamo.VerifyState, keyHash string, amount int64, now time.Time) (Answer, error) {
	next, err := v.store.Refund(ctx, st, keyHash, amount, now)
	if token.ErrorCode(err) == token.EInvalidRequest {
		return Refused(token.VerifyInvalidRequest), nil
	}
	if err != nil {
		return Answer{}, err
	}
	return valid(next.Token, now), nil
}

func isNotFound(err error) bool { return err != nil && token.ErrorCode(err) == token.ENotFound }

// tokenRef is where a key's token lives.
type tokenRef struct {
	userID  string
	tokenID int64
}

// mappingCache is a bounded map of key hash -> token. When full, an
// arbitrary entry makes room: the mapping is cheap to read again.
type mappingCache struct {
	mu   sync.Mutex
	max  int
	refs map[string]tokenRef
}

func newMappingCache(max int) *mappingCache {
	return &mappingCache{max: max, refs: make(map[string]tokenRef)}
}

func (c *mappingCache) get(hash string) (tokenRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.refs[hash]
	return r, ok
}

func (c *mappingCache) put(hash string, r tokenRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.refs[hash]; !ok && len(c.refs) >= c.max {
		for h := range c.refs {
			delete(c.refs, h)
			break
		}
	}
	c.refs[hash] = r
}

func (c *mappingCache) remove(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.refs, hash)
}
