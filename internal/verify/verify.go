// Package verify answers the relay's "may this key be used, and charge it"
// (README "Verify and consume: the relay's call"): the Verifier runs the
// ordered checks of the contract over a token.Ledger, and Handler is its
// Lambda Invoke face.
//
// DynamoDB work per verify (token/dynamo's Ledger): a key's first use in a
// container reads its lookup item (GetItem); every verify then reads the
// token and its user's meta item (and, with a request id, the id's record)
// in one strongly consistent BatchGetItem. A consume, a settle, a refund
// and an rpm_limit count are one conditional UpdateItem (together when both
// apply), which also checks and counts the token's spend windows; with a
// request id the write is one TransactWriteItems of the token and the
// record, and a duplicate writes nothing. A verify with no
// write touches accessed_time at most once per key per minute. A malformed
// key makes no request.
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

// Answer is the verify answer of the contract. Charged and Shortfall are
// a settle's; with a request id Charged is what the request costs in total
// after the event, Delta what the event charged (negative: gave back), and
// a duplicate's answer is the first one with Replayed set.
type Answer struct {
	Valid             bool       `json:"valid"`
	Token             *TokenView `json:"token,omitempty"`
	Charged           *int64     `json:"charged,omitempty"`
	Delta             *int64     `json:"delta,omitempty"`
	Shortfall         *int64     `json:"shortfall,omitempty"`
	Replayed          bool       `json:"replayed,omitempty"`
	Code              string     `json:"code,omitempty"`
	Message           string     `json:"message,omitempty"`
	RetryAfterSeconds int64      `json:"retry_after_seconds,omitempty"`
	// Period is the spend window that refused a budget_exceeded answer.
	Period token.Period `json:"period,omitempty"`
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
	// The spend windows, as every read of a token shows them: the limits
	// ({} when none), the zone as the user wrote it, and each window as of
	// the answer.
	Budgets        token.Budgets                      `json:"budgets"`
	BudgetTimezone string                             `json:"budget_timezone"`
	BudgetUsage    map[token.Period]token.BudgetUsage `json:"budget_usage"`
}

// Refused is the answer of a refused verify with code.
func Refused(code string) Answer {
	return Answer{Code: code, Message: message.Text(code, message.ZH)}
}

func (v *Verifier) valid(t token.Token, now time.Time) Answer {
	return Answer{Valid: true, Token: v.withBudgets(&TokenView{
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
	}, t, now)}
}

// withBudgets sets on view t's spend windows as of now, in t's zone or
// v's default.
func (v *Verifier) withBudgets(view *TokenView, t token.Token, now time.Time) *TokenView {
	view.Budgets = t.Budgets
	if view.Budgets == nil {
		view.Budgets = token.Budgets{}
	}
	view.BudgetTimezone = t.BudgetTimezone
	view.BudgetUsage = t.BudgetUsage(now, v.zone)
	return view
}

// Verifier answers verify requests. It caches, per container, the key ->
// (user, token) mapping, which never changes; each verify still reads the
// token and confirms its key hash, so a deleted or rotated-out key fails
// at once. Status, limits and quota are never cached. Safe for concurrent use.
type Verifier struct {
	ledger token.Ledger
	cache  *mappingCache
	// legacyKeys admits keys without a checksum (AcceptLegacyKeys).
	legacyKeys bool
	// recordLifetime is how long a request record lasts after its last
	// write (RecordLifetime).
	recordLifetime time.Duration
	// zone is the deployment's default zone of spend windows (BudgetZone).
	zone *time.Location
}

// New returns a Verifier over ledger caching at most cacheSize mappings
// (DefaultCacheSize when cacheSize <= 0).
func New(ledger token.Ledger, cacheSize int) *Verifier {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Verifier{ledger: ledger, cache: newMappingCache(cacheSize), recordLifetime: token.DefaultRequestRecordSeconds * time.Second, zone: time.UTC}
}

