package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// VerifyState is a token as verify reads it: the token, its user's disabled
// flag and its rpm_limit window (minute start and count).
type VerifyState struct {
	Token        token.Token
	UserDisabled bool
	RPMWindow    int64
	RPMCount     int64
}

// StaleError is Charge's answer when the token changed since it was read
// in a way that fails the write's condition: Current is the token as it is
// now (with the user flag of the earlier read), for the caller to check again.
type StaleError struct {
	Current VerifyState
}

func (e *StaleError) Error() string { return "token changed since it was read" }

// LookupKey maps a key hash to its token with one strongly consistent
// GetItem of the key lookup item. ErrNotFound for an unknown key, and for
// the lookup item of a rotated-out key whose grace window has ended at now
// (the caller's clock, the one its other checks run at). The caller
// confirms the mapping with Token.AcceptsKeyHash.
func (s *Store) LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            itemKey(keyPK(keyHash), keySK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", 0, fmt.Errorf("look up key: %w", err)
	}
	if len(out.Item) == 0 {
		return "", 0, fmt.Errorf("look up key: %w", token.ErrNotFound)
	}
	var l lookupItem
	if err := attributevalue.UnmarshalMap(out.Item, &l); err != nil {
		return "", 0, fmt.Errorf("look up key: decode: %w", err)
	}
	if checkUser(l.UserID) != nil || l.TokenID <= 0 {
		return "", 0, errors.New("look up key: malformed lookup item")
	}
	if !l.live(now) {
		// A rotated-out key whose grace ended; TTL has not deleted it yet.
		return "", 0, fmt.Errorf("look up key: %w", token.ErrNotFound)
	}
	return l.UserID, l.TokenID, nil
}

// ReadForVerify reads the token and its user's meta item in one strongly
// consistent BatchGetItem. ErrNotFound when the token does not exist; a
// missing meta item reads as a user that is not disabled.
func (s *Store) ReadForVerify(ctx context.Context, userID string, tokenID int64) (VerifyState, error) {
	if err := checkUser(userID); err != nil {
		return VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	in := &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		s.table: {
			Keys:           []map[string]types.AttributeValue{tokenKey(userID, tokenID), metaKey(userID)},
			ConsistentRead: aws.Bool(true),
		},
	}}
	var tokenAV, metaAV map[string]types.AttributeValue
	for attempt := 1; ; attempt++ {
		out, err := s.db.BatchGetItem(ctx, in)
		if err != nil {
			return VerifyState{}, fmt.Errorf("read for verify: %w", err)
		}
		for _, av := range out.Responses[s.table] {
			if isMeta(av) {
				metaAV = av
			} else {
				tokenAV = av
			}
		}
		rest, ok := out.UnprocessedKeys[s.table]
		if !ok || len(rest.Keys) == 0 {
			break
		}
		// Throttled keys come back unprocessed: read them again after a pause.
		if attempt >= s.retry.attempts {
			return VerifyState{}, fmt.Errorf("read for verify: %w", errRetriesExhausted)
		}
		if err := s.retry.wait(ctx, attempt); err != nil {
			return VerifyState{}, fmt.Errorf("read for verify: %w", err)
		}
		in.RequestItems = out.UnprocessedKeys
	}
	if tokenAV == nil {
		return VerifyState{}, fmt.Errorf("read for verify: %w", token.ErrNotFound)
	}
	st, err := decodeState(tokenAV)
	if err != nil {
		return VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	if metaAV != nil {
		var m metaItem
		if err := attributevalue.UnmarshalMap(metaAV, &m); err != nil {
			return VerifyState{}, fmt.Errorf("read for verify: decode user meta: %w", err)
		}
		st.UserDisabled = m.Disabled
	}
	return st, nil
}

func decodeState(av map[string]types.AttributeValue) (VerifyState, error) {
	var it tokenItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return VerifyState{}, fmt.Errorf("decode token: %w", err)
	}
	return VerifyState{Token: toDomainToken(it), RPMWindow: it.RPMWindow, RPMCount: it.RPMCount}, nil
}

