package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// Ledger is what verify reads and writes (token.Ledger): a key's token, its
// state and its request records, and the one conditional write of a
// charge, a settle or a give-back (with a request record: one transaction
// of both). It decides nothing: the verifier does, on what it read.
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

// ReadForVerify reads the token, its user's meta item and, when requestID
// is not empty, the token's record of that request id, in one strongly
// consistent BatchGetItem (again for keys DynamoDB leaves unprocessed).
// ErrNotFound when the token does not exist; a missing meta item reads as
// a user that is not disabled. The record is returned expired or not.
func (s *Ledger) ReadForVerify(ctx context.Context, userID string, tokenID int64, requestID string) (token.VerifyState, error) {
	if err := checkUser(userID); err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	var reqKey map[string]types.AttributeValue
	if requestID != "" {
		if err := token.CheckRequestID(requestID); err != nil {
			return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
		}
		reqKey = requestKey(userID, tokenID, requestID)
	}
	r, err := s.core.readWithUser(ctx, userID, tokenID, reqKey)
	if err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	if r.token == nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", token.ErrNotFound)
	}
	st, err := decodeState(r.token)
	if err != nil {
		return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
	}
	st.UserDisabled = r.userDisabled
	if r.request != nil {
		if st.Request, err = decodeRequest(r.request); err != nil {
			return token.VerifyState{}, fmt.Errorf("read for verify: %w", err)
		}
	}
	return st, nil
}

// decodeState decodes a token item as verify reads it: unreadable
// (token_unreadable) as on every other read path when it does not decode
// or has no id or key hash.
func decodeState(av map[string]types.AttributeValue) (token.VerifyState, error) {
	it, err := decodeTokenItem(av)
	if err != nil {
		return token.VerifyState{}, err
	}
	return token.VerifyState{Token: toDomainToken(it), RPMWindow: it.RPMWindow, RPMCount: it.RPMCount}, nil
}

// Write makes w on the token read as read, with the condition and update
// tokenWrite composes from w's parts: one conditional UpdateItem, or, with
// a request record, one TransactWriteItems of the token's update and the
// record's (requestWrite), retried while DynamoDB reports a
// TransactionConflict. It returns the state after the write (an
// UpdateItem's new item; a transaction's w.Applied, as a transaction
// returns no item), or, when a condition fails, written false and the
// state as it is now; ErrNotFound when the token is gone.
func (s *Ledger) Write(ctx context.Context, read token.VerifyState, w token.Write, now time.Time) (token.VerifyState, bool, error) {
	cond, update, err := tokenWrite(read, w, now)
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("verify write: %w", err)
	}
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("verify write: %w", err)
	}
	var (
		next    token.VerifyState
		written bool
	)
	if w.Record == nil {
		next, written, err = s.update(ctx, read, expr)
	} else {
		next, written, err = s.transact(ctx, read, w, expr, now)
	}
	if err != nil {
		return token.VerifyState{}, false, fmt.Errorf("verify write: %w", err)
	}
	return next, written, nil
}