// BudgetZone sets the zone in which v computes the spend windows of
// tokens that name no budget_timezone (template parameter BudgetTimezone;
// nil keeps UTC). Call it before v serves.
func (v *Verifier) BudgetZone(loc *time.Location) *Verifier {
	if loc != nil {
		v.zone = loc
	}
	return v
}

// RecordLifetime sets how long a request id's record lasts after its last
// write (template parameter RequestRecordSeconds; d > 0, else the default
// of 7 days stays). Call it before v serves.
func (v *Verifier) RecordLifetime(d time.Duration) *Verifier {
	if d > 0 {
		v.recordLifetime = d
	}
	return v
}

// AcceptLegacyKeys makes v look up, when accept is set (template parameter
// AcceptLegacyKeys), a key of the right shape whose checksum fails (the
// keys cmd/admin import brings from new-api and one-api), instead of
// answering not_found without a read. Call it before v serves.
func (v *Verifier) AcceptLegacyKeys(accept bool) *Verifier {
	v.legacyKeys = accept
	return v
}

// Verify answers req at now. A refusal is an Answer; the error is only for
// a store failure (the relay retries), never a refusal.
func (v *Verifier) Verify(ctx context.Context, req token.VerifyRequest, now time.Time) (Answer, error) {
	if req.CheckConsume() != nil {
		return Refused(token.VerifyInvalidRequest), nil
	}
	key, err := token.KeyParser(v.legacyKeys)(req.Key)
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
	var requestID string
	if req.HasRequest() {
		requestID = req.RequestID
	}
	st, err := v.ledger.ReadForVerify(ctx, ref.userID, ref.tokenID, requestID)
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
// otherwise), decides (plan), and writes; when the write finds the token
// or the request record changed since they were read, the next round
// decides again on them as they are now, after a short jittered pause.
func (v *Verifier) decide(ctx context.Context, st token.VerifyState, keyHash string, req token.VerifyRequest, now time.Time) (Answer, error) {
	window := token.MinuteStart(now)
	for round := 1; ; round++ {
		if !st.Token.AcceptsKeyHash(keyHash, now) {
			return Answer{}, token.ErrNotFound
		}
		p := v.plan(st, keyHash, req, now, window)
		if p.write == nil {
			if p.touch {
				t := st.Token
				if err := v.ledger.Touch(ctx, t.UserID, t.ID, keyHash, now); err != nil {
					return Answer{}, err
				}
			}
			return p.answer, nil
		}
		next, written, err := v.ledger.Write(ctx, st, *p.write, now)
		switch {
		case err != nil:
			return Answer{}, err
		case written:
			return v.answered(p, next, now), nil
		case round >= maxRounds:
			return Answer{}, errors.New("too many concurrent changes")
		}
		if err := pause(ctx, round); err != nil {
			return Answer{}, err
		}
		st = next
	}
}

// decision is what a round decided: an answer with no write (a refusal, a
// duplicate, nothing to write; touch when accessed_time is a minute old),
// or a write whose answer comes from the state after it.
type decision struct {
	answer Answer
	touch  bool
	write  *token.Write
	// settle marks a settle's write, answered with charged and shortfall.
	settle bool
}

// answered is the answer of d, a decision whose write was made, next
// being the state after it: with a request record, the record's answer.
func (v *Verifier) answered(d decision, next token.VerifyState, now time.Time) Answer {
	switch {
	case d.write.Record != nil:
		return v.recorded(next.Request, next.Token, now)
	case d.settle:
		return v.settled(next.Token, d.write.Settle, d.write.Shortfall, now)
	}
	return v.valid(next.Token, now)
}

// plan decides req on st at now (window being now's minute), in the
// contract's order once the key is known: a request id's conflict or
// duplicate first, then by kind.
//
//   - A check (a consume, a hold) runs the ordered checks of the contract,
//     then charges req.Consume, counts it in every spend window and counts
//     the rpm window in one write; with nothing to charge or count it only
//     keeps accessed_time to the minute.
//     The rpm window counted in is now's minute, or the stored one when it
//     is later (another container's clock is slightly ahead and opened it):
//     the window never moves back, and its count limits this verify too.
//   - A settle skips the checks and charges what fits (SettleAmounts),
//     counted in every spend window unchecked; without a request id, with
//     nothing that fits it writes nothing. With a held request it charges
//     the difference of the final cost and the hold, or gives the
//     difference back.
//   - A refund skips the checks. Without a request id it needs used_quota
//     to hold the amount, else invalid_request and nothing changes, and
//     leaves the spend windows alone; with one it gives back at most what
//     the request costs.
//   - A give-back through a request id returns to the spend windows only
//     what they counted of the request and only while they are current
//     (token.GiveBackWindows).
//
// A write with a request id also writes the id's record as the event
// leaves it, with the answer it gets.
func (v *Verifier) plan(st token.VerifyState, keyHash string, req token.VerifyRequest, now time.Time, window int64) decision {
	t := st.Token
	kind := req.Kind()
	var rec *token.Request // the request's live record
	if req.HasRequest() {
		rec = st.Request.Live(now)
		switch token.NextStep(rec, req) {
		case token.StepConflict:
			return decision{answer: Refused(token.VerifyRequestConflict)}
		case token.StepNothingToRefund:
			return decision{answer: Refused(token.VerifyInvalidRequest)}
		case token.StepDuplicate:
			a := v.recorded(rec, t, now)
			a.Replayed = true
			return decision{answer: a}
		}
	}
	w := token.Write{KeyHash: keyHash}
	switch kind {
	case token.KindSettle:
		var held int64
		if rec != nil {
			held = rec.Charged
		}
		if req.Consume >= held {
			w.Settle, w.Shortfall = token.SettleAmounts(t, req.Consume-held)
			w.Windows = token.ChargeWindows(t, w.Settle, false, now, v.zone)
		} else {
			w.GiveBack = min(held-req.Consume, max(t.UsedQuota, 0))
			w.GiveBackRemain = min(w.GiveBack, rec.FromRemain)
			w.Windows = token.GiveBackWindows(t, rec.Windows, w.GiveBack, now, v.zone)
		}
		if w.Settle == 0 && !req.HasRequest() {
			// Nothing to write: no quota left.
			return decision{answer: v.settled(t, 0, w.Shortfall, now)}
		}
	case token.KindRefund:
		amount := -req.Consume
		switch {
		case rec != nil:
			w.GiveBack = min(amount, rec.Charged, max(t.UsedQuota, 0))
			w.GiveBackRemain = min(w.GiveBack, rec.FromRemain)
			w.Windows = token.GiveBackWindows(t, rec.Windows, w.GiveBack, now, v.zone)
		case t.UsedQuota < amount:
			return decision{answer: Refused(token.VerifyInvalidRequest)}
		default:
			// Without a request id nothing says which windows counted
			// the charge: they are left alone.
			w.GiveBack = amount
			if !t.UnlimitedQuota {
				w.GiveBackRemain = amount
			}
		}
	default:
		if a, refused := v.check(st, req, now, window); refused {
			return decision{answer: a}
		}
		if req.Consume == 0 && t.RPMLimit == 0 {
			// Nothing to charge or count: only keep accessed_time to the minute.
			return decision{answer: v.valid(t, now), touch: t.AccessedTime < window}
		}
		w.Consume, w.CountRate = req.Consume, t.RPMLimit > 0
		w.Windows = token.ChargeWindows(t, req.Consume, true, now, v.zone)
	}
	if req.HasRequest() {
		w.Record = v.record(st, rec, req, w, now)
	}
	return decision{write: &w, settle: kind == token.KindSettle}
}

// record is the request record w leaves for req at now: rec (the live
// record, nil for none) moved to req's state, with what w charges or gives
// back, and the answer the event gets.
func (v *Verifier) record(st token.VerifyState, rec *token.Request, req token.VerifyRequest, w token.Write, now time.Time) *token.Request {
	next := token.Request{ID: req.RequestID, Event: req.Fingerprint(), ExpiresAt: now.Add(v.recordLifetime).Unix()}
	if st.Request != nil {
		// An expired record is replaced: its revision goes on.
		next.Rev = st.Request.Rev
	}
	next.Rev++
	if rec != nil {
		next.Charged, next.FromRemain = rec.Charged, rec.FromRemain
	}
	charged := w.Consume + w.Settle
	next.Delta = charged - w.GiveBack
	next.Charged += next.Delta
	if !st.Token.UnlimitedQuota {
		next.FromRemain += charged
	}
	next.FromRemain -= w.GiveBackRemain
	if rec != nil {
		next.Windows = rec.Windows
	}
	next.Windows = next.Windows.After(w.Windows, st.Token, now, v.zone)
	switch req.Kind() {
	case token.KindSettle:
		next.State, next.Shortfall = token.RequestSettled, w.Shortfall
	case token.KindRefund:
		next.State = token.RequestRefunded
	default:
		next.State = token.RequestHeld
	}
	next.Answered = token.AnsweredAt(w.Applied(st, now).Token, now)
	return &next
}

// check runs the ordered checks of a verify on st at now, window being
// now's minute: the refusal, or refused false when the token may be used.
func (v *Verifier) check(st token.VerifyState, req token.VerifyRequest, now time.Time, window int64) (a Answer, refused bool) {
	t := st.Token
	if code := token.CheckUse(t, st.UserDisabled, req.Model, req.ClientIP, now); code != "" {
		return Refused(code), true
	}
	if t.RPMLimit > 0 && st.RPMWindow >= window && st.RPMCount >= t.RPMLimit {
		a := Refused(token.VerifyRateLimited)
		a.RetryAfterSeconds = max(st.RPMWindow+60-now.Unix(), 1)
		return a, true
	}
	if p, retry, refused := token.BudgetRefusal(t, req.Consume, now, v.zone); refused {
		a := Refused(token.VerifyBudgetExceeded)
		a.Period, a.RetryAfterSeconds = p, retry
		return a, true
	}
	if req.Consume > 0 && !token.Fits(t, req.Consume) {
		return Refused(token.VerifyInsufficientQuota), true
	}
	return Answer{}, false
}

// settled is the answer of a settle without a request id that charged
// charged of t's quota and could not charge shortfall.
func (v *Verifier) settled(t token.Token, charged, shortfall int64, now time.Time) Answer {
	a := v.valid(t, now)
	a.Charged, a.Shortfall = &charged, &shortfall
	return a
}

// recorded is the answer a request record holds: its token as it was
// answered (with t's id, user, model_limits and spend windows as of now,
// which a record does not keep), what the request costs, what its last
// event charged, and that settle's shortfall.
func (v *Verifier) recorded(rec *token.Request, t token.Token, now time.Time) Answer {
	at := rec.Answered
	charged, delta := rec.Charged, rec.Delta
	a := Answer{Valid: true, Charged: &charged, Delta: &delta, Token: &TokenView{
		ID:                 t.ID,
		UserID:             t.UserID,
		Name:               at.Name,
		Group:              at.Group,
		Status:             at.Status,
		RemainQuota:        at.RemainQuota,
		UsedQuota:          at.UsedQuota,
		UnlimitedQuota:     at.UnlimitedQuota,
		ModelLimitsEnabled: at.ModelLimitsEnabled,
		ModelLimits:        t.ModelLimitsString(),
		ExpiredTime:        at.ExpiredTime,
		RPMLimit:           at.RPMLimit,
	}}
	a.Token = v.withBudgets(a.Token, t, now)
	if rec.State == token.RequestSettled {
		shortfall := rec.Shortfall
		a.Shortfall = &shortfall
	}
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