// Charge is what a checked verify writes to its token.
type Charge struct {
	// Consume (>= 0) is taken from remain_quota (unless the token is
	// unlimited) and added to used_quota, only if it fits.
	Consume int64
	// CountRate counts the verify in the token's rpm_limit window, only if
	// the window has room.
	CountRate bool
	// KeyHash is the hash of the key that was verified: the token's current
	// key, or the key a rotation replaced, charged only while its grace
	// window lasts at now. Empty means the current key of the token read.
	KeyHash string
}

// Charge writes c to the token read as read with one conditional UpdateItem
// that re-checks, on the stored item, everything the write depends on: the
// key (c.KeyHash still accepted at now), status 1, not expired at now, the
// quota for c.Consume (and the unlimited flag read), and the rpm window as
// read (with room left). It
// also sets accessed_time. It returns the token after the write;
// *StaleError with the current token when the condition fails on a token
// that still exists (the caller checks again), ErrNotFound when it is gone.
func (s *Store) Charge(ctx context.Context, read VerifyState, c Charge, now time.Time) (VerifyState, error) {
	t := read.Token
	hash := c.KeyHash
	if hash == "" {
		hash = t.KeyHash
	}
	cond := acceptsKey(t, hash, now).
		And(expression.Name(attrStatus).Equal(expression.Value(int(token.StatusEnabled)))).
		And(expression.Name(attrExpired).Equal(expression.Value(token.NeverExpires)).
			Or(expression.Name(attrExpired).GreaterThan(expression.Value(now.Unix()))))
	update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix()))
	if c.Consume > 0 {
		cond = cond.And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota)))
		update = update.Add(expression.Name(attrUsed), expression.Value(c.Consume))
		if !t.UnlimitedQuota {
			cond = cond.And(expression.Name(attrRemain).GreaterThanEqual(expression.Value(c.Consume)))
			update = update.Add(expression.Name(attrRemain), expression.Value(-c.Consume))
		}
	}
	if c.CountRate && t.RPMLimit > 0 {
		cond, update = rpmWindow.count(cond, update, read.RPMWindow, t.RPMLimit, now)
	}
	st, err := s.verifyUpdate(ctx, read, cond, update)
	if err != nil {
		return VerifyState{}, fmt.Errorf("charge token: %w", err)
	}
	return st, nil
}

// Settle charges what fits of amount (> 0), a request that already ran:
// all of it to used_quota on an unlimited token; on a limited one at most
// remain_quota, which never goes below 0. No check but the key's: the token
// exists and its key hash is read's. When amount fits remain_quota the
// write adds (conditional only on remain_quota >= amount), so concurrent
// settles of one token do not conflict; only a settle that does not fit
// sets remain_quota to 0 on the condition that it is still the value read.
// A lost race is retried on the current token. It returns the token after
// it and what was charged and could not be. ErrNotFound.
func (s *Store) Settle(ctx context.Context, read VerifyState, keyHash string, amount int64, now time.Time) (st VerifyState, charged, shortfall int64, err error) {
	if amount < 0 {
		return VerifyState{}, 0, 0, token.Errorf(token.EInvalidRequest, "negative settle")
	}
	st = read
	for attempt := 1; ; attempt++ {
		t := st.Token
		if !t.AcceptsKeyHash(keyHash, now) {
			return VerifyState{}, 0, 0, fmt.Errorf("settle token: %w", token.ErrNotFound)
		}
		charged, shortfall = token.SettleAmounts(t, amount)
		if charged == 0 {
			return st, 0, shortfall, nil // nothing to write: no quota left, or nothing to charge
		}
		cond := acceptsKey(t, keyHash, now).And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota)))
		update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix())).
			Add(expression.Name(attrUsed), expression.Value(charged))
		switch {
		case t.UnlimitedQuota:
		case shortfall == 0:
			cond = cond.And(expression.Name(attrRemain).GreaterThanEqual(expression.Value(charged)))
			update = update.Add(expression.Name(attrRemain), expression.Value(-charged))
		default:
			cond = cond.And(expression.Name(attrRemain).Equal(expression.Value(t.RemainQuota)))
			update = update.Set(expression.Name(attrRemain), expression.Value(t.RemainQuota-charged))
		}
		next, err := s.verifyUpdate(ctx, st, cond, update)
		if err == nil {
			return next, charged, shortfall, nil
		}
		if st, err = s.raced(ctx, err, attempt); err != nil {
			return VerifyState{}, 0, 0, fmt.Errorf("settle token: %w", err)
		}
	}
}