// tokenWrite composes the condition and the update of w on the token item
// read as read, part by part: the key (still accepted at now), a checked
// charge (enabled, not expired, fits), a settle, a give-back, the rpm_limit
// count, the spend windows, and accessed_time. Every part that changes the quotas also
// conditions on the unlimited flag read, which the decision depended on.
func tokenWrite(read token.VerifyState, w token.Write, now time.Time) (expression.ConditionBuilder, expression.UpdateBuilder, error) {
	t := read.Token
	changes := 0
	for _, n := range []int64{w.Consume, w.Settle, w.GiveBack} {
		if n > 0 {
			changes++
		}
	}
	switch {
	case w.Consume < 0 || w.Settle < 0 || w.Shortfall < 0 || w.GiveBack < 0 || w.GiveBackRemain < 0:
		return expression.ConditionBuilder{}, expression.UpdateBuilder{}, errors.New("negative amount")
	case changes > 1 || w.GiveBackRemain > w.GiveBack:
		return expression.ConditionBuilder{}, expression.UpdateBuilder{}, errors.New("more than one change of the quotas")
	}
	hash := w.KeyHash
	if hash == "" {
		hash = t.KeyHash
	}
	cond := acceptsKey(t, hash, now)
	update := expression.Set(expression.Name(attrAccessed), expression.Value(now.Unix()))
	if w.Consume > 0 || w.CountRate {
		cond = cond.And(expression.Name(attrStatus).Equal(expression.Value(int(token.StatusEnabled)))).
			And(expression.Name(attrExpired).Equal(expression.Value(token.NeverExpires)).
				Or(expression.Name(attrExpired).GreaterThan(expression.Value(now.Unix()))))
	}
	if changes > 0 {
		cond = cond.And(expression.Name(attrUnlimited).Equal(expression.Value(t.UnlimitedQuota)))
	}
	switch {
	case w.Consume > 0:
		cond, update = charge(cond, update, t, w.Consume)
	case w.Settle > 0 && w.Shortfall == 0:
		// All of it fit: added on the condition that it still fits, so
		// concurrent settles of one token do not conflict.
		cond, update = charge(cond, update, t, w.Settle)
	case w.Settle > 0:
		// Part of it did not fit: what is left of the values read, on the
		// condition that they are still those, so neither passes its bound.
		cond = cond.And(expression.Name(attrUsed).Equal(expression.Value(t.UsedQuota)))
		update = update.Set(expression.Name(attrUsed), expression.Value(t.UsedQuota+w.Settle))
		if !t.UnlimitedQuota {
			cond = cond.And(expression.Name(attrRemain).Equal(expression.Value(t.RemainQuota)))
			update = update.Set(expression.Name(attrRemain), expression.Value(t.RemainQuota-w.Settle))
		}
	case w.GiveBack > 0:
		cond = cond.And(expression.Name(attrUsed).GreaterThanEqual(expression.Value(w.GiveBack)))
		update = update.Add(expression.Name(attrUsed), expression.Value(-w.GiveBack))
	}
	if w.GiveBackRemain > 0 {
		// Add when it stays under the cap, else set the cap: each on the
		// condition that it still applies.
		room := int64(token.MaxQuota) - w.GiveBackRemain
		if t.RemainQuota <= room {
			cond = cond.And(expression.Name(attrRemain).LessThanEqual(expression.Value(room)))
			update = update.Add(expression.Name(attrRemain), expression.Value(w.GiveBackRemain))
		} else {
			cond = cond.And(expression.Name(attrRemain).GreaterThan(expression.Value(room)))
			update = update.Set(expression.Name(attrRemain), expression.Value(int64(token.MaxQuota)))
		}
	}
	if w.CountRate && t.RPMLimit > 0 {
		cond, update = rpmWindow.count(cond, update, read.RPMWindow, t.RPMLimit, now)
	}
	if len(w.Windows) > 0 {
		var err error
		if cond, update, err = spendWindows(cond, update, t, w); err != nil {
			return expression.ConditionBuilder{}, expression.UpdateBuilder{}, err
		}
	}
	return cond, update, nil
}

// spendWindows adds to cond and update w's parts of the spend windows
// (token.WindowPart), on the condition that the zone and the windows'
// generation are still the ones read: the parts' window starts were
// computed in that zone, and a give-back's window is the one its request
// counted in only in that generation. A charge is counted in
// the window read (stored start unchanged; with Checked, used + charge
// within the limit), or opens the current one when the stored window is
// older or absent; a give-back leaves a window whose start is unchanged
// and whose used holds it.
func spendWindows(cond expression.ConditionBuilder, update expression.UpdateBuilder, t token.Token, w token.Write) (expression.ConditionBuilder, expression.UpdateBuilder, error) {
	charge := w.Consume + w.Settle
	seen := map[token.Period]bool{}
	cond = cond.And(zoneIs(t.BudgetTimezone)).And(genIs(t.WindowGen))
	for _, part := range w.Windows {
		if !token.ValidPeriod(part.Period) || seen[part.Period] {
			return cond, update, fmt.Errorf("spend window %q twice or unknown", part.Period)
		}
		seen[part.Period] = true
		a := budgetAttrsOf(part.Period)
		start, used := expression.Name(a.start), expression.Name(a.used)
		switch {
		case part.Add > 0 && part.Add != charge,
			part.Add < 0 && (part.Open || -part.Add > w.GiveBack),
			part.Add == 0,
			part.Checked && part.Add > part.Limit:
			return cond, update, fmt.Errorf("spend window %s: %+d does not match the write", part.Period, part.Add)
		case part.Add < 0:
			cond = cond.And(start.Equal(expression.Value(part.Start))).
				And(used.GreaterThanEqual(expression.Value(-part.Add)))
			update = update.Add(used, expression.Value(part.Add))
			continue
		}
		cond = cond.And(expression.Name(a.limit).Equal(expression.Value(part.Limit)))
		if part.Open {
			cond = cond.And(expression.AttributeNotExists(start).Or(start.LessThan(expression.Value(part.Start))))
			update = update.Set(start, expression.Value(part.Start)).Set(used, expression.Value(part.Add))
			continue
		}
		cond = cond.And(start.Equal(expression.Value(part.Start)))
		if part.Checked {
			// An item written whole stores a used of 0 as absent.
			fits := used.LessThanEqual(expression.Value(part.Limit - part.Add))
			if t.Windows[part.Period].Used == 0 {
				fits = expression.AttributeNotExists(used).Or(fits)
			}
			cond = cond.And(fits)
		}
		update = update.Add(used, expression.Value(part.Add))
	}
	return cond, update, nil
}

