// Package verify answers the relay's "may this key be used, and charge it"
// (README "Verify and consume: the relay's call"): the Verifier runs the
// ordered checks of the contract over a token.Ledger, and Handler is its
// Lambda Invoke face.
//
// DynamoDB work per verify (token/dynamo's Ledger): a key's first use in a
// container reads its lookup item (GetItem); every verify then reads the
// token and its user's meta item in one strongly consistent BatchGetItem.
// A consume, a settle, a refund and an rpm_limit count are one conditional
// UpdateItem (together when both apply); a verify with no write touches
// accessed_time at most once per key per minute. A malformed key makes no
// request.
package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/llmgw/token-service/internal/message"
	"github.com/llmgw/token-service/internal/token"
)

// DefaultCacheSize bounds the key -> token mapping cache of a Verifier.
const DefaultCacheSize = 10_000

// maxRounds bounds the decide-and-write rounds of one verify, settle or
// refund: a round is repeated only when a concurrent change made the
// write's condition fail.
const maxRounds = 16

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
	return Answer{Code: code, Message: message.Text(code, message.ZH)}
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
	ledger token.Ledger
	cache  *mappingCache
}

// New returns a Verifier over ledger caching at most cacheSize mappings
// (DefaultCacheSize when cacheSize <= 0).
func New(ledger token.Ledger, cacheSize int) *Verifier {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Verifier{ledger: ledger, cache: newMappingCache(cacheSize)}
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
		ref.userID, ref.tokenID, err = v.ledger.LookupKey(ctx, hash, now)
		if isNotFound(err) {
			return Refused(token.VerifyNotFound), nil
		}
		if err != nil {
			return Answer{}, fmt.Errorf("verify: %w", err)
		}
	}
	st, err := v.ledger.ReadForVerify(ctx, ref.userID, ref.tokenID)
	var a Answer
	if err == nil {
		if !cached {
			// Confirmed by decide's key check, or removed below.
			v.cache.put(hash, ref)
		}
		a, err = v.decide(ctx, st, hash, req, now)
	}
	if isNotFound(err) {
		// Deleted, or its key rotated out: the mapping is stale.
		v.cache.remove(hash)
		return Refused(token.VerifyNotFound), nil
	}
	if err != nil {
		return Answer{}, fmt.Errorf("verify: %w", err)
	}
	return a, nil
}

// decide answers req on st, the token of the key with keyHash as read, and
// makes the one conditional write the answer needs, if any: the one loop
// of every kind of verify. A round checks the key (the token's current
// one, or the one a rotation replaced while its grace lasts: ErrNotFound
// otherwise), decides, and writes; when the write finds the token changed
// since it was read, the next round decides again on the token as it is
// now, after a short jittered pause.
//
//   - A check runs the ordered checks of the contract, then charges
//     req.Consume and counts the rpm window in one write; with nothing to
//     charge or count it only keeps accessed_time to the minute. The rpm
//     window counted in is now's minute, or the stored one when it is later
//     (another container's clock is slightly ahead and opened it): the
//     window never moves back, and its count limits this verify too.
//   - A settle skips the checks and charges what fits (SettleAmounts);
//     with nothing that fits it writes nothing.
//   - A refund skips the checks and needs used_quota to hold the amount,
//     else invalid_request and nothing changes.
func (v *Verifier) decide(ctx context.Context, st token.VerifyState, keyHash string, req token.VerifyRequest, now time.Time) (Answer, error) {
	kind := req.Kind()
	window := token.MinuteStart(now)
	for round := 1; ; round++ {
		t := st.Token
		if !t.AcceptsKeyHash(keyHash, now) {
			return Answer{}, token.ErrNotFound
		}
		var (
			next               token.VerifyState
			written            bool
			charged, shortfall int64
			err                error
		)
		switch kind {
		case token.KindSettle:
			charged, shortfall = token.SettleAmounts(t, req.Consume)
			if charged == 0 {
				// Nothing to write: no quota left.
				return settled(t, 0, shortfall, now), nil
			}
			next, written, err = v.ledger.Settle(ctx, st, token.Settlement{KeyHash: keyHash, Charged: charged, Shortfall: shortfall}, now)
		case token.KindRefund:
			if t.UsedQuota < -req.Consume {
				return Refused(token.VerifyInvalidRequest), nil
			}
			next, written, err = v.ledger.Refund(ctx, st, keyHash, -req.Consume, now)
		default:
			if a, refused := check(st, req, now, window); refused {
				return a, nil
			}
			if req.Consume == 0 && t.RPMLimit == 0 {
				// Nothing to charge or count: only keep accessed_time to the minute.
				if t.AccessedTime < window {
					if err := v.ledger.Touch(ctx, t.UserID, t.ID, t.KeyHash, now); err != nil {
						return Answer{}, err
					}
				}
				return valid(t, now), nil
			}
			next, written, err = v.ledger.Charge(ctx, st, token.Charge{KeyHash: keyHash, Consume: req.Consume, CountRate: t.RPMLimit > 0}, now)
		}
		switch {
		case err != nil:
			return Answer{}, err
		case written && kind == token.KindSettle:
			return settled(next.Token, charged, shortfall, now), nil
		case written:
			return valid(next.Token, now), nil
		case round >= maxRounds:
			return Answer{}, errors.New("too many concurrent changes")
		}
		if err := pause(ctx, round); err != nil {
			return Answer{}, err
		}
		st = next
	}
}

// check runs the ordered checks of a verify on st at now, window being
// now's minute: the refusal, or refused false when the token may be used.
func check(st token.VerifyState, req token.VerifyRequest, now time.Time, window int64) (a Answer, refused bool) {
	t := st.Token
	if code := token.CheckUse(t, st.UserDisabled, req.Model, req.ClientIP, now); code != "" {
		return Refused(code), true
	}
	if t.RPMLimit > 0 && st.RPMWindow >= window && st.RPMCount >= t.RPMLimit {
		a := Refused(token.VerifyRateLimited)
		a.RetryAfterSeconds = max(st.RPMWindow+60-now.Unix(), 1)
		return a, true
	}
	if req.Consume > 0 && !t.UnlimitedQuota && t.RemainQuota < req.Consume {
		return Refused(token.VerifyInsufficientQuota), true
	}
	return Answer{}, false
}

// settled is the answer of a settle that charged charged of t's quota and
// could not charge shortfall.
func settled(t token.Token, charged, shortfall int64, now time.Time) Answer {
	a := valid(t, now)
	a.Charged, a.Shortfall = &charged, &shortfall
	return a
}

// pause sleeps before round n+1: a random time up to 1 ms << n, capped at
// 50 ms (full jitter), so that verifies racing on one token spread out;
// ctx's error if it ends first.
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