// Refund gives back amount (> 0) of an earlier charge: used_quota goes down
// by amount, remain_quota up by it (capped at MaxQuota; unchanged on an
// unlimited token). EInvalidRequest, and nothing changes, when used_quota
// is below amount. No check but the key's. ErrNotFound.
func (s *Store) Refund(ctx context.Context, read VerifyState, keyHash string, amount int64, now time.Time) (VerifyState, error) {
	if amount <= 0 {
		return VerifyState{}, token.Errorf(token.EInvalidRequest, "refund must be positive")
	}
	st := read
	for attempt := 1; ; attempt++ {
		t := st.Token
		if !t.AcceptsKeyHash(keyHash, now) {
			return VerifyState{}, fmt.Errorf("refund token: %w", token.ErrNotFound)
		}
		if t.UsedQuota < amount {
			return VerifyState{}, fmt.Errorf("refund token: %w", token.Errorf(token.EInvalidRequest, "refund larger than used_quota"))
		}
		cond := acceptsKey(t, keyHash, now).
			And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota))).
			And(expression.Name(attrUsed).GreaterThanEqual(expression.Value(amount)))
		update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix())).
			Add(expression.Name(attrUsed), expression.Value(-amount))
		if !t.UnlimitedQuota {
			// Add when it stays under the cap, else set the cap: each on
			// the condition that it still applies.
			room := int64(token.MaxQuota) - amount
			if t.RemainQuota <= room {
				cond = cond.And(expression.Name(attrRemain).LessThanEqual(expression.Value(room)))
				update = update.Add(expression.Name(attrRemain), expression.Value(amount))
			} else {
				cond = cond.And(expression.Name(attrRemain).GreaterThan(expression.Value(room)))
				update = update.Set(expression.Name(attrRemain), expression.Value(int64(token.MaxQuota)))
			}
		}
		next, err := s.verifyUpdate(ctx, st, cond, update)
		if err == nil {
			return next, nil
		}
		if st, err = s.raced(ctx, err, attempt); err != nil {
			return VerifyState{}, fmt.Errorf("refund token: %w", err)
		}
	}
}

// raced turns a failed write of a retry loop into the state to retry with,
// after a backoff, or into the error that ends the loop.
func (s *Store) raced(ctx context.Context, err error, attempt int) (VerifyState, error) {
	var stale *StaleError
	if !errors.As(err, &stale) {
		return VerifyState{}, err
	}
	if attempt >= s.retry.attempts {
		return VerifyState{}, errRetriesExhausted
	}
	if err := s.retry.wait(ctx, attempt); err != nil {
		return VerifyState{}, err
	}
	return stale.Current, nil
}

// Touch records a verify in accessed_time, at most once per clock minute:
// one conditional UpdateItem that writes only when the stored
// accessed_time is before now's minute and the token still has keyHash.
// A token touched already this minute, or gone, is not an error.
func (s *Store) Touch(ctx context.Context, userID string, tokenID int64, keyHash string, now time.Time) error {
	cond := sameKey(keyHash).And(expression.Name(attrAccessed).LessThan(expression.Value(token.MinuteStart(now))))
	expr, err := expression.NewBuilder().WithCondition(cond).
		WithUpdate(expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix()))).Build()
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       tokenKey(userID, tokenID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if _, ok := isConditionFailed(err); ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// SetUserDisabled sets the user's disabled flag on their meta item (made if
// missing): a disabled user's keys verify as "disabled", whatever their
// tokens' status.
func (s *Store) SetUserDisabled(ctx context.Context, userID string, disabled bool) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	expr, err := expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrDisabled), expression.Value(disabled))).Build()
	if err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       metaKey(userID),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	return nil
}

