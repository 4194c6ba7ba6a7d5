package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// Ledger is what verify reads and writes (token.Ledger): a key's token, its
// state, and the one conditional write of a charge, a settle or a refund.
// It decides nothing: the verifier does, on what it read.
type Ledger struct {
	core *Core
}

var _ token.Ledger = (*Ledger)(nil)

// NewLedger returns the verify ledger over core.
func NewLedger(core *Core) *Ledger { return &Ledger{core: core} }

// LookupKey maps a key hash to its token with one strongly consistent
// GetItem of the key lookup item. ErrNotFound for an unknown key, and for
// the lookup item of a rotated-out key whose grace window has ended at now
// (the caller's clock, the one its other checks run at). The caller
// confirms the mapping with Token.AcceptsKeyHash.
func (s *Ledger) LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error) {
	return s.core.lookUpKey(ctx, keyHash, now)
}

// ReadForVerify reads the token and its user's meta item in one strongly
// consistent BatchGetItem (again for keys DynamoDB leaves unprocessed).
// ErrNotFound when the token does not exist; a missing meta item reads as a
// user that is not disabled.
func (s *Ledger) ReadForVerify(ctx context.Context, userID string, tokenID int64) (token.VerifyState, error) {
	if err := checkUser(userID); err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	items, err := s.core.batchGet(ctx, []map[string]types.AttributeValue{tokenKey(userID, tokenID), metaKey(userID)}, nil)
	if err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	var tokenAV, metaAV map[string]types.AttributeValue
	for _, av := range items {
		if isMeta(av) {
			metaAV = av
		} else {
			tokenAV = av
		}
	}
	if tokenAV == nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", token.ErrNotFound)
	}
	st, err := decodeState(tokenAV)
	if err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	if metaAV != nil {
		var m metaItem
		if err := attributevalue.UnmarshalMap(metaAV, &m); err != nil {
			return token.VerifyState{}, fmt.Errorf("read for verify: decode user meta: %w", err)
		}
		st.UserDisabled = m.Disabled
	}
	return st, nil
}

func decodeState(av map[string]types.AttributeValue) (token.VerifyState, error) {
	var it tokenItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return token.VerifyState{}, fmt.Errorf("decode token: %w", err)
	}
	return token.VerifyState{Token: toDomainToken(it), RPMWindow: it.RPMWindow, RPMCount: it.RPMCount}, nil
}

// Charge writes c to the token read as read with one conditional UpdateItem
// that re-checks, on the stored item, everything the write depends on: the
// key (c.KeyHash still accepted at now), status 1, not expired at now, the
// quota for c.Consume (and the unlimited flag read), and the rpm window as
// read (with room left). It also sets accessed_time. It returns the token
// after the write, or, when the condition fails, written false and the
// token as it is now; ErrNotFound when it is gone.
func (s *Ledger) Charge(ctx context.Context, read token.VerifyState, c token.Charge, now time.Time) (token.VerifyState, bool, error) {
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
	st, written, err := s.write(ctx, read, cond, update)
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("charge token: %w", err)
	}
	return st, written, nil
}

// Settle charges st.Charged (> 0) through st.KeyHash, the key's the only
// check: all of it to used_quota on an unlimited token (on the condition
// that it still is one). On a limited one, when it all fit (no shortfall)
// the write adds, on the condition that remain_quota still holds it, so
// concurrent settles of one token do not conflict; a settle that did not
// fit sets remain_quota to what is left of the value read, on the
// condition that it is still that value, so remain_quota never goes below
// 0. Written false with the current token when the condition fails;
// ErrNotFound.
func (s *Ledger) Settle(ctx context.Context, read token.VerifyState, st token.Settlement, now time.Time) (token.VerifyState, bool, error) {
	if st.Charged <= 0 {
		return token.VerifyState{}, false, errors.New("settle token: nothing to charge")
	}
	t := read.Token
	cond := acceptsKey(t, st.KeyHash, now).And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota)))
	update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix())).
		Add(expression.Name(attrUsed), expression.Value(st.Charged))
	switch {
	case t.UnlimitedQuota:
	case st.Shortfall == 0:
		cond = cond.And(expression.Name(attrRemain).GreaterThanEqual(expression.Value(st.Charged)))
		update = update.Add(expression.Name(attrRemain), expression.Value(-st.Charged))
	default:
		cond = cond.And(expression.Name(attrRemain).Equal(expression.Value(t.RemainQuota)))
		update = update.Set(expression.Name(attrRemain), expression.Value(t.RemainQuota-st.Charged))
	}
	next, written, err := s.write(ctx, read, cond, update)
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("settle token: %w", err)
	}
	return next, written, nil
}

