package dynamo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// Keys reveals and rotates full keys (token.KeyStore): the operations that
// open or seal a key after its creation, and count reveals against the
// per-user limit.
type Keys struct {
	core   *Core
	sealer token.Sealer
	// revealWindows is the reveal window last seen per user (countReveal).
	revealWindows *windowCache
}

var _ token.KeyStore = (*Keys)(nil)

// NewKeys returns the key store over core, sealing and opening keys with
// sealer.
func NewKeys(core *Core, sealer token.Sealer) (*Keys, error) {
	if sealer == nil {
		return nil, errors.New("dynamo: no sealer")
	}
	return &Keys{core: core, sealer: sealer, revealWindows: newWindowCache(10_000)}, nil
}

// RevealKey counts the reveal (one conditional UpdateItem of the user's
// meta item, see countReveal), then reads the token with one strongly
// consistent GetItem and opens its sealed key.
func (s *Keys) RevealKey(ctx context.Context, userID string, id int64, limit int, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if err := s.countReveal(ctx, userID, limit, now); err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	av, err := s.core.getItem(ctx, tokenKey(userID, id))
	if err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	if av == nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", token.ErrNotFound)
	}
	t, err := s.openToken(ctx, av)
	if err != nil {
		return token.Token{}, fmt.Errorf("reveal key: %w", err)
	}
	return t, nil
}