// minuteWindow is a fixed per-clock-minute request counter kept in two
// attributes of an item: the window's minute start and the count in it.
// The verify rpm_limit (on the token) and the reveal limit (on the user's
// meta item) both use it, each with one conditional UpdateItem.
type minuteWindow struct{ windowAttr, countAttr string }

var (
	rpmWindow    = minuteWindow{windowAttr: attrRPMWindow, countAttr: attrRPMCount}
	revealWindow = minuteWindow{windowAttr: attrRevealWindow, countAttr: attrRevealCount}
)

// count adds to cond and update the counting of one request at now, given
// the window the caller believes is stored (known): in that window while
// its count is under limit when known is now's window or a later one
// (another container's clock slightly ahead opened it: the window never
// moves back), or, when known is an older window, opening now's window.
// Whoever opens a window first wins; the others fail the condition, learn
// the stored window and count themselves in it on a retry.
func (w minuteWindow) count(cond expression.ConditionBuilder, update expression.UpdateBuilder, known, limit int64, now time.Time) (expression.ConditionBuilder, expression.UpdateBuilder) {
	window := token.MinuteStart(now)
	if known >= window {
		cond = cond.And(expression.Name(w.windowAttr).Equal(expression.Value(known))).
			And(expression.Name(w.countAttr).LessThan(expression.Value(limit)))
		return cond, update.Add(expression.Name(w.countAttr), expression.Value(1))
	}
	cond = cond.And(expression.AttributeNotExists(expression.Name(w.windowAttr)).
		Or(expression.Name(w.windowAttr).LessThan(expression.Value(window))))
	return cond, update.Set(expression.Name(w.windowAttr), expression.Value(window)).
		Set(expression.Name(w.countAttr), expression.Value(1))
}

// sameKey is the condition every verify write starts from: the token
// exists and still has the key hash that was verified.
func sameKey(keyHash string) expression.ConditionBuilder {
	return expression.AttributeExists(expression.Name(PartitionKey)).
		And(expression.Name(attrKeyHash).Equal(expression.Value(keyHash)))
}

// acceptsKey is the condition of a charge through the key with keyHash at
// now: the token exists and keyHash is its current key, or the key a
// rotation replaced whose grace window has not ended at now (what
// Token.AcceptsKeyHash checks on the read, re-checked on the stored item).
func acceptsKey(t token.Token, keyHash string, now time.Time) expression.ConditionBuilder {
	if keyHash == t.KeyHash {
		return sameKey(keyHash)
	}
	return expression.AttributeExists(expression.Name(PartitionKey)).
		And(expression.Name(attrPrevKeyHash).Equal(expression.Value(keyHash))).
		And(expression.Name(attrPrevKeyExpires).GreaterThan(expression.Value(now.Unix())))
}

// verifyUpdate runs one conditional UpdateItem on read's token and returns
// the token after it; on a failed condition *StaleError with the current
// token (user flag kept from read), or ErrNotFound when it is gone.
func (s *Store) verifyUpdate(ctx context.Context, read VerifyState, cond expression.ConditionBuilder, update expression.UpdateBuilder) (VerifyState, error) {
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
	if err != nil {
		return VerifyState{}, err
	}
	in := s.conditionalUpdate(tokenKey(read.Token.UserID, read.Token.ID), expr)
	in.ReturnValues = types.ReturnValueAllNew
	out, err := s.db.UpdateItem(ctx, in)
	if ccf, ok := isConditionFailed(err); ok {
		if len(ccf.Item) == 0 {
			return VerifyState{}, token.ErrNotFound
		}
		cur, err := decodeState(ccf.Item)
		if err != nil {
			return VerifyState{}, err
		}
		cur.UserDisabled = read.UserDisabled
		return VerifyState{}, &StaleError{Current: cur}
	}
	if err != nil {
		return VerifyState{}, err
	}
	st, err := decodeState(out.Attributes)
	if err != nil {
		return VerifyState{}, err
	}
	st.UserDisabled = read.UserDisabled
	return st, nil
}