// charge adds to cond and update a charge of amount (> 0) that must fit:
// used_quota stays within MaxUsedQuota, and on a limited token
// remain_quota holds it.
func charge(cond expression.ConditionBuilder, update expression.UpdateBuilder, t token.Token, amount int64) (expression.ConditionBuilder, expression.UpdateBuilder) {
	cond = cond.And(expression.Name(attrUsed).LessThanEqual(expression.Value(int64(token.MaxUsedQuota) - amount)))
	update = update.Add(expression.Name(attrUsed), expression.Value(amount))
	if !t.UnlimitedQuota {
		cond = cond.And(expression.Name(attrRemain).GreaterThanEqual(expression.Value(amount)))
		update = update.Add(expression.Name(attrRemain), expression.Value(-amount))
	}
	return cond, update
}

// Touch records a verify in accessed_time, at most once per clock minute:
// one conditional UpdateItem that writes only when the stored
// accessed_time is before now's minute and the token still accepts keyHash
// at now (its current key, or its previous key while the grace lasts).
// A token touched already this minute, or gone, is not an error.
func (s *Ledger) Touch(ctx context.Context, userID string, tokenID int64, keyHash string, now time.Time) error {
	cond := acceptsKeyAt(keyHash, now).And(expression.Name(attrAccessed).LessThan(expression.Value(token.MinuteStart(now))))
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

// acceptsKeyAt is the condition that the token exists and accepts keyHash
// at now, whichever of its keys it is (Token.AcceptsKeyHash on the stored
// item): for a write that did not read which.
func acceptsKeyAt(keyHash string, now time.Time) expression.ConditionBuilder {
	return expression.AttributeExists(expression.Name(PartitionKey)).
		And(expression.Name(attrKeyHash).Equal(expression.Value(keyHash)).
			Or(expression.Name(attrPrevKeyHash).Equal(expression.Value(keyHash)).
				And(expression.Name(attrPrevKeyExpires).GreaterThan(expression.Value(now.Unix())))))
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

// update runs expr as one conditional UpdateItem of read's token and
// returns the token after it; on a failed condition written false and the
// token as it is now, or ErrNotFound when it is gone. The user flag and
// the request record are read's.
func (s *Ledger) update(ctx context.Context, read token.VerifyState, expr expression.Expression) (next token.VerifyState, written bool, err error) {
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
	next.UserDisabled, next.Request = read.UserDisabled, read.Request
	return next, written, nil
}

// transact writes the token (tokenExpr) and w.Record in one
// TransactWriteItems, retrying it while DynamoDB cancels it for a
// TransactionConflict (a concurrent transaction or write on one of its
// items). On success the state is w.Applied to read; when a condition
// failed, written false and read with the items that failed their
// condition as DynamoDB returned them (ReturnValuesOnConditionCheckFailure),
// a record that is gone read as none; ErrNotFound when the token is gone.
func (s *Ledger) transact(ctx context.Context, read token.VerifyState, w token.Write, tokenExpr expression.Expression, now time.Time) (token.VerifyState, bool, error) {
	t := read.Token
	recordExpr, err := requestWrite(read.Request, w.Record, now)
	if err != nil {
		return token.VerifyState{}, false, err
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: s.core.txUpdate(tokenKey(t.UserID, t.ID), tokenExpr)},
		{Update: s.core.txUpdate(requestKey(t.UserID, t.ID, w.Record.ID), recordExpr)},
	}}
	for attempt := 1; ; attempt++ {
		_, err := s.core.db.TransactWriteItems(ctx, in)
		if err == nil {
			return w.Applied(read, now), true, nil
		}
		reasons, ok := cancellation(err)
		if !ok {
			return token.VerifyState{}, false, err
		}
		const tokenAt, recordAt = 0, 1
		tokenFailed := reasonCode(reasons, tokenAt) == reasonConditionFailed
		recordFailed := reasonCode(reasons, recordAt) == reasonConditionFailed
		if tokenFailed || recordFailed {
			next := read
			if tokenFailed {
				item := reasons[tokenAt].Item
				if len(item) == 0 {
					return token.VerifyState{}, false, token.ErrNotFound
				}
				if next, err = decodeState(item); err != nil {
					return token.VerifyState{}, false, err
				}
				next.UserDisabled, next.Request = read.UserDisabled, read.Request
			}
			if recordFailed {
				next.Request = nil
				if item := reasons[recordAt].Item; len(item) > 0 {
					if next.Request, err = decodeRequest(item); err != nil {
						return token.VerifyState{}, false, err
					}
				}
			}
			return next, false, nil
		}
		if !hasReason(reasons, reasonConflict) {
			return token.VerifyState{}, false, fmt.Errorf("transaction cancelled: %s", describeReasons(reasons))
		}
		if attempt >= s.core.retry.attempts {
			return token.VerifyState{}, false, errRetriesExhausted
		}
		if err := s.core.retry.wait(ctx, attempt); err != nil {
			return token.VerifyState{}, false, err
		}
	}
}

// txUpdate is the transaction action of updateInput: the update of the
// item at key with expr, returning the item as it was when its condition
// fails.
func (c *Core) txUpdate(key map[string]types.AttributeValue, expr expression.Expression) *types.Update {
	return &types.Update{
		TableName:                           aws.String(c.table),
		Key:                                 key,
		UpdateExpression:                    expr.Update(),
		ConditionExpression:                 expr.Condition(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}