// RevealKeys counts the batch as one reveal (one UpdateItem), then reads
// the tokens with one strongly consistent BatchGetItem (again only for
// keys DynamoDB leaves unprocessed) and opens their keys, in the order of
// ids; ids the user does not own are left out, and so is a token that
// cannot be decoded (logged).
func (s *Keys) RevealKeys(ctx context.Context, userID string, ids []int64, limit int, now time.Time) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	ids, err := token.UniqueIDs(ids)
	if err != nil {
		return nil, err
	}
	if err := s.countReveal(ctx, userID, limit, now); err != nil {
		if errors.Is(err, errNoUser) {
			return []token.Token{}, nil
		}
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	items, err := s.core.batchGetTokens(ctx, userID, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("reveal keys: %w", err)
	}
	byID := make(map[int64]token.Token, len(items))
	for _, av := range items {
		t, err := s.openToken(ctx, av)
		if isUnreadable(err) {
			skipUnreadable(ctx, "reveal keys", userID, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reveal keys: %w", err)
		}
		byID[t.ID] = t
	}
	out := make([]token.Token, 0, len(byID))
	for _, id := range ids {
		if t, ok := byID[id]; ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// openToken decodes a token item and opens its sealed key, checking that
// the key is the one the item's hash names.
func (s *Keys) openToken(ctx context.Context, av map[string]types.AttributeValue) (token.Token, error) {
	it, err := decodeTokenItem(av)
	if err != nil {
		return token.Token{}, err
	}
	key, err := s.sealer.Open(ctx, it.KeySealed, sealAAD(it.PK, it.SK))
	if err != nil {
		return token.Token{}, fmt.Errorf("open key of token %d: %w", it.ID, err)
	}
	if token.HashKey(string(key)) != it.KeyHash {
		return token.Token{}, fmt.Errorf("open key of token %d: the sealed key does not match its hash", it.ID)
	}
	t := toDomainToken(it)
	t.Key = string(key)
	return t, nil
}

// errNoUser is countReveal's answer for a user without a meta item: a user
// who never created a token, so has none to reveal (nothing is written).
var errNoUser = fmt.Errorf("no such user: %w", token.ErrNotFound)

// countReveal counts one reveal of userID in the per-minute window on the
// user's meta item with one conditional UpdateItem (the minuteWindow of
// verify's rpm_limit). The window this container saw last for the user
// picks the update; when another container opened the minute first, the
// failed condition returns the stored window and a second UpdateItem
// counts in it. Over limit: *token.RateLimitError, nothing counted.
// limit <= 0 counts nothing.
func (s *Keys) countReveal(ctx context.Context, userID string, limit int, now time.Time) error {
	if limit <= 0 {
		return nil
	}
	window := token.MinuteStart(now)
	known := s.revealWindows.get(userID)
	for attempt := 1; ; attempt++ {
		cond, update := revealWindow.count(expression.AttributeExists(expression.Name(PartitionKey)),
			expression.UpdateBuilder{}, known, int64(limit), now)
		expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
		if err != nil {
			return fmt.Errorf("count reveal: %w", err)
		}
		_, err = s.core.db.UpdateItem(ctx, s.core.updateInput(metaKey(userID), expr))
		if err == nil {
			s.revealWindows.put(userID, window)
			return nil
		}
		ccf, ok := isConditionFailed(err)
		if !ok {
			return fmt.Errorf("count reveal: %w", err)
		}
		if len(ccf.Item) == 0 {
			return errNoUser
		}
		var m metaItem
		if err := attributevalue.UnmarshalMap(ccf.Item, &m); err != nil {
			return fmt.Errorf("count reveal: decode user meta: %w", err)
		}
		if m.RevealWindow == window && m.RevealCount >= int64(limit) {
			s.revealWindows.put(userID, window)
			return &token.RateLimitError{RetryAfter: token.RetryAfter(now)}
		}
		if m.RevealWindow > window {
			// Another container's clock is ahead: count nothing rather than
			// move the window back.
			return &token.RateLimitError{RetryAfter: max(m.RevealWindow-now.Unix(), 1)}
		}
		if attempt >= s.core.retry.attempts {
			return fmt.Errorf("count reveal: %w", errRetriesExhausted)
		}
		known = m.RevealWindow
	}
}

// windowCache remembers, per user, the reveal window this container last
// saw, so that most reveals pick the right update at once. Bounded: when
// full it starts over (a miss costs one more UpdateItem).
type windowCache struct {
	mu      sync.Mutex
	max     int
	windows map[string]int64
}

func newWindowCache(max int) *windowCache {
	return &windowCache{max: max, windows: map[string]int64{}}
}

func (c *windowCache) get(userID string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.windows[userID]
}

func (c *windowCache) put(userID string, window int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.windows[userID]; !ok && len(c.windows) >= c.max {
		clear(c.windows)
	}
	c.windows[userID] = window
}

// Rotate gives the token a new key in one transaction, after one strongly
// consistent read of the token:
//
//   - the token gets the new key_hash, key_mask and sealed key, on the
//     condition that its key_hash is still the one read; with a grace
//     window it records the old hash and its end (prev_key_hash,
//     prev_key_expires), without one it drops them;
//   - the new key's lookup item is put (it must not exist);
//   - the old key's lookup item is deleted (no grace) or given expires_at,
//     the table's TTL attribute (grace);
//   - the lookup item of a key rotated out earlier, still in its grace, is
//     deleted: only the latest replaced key keeps verifying.
//
// A cancelled transaction is re-read and retried only while the token's
// key_hash is still the one first read (a transaction conflict, or a
// failure that did not come from a concurrent rotation). If another
// rotation changed the key meanwhile, this one joins it and answers with
// the token as that rotation left it, its key opened: rotating again would
// revoke the key the other caller was just given (at once without grace),
// and failing would make concurrent requests fail because of each other,
// which the contract rules out. If the key is already the new one (an SDK
// retry of a transaction that committed), the rotation is done.
func (s *Keys) Rotate(ctx context.Context, userID string, id int64, key string, grace time.Duration, now time.Time) (token.Token, error) {
	if err := checkUser(userID); err != nil {
		return token.Token{}, fmt.Errorf("rotate key: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return token.Token{}, err
	}
	if grace < 0 || grace > token.MaxGraceSeconds*time.Second {
		return token.Token{}, token.Errorf(token.EInvalidGrace, "0 to %d seconds", token.MaxGraceSeconds)
	}
	key, err := token.ParseKey(key)
	if err != nil {
		return token.Token{}, fmt.Errorf("rotate key: %w", err)
	}
	newHash := token.HashKey(key)
	var firstHash string
	for attempt := 1; ; attempt++ {
		av, err := s.core.getItem(ctx, tokenKey(userID, id))
		if err != nil {
			return token.Token{}, fmt.Errorf("rotate key: %w", err)
		}
		if av == nil {
			return token.Token{}, fmt.Errorf("rotate key: %w", token.ErrNotFound)
		}
		it, err := decodeTokenItem(av)
		if err != nil {
			return token.Token{}, fmt.Errorf("rotate key: %w", err)
		}
		switch {
		case attempt == 1:
			firstHash = it.KeyHash
		case it.KeyHash == newHash:
			t := toDomainToken(it)
			t.Key = key
			return t, nil
		case it.KeyHash != firstHash:
			t, err := s.openToken(ctx, av)
			if err != nil {
				return token.Token{}, fmt.Errorf("rotate key: join a concurrent rotation: %w", err)
			}
			return t, nil
		}
		in, rotated, err := s.rotateTx(ctx, it, key, grace, now)
		if err != nil {
			return token.Token{}, fmt.Errorf("rotate key: %w", err)
		}
		_, err = s.core.db.TransactWriteItems(ctx, in)
		if err == nil {
			return rotated, nil
		}
		reasons, ok := cancellation(err)
		if !ok {
			return token.Token{}, fmt.Errorf("rotate key: %w", err)
		}
		// Action 0 is the token: its key changed (a concurrent rotation)
		// or it was deleted. Re-read: a deleted token is then not found, a
		// changed key a conflict.
		if reasonCode(reasons, 0) != reasonConditionFailed && !hasReason(reasons, reasonConflict) {
			return token.Token{}, fmt.Errorf("rotate key: transaction cancelled: %s", describeReasons(reasons))
		}
		if attempt >= s.core.retry.attempts {
			return token.Token{}, fmt.Errorf("rotate key: %w", errRetriesExhausted)
		}
		if err := s.core.retry.wait(ctx, attempt); err != nil {
			return token.Token{}, fmt.Errorf("rotate key: %w", err)
		}
	}
}

// rotateTx builds the transaction of one rotation of it to key, and the
// token as it is after it, with its new full key.
func (s *Keys) rotateTx(ctx context.Context, it tokenItem, key string, grace time.Duration, now time.Time) (*dynamodb.TransactWriteItemsInput, token.Token, error) {
	oldHash, newHash := it.KeyHash, token.HashKey(key)
	sealed, err := s.sealer.Seal(ctx, []byte(key), sealAAD(it.PK, it.SK))
	if err != nil {
		return nil, token.Token{}, fmt.Errorf("seal key: %w", err)
	}
	expires := now.Unix() + int64(grace/time.Second)
	update := expression.Set(expression.Name(attrKeyHash), expression.Value(newHash)).
		Set(expression.Name(attrKeyMask), expression.Value(token.MaskKey(key))).
		Set(expression.Name(attrKeySealed), expression.Value(sealed))
	if grace >= time.Second {
		update = update.Set(expression.Name(attrPrevKeyHash), expression.Value(oldHash)).
			Set(expression.Name(attrPrevKeyExpires), expression.Value(expires))
	} else {
		update = update.Remove(expression.Name(attrPrevKeyHash)).Remove(expression.Name(attrPrevKeyExpires))
	}
	expr, err := expression.NewBuilder().
		WithCondition(expression.Name(attrKeyHash).Equal(expression.Value(oldHash))).
		WithUpdate(update).Build()
	if err != nil {
		return nil, token.Token{}, err
	}
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName:                 aws.String(s.core.table),
		Key:                       itemKey(it.PK, it.SK),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}}}

	lav, err := attributevalue.MarshalMap(lookupItem{PK: keyPK(newHash), SK: keySK, UserID: it.UserID, TokenID: it.ID})
	if err != nil {
		return nil, token.Token{}, fmt.Errorf("marshal key lookup: %w", err)
	}
	notExists, err := expression.NewBuilder().
		WithCondition(expression.AttributeNotExists(expression.Name(PartitionKey))).Build()
	if err != nil {
		return nil, token.Token{}, err
	}
	items = append(items, types.TransactWriteItem{Put: &types.Put{
		TableName:                aws.String(s.core.table),
		Item:                     lav,
		ConditionExpression:      notExists.Condition(),
		ExpressionAttributeNames: notExists.Names(),
	}})

	if grace >= time.Second {
		ttl, err := expression.NewBuilder().
			WithCondition(expression.AttributeExists(expression.Name(PartitionKey))).
			WithUpdate(expression.Set(expression.Name(attrExpiresAt), expression.Value(expires))).Build()
		if err != nil {
			return nil, token.Token{}, err
		}
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                 aws.String(s.core.table),
			Key:                       lookupKey(oldHash),
			UpdateExpression:          ttl.Update(),
			ConditionExpression:       ttl.Condition(),
			ExpressionAttributeNames:  ttl.Names(),
			ExpressionAttributeValues: ttl.Values(),
		}})
	} else {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{
			TableName: aws.String(s.core.table),
			Key:       lookupKey(oldHash),
		}})
	}
	if prev := it.PrevKeyHash; prev != "" && prev != oldHash && prev != newHash {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{
			TableName: aws.String(s.core.table),
			Key:       lookupKey(prev),
		}})
	}

	t := toDomainToken(it)
	t.Key, t.KeyHash, t.KeyMask = key, newHash, token.MaskKey(key)
	t.PrevKeyHash, t.PrevKeyExpires = "", 0
	if grace >= time.Second {
		t.PrevKeyHash, t.PrevKeyExpires = oldHash, expires
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, t, nil
}