// Refund gives back amount (> 0) of an earlier charge through the key with
// keyHash, the key's the only check: used_quota goes down by amount, on
// the condition that it holds it, remain_quota up by it (capped at
// MaxQuota; unchanged on an unlimited token, on the condition that it
// still is one). Written false with the current token when the condition
// fails; ErrNotFound.
func (s *Ledger) Refund(ctx context.Context, read token.VerifyState, keyHash string, amount int64, now time.Time) (token.VerifyState, bool, error) {
	if amount <= 0 {
		return token.VerifyState{}, false, errors.New("refund token: nothing to refund")
	}
	t := read.Token
	cond := acceptsKey(t, keyHash, now).
		And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota))).
		And(expression.Name(attrUsed).GreaterThanEqual(expression.Value(amount)))
	update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix())).
		Add(expression.Name(attrUsed), expression.Value(-amount))
	if !t.UnlimitedQuota {
		// Add when it stays under the cap, else set the cap: each on the
		// condition that it still applies.
		room := int64(token.MaxQuota) - amount
		if t.RemainQuota <= room {
			cond = cond.And(expression.Name(attrRemain).LessThanEqual(expression.Value(room)))
			update = update.Add(expression.Name(attrRemain), expression.Value(amount))
		} else {
			cond = cond.And(expression.Name(attrRemain).GreaterThan(expression.Value(room)))
			update = update.Set(expression.Name(attrRemain), expression.Value(int64(token.MaxQuota)))
		}
	}
	next, written, err := s.write(ctx, read, cond, update)
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("refund token: %w", err)
	}
	return next, written, nil
}

// Touch records a verify in accessed_time, at most once per clock minute:
// one conditional UpdateItem that writes only when the stored
// accessed_time is before now's minute and the token still has keyHash.
// A token touched already this minute, or gone, is not an error.
func (s *Ledger) Touch(ctx context.Context, userID string, tokenID int64, keyHash string, now time.Time) error {
	cond := sameKey(keyHash).And(expression.Name(attrAccessed).LessThan(expression.Value(token.MinuteStart(now))))
	expr, err := expression.NewBuilder().WithCondition(cond).
		WithUpdate(expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix()))).Build()
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	_, err = s.core.db.UpdateItem(ctx, s.core.updateInput(tokenKey(userID, tokenID), expr))
	if _, ok := isConditionFailed(err); ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
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

// write runs one conditional UpdateItem on read's token and returns the
// token after it; on a failed condition written false and the token as it
// is now, or ErrNotFound when it is gone. The user flag is read's.
func (s *Ledger) write(ctx context.Context, read token.VerifyState, cond expression.ConditionBuilder, update expression.UpdateBuilder) (next token.VerifyState, written bool, err error) {
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
	if err != nil {
		return token.VerifyState{}, false, err
	}
	in := s.core.updateInput(tokenKey(read.Token.UserID, read.Token.ID), expr)
	in.ReturnValues = types.ReturnValueAllNew
	out, err := s.core.db.UpdateItem(ctx, in)
	var item map[string]types.AttributeValue
	ccf, failed := isConditionFailed(err)
	switch {
	case failed && len(ccf.Item) == 0:
		return token.VerifyState{}, false, token.ErrNotFound
	case failed:
		item = ccf.Item
	case err != nil:
		return token.VerifyState{}, false, err
	default:
		item, written = out.Attributes, true
	}
	next, err = decodeState(item)
	if err != nil {
		return token.VerifyState{}, false, err
	}
	next.UserDisabled = read.UserDisabled
	return next, written, nil
}
