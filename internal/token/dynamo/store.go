// Package dynamo is the DynamoDB store of tokens and user access tokens, on
// the single table of the README's "Data model":
//
//	token       pk USER#<uid>      sk TOKEN#<id, 19 digits>
//	user meta   pk USER#<uid>      sk USER     token_count, next_id (last id issued)
//	key lookup  pk KEY#<sha256>    sk KEY      user_id, token_id
//	access      pk ACCESS#<sha256> sk ACCESS   user_id, role, status, created_time
//	request     pk REQ#<uid>#<token id>#<request id>  sk REQ  a relay request's record (request.go)
//
// The store is split by the role each part serves, all over one Core (the
// client, the table, the retry policy and the request builders):
//
//	Tokens        token.Store, the HTTP handlers' (and the usage endpoint's key lookup)
//	Keys          token.KeyStore: reveal and rotate
//	Ledger        token.Ledger: what verify reads and writes, request records included
//	AccessTokens  auth.Store, and the user's disabled flag
//
// Only Tokens (create seals each new key) and Keys hold a sealer.
//
// Creates and deletes change tokens, their lookup items and the meta item in
// one TransactWriteItems guarded by conditions, so the per-user count and the
// id counter stay exact under concurrency. Every read that backs a response
// is strongly consistent.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
)

// The table's key attributes.
const (
	PartitionKey = "pk"
	SortKey      = "sk"
)

// API is the part of *dynamodb.Client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Core is what every part of the store shares: the client, the table and
// the retry policy. Build one per container and the parts a function
// needs from it.
type Core struct {
	db    API
	table string
	retry retryPolicy
}

// NewCore returns the Core of table through client.
func NewCore(client API, table string) (*Core, error) {
	switch {
	case client == nil:
		return nil, errors.New("dynamo: no client")
	case table == "":
		return nil, errors.New("dynamo: no table name")
	}
	return &Core{db: client, table: table, retry: defaultRetry}, nil
}

// defaultRetry is bounded mainly by the caller's context: the HTTP handlers
// end it a second before the Lambda deadline, so a request that keeps losing
// races answers in time. 50 concurrent creates for one user against DynamoDB
// Local needed up to 8 attempts; 64 is a backstop for a caller without one.
var defaultRetry = retryPolicy{attempts: 64, base: 10 * time.Millisecond, max: 500 * time.Millisecond}

// retryPolicy bounds the re-read-and-retry loops of transactions that lost
// a race, and the re-reads of keys a batch read left unprocessed:
// full-jitter exponential backoff.
type retryPolicy struct {
	attempts int
	base     time.Duration
	max      time.Duration
}

// wait sleeps before retry number n (1-based), or returns ctx's error.
func (p retryPolicy) wait(ctx context.Context, n int) error {
	d := p.base << min(n-1, 20)
	if d > p.max || d <= 0 {
		d = p.max
	}
	d = rand.N(d) + 1
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// errRetriesExhausted ends a retry loop that kept losing races.
var errRetriesExhausted = errors.New("too many concurrent changes, retries exhausted")

// getItem reads the item at key with one strongly consistent GetItem; nil
// when there is no such item.
func (c *Core) getItem(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	in := &dynamodb.GetItemInput{
		TableName:      aws.String(c.table),
		Key:            key,
		ConsistentRead: aws.Bool(true),
	}
	out, err := c.db.GetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// batchGet reads the items at keys (at most 100) strongly consistently with
// BatchGetItem, again for keys DynamoDB leaves unprocessed (throttled), after
// a pause; proj's projection (optional) limits the attributes read. Missing
// items are absent from the result, which is in no particular order.
func (c *Core) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, proj *expression.Expression) ([]map[string]types.AttributeValue, error) {
	ka := types.KeysAndAttributes{Keys: keys, ConsistentRead: aws.Bool(true)}
	if proj != nil {
		ka.ProjectionExpression, ka.ExpressionAttributeNames = proj.Projection(), proj.Names()
	}
	request := map[string]types.KeysAndAttributes{c.table: ka}
	var items []map[string]types.AttributeValue
	for attempt := 1; ; attempt++ {
		out, err := c.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Responses[c.table]...)
		if len(out.UnprocessedKeys[c.table].Keys) == 0 {
			return items, nil
		}
		if attempt >= c.retry.attempts {
			return nil, fmt.Errorf("unprocessed keys: %w", errRetriesExhausted)
		}
		if err := c.retry.wait(ctx, attempt); err != nil {
			return nil, err
		}
		request = out.UnprocessedKeys
	}
}

// updateInput is the UpdateItem of the item at key with expr's update and
// its condition, if it has one; a failed condition returns the item as it
// was, so the caller can tell why without another read.
func (c *Core) updateInput(key map[string]types.AttributeValue, expr expression.Expression) *dynamodb.UpdateItemInput {
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(c.table),
		Key:                       key,
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}
	if in.ConditionExpression != nil {
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	}
	return in
}

// cancellation returns the reasons of a cancelled transaction, or ok=false
// when err is not one.
func cancellation(err error) (reasons []types.CancellationReason, ok bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, false
	}
	return tce.CancellationReasons, true
}

// Cancellation reason codes.
const (
	reasonConditionFailed = "ConditionalCheckFailed"
	reasonConflict        = "TransactionConflict"
)

func reasonCode(reasons []types.CancellationReason, i int) string {
	if i < 0 || i >= len(reasons) || reasons[i].Code == nil {
		return ""
	}
	return *reasons[i].Code
}

func hasReason(reasons []types.CancellationReason, code string) bool {
	for i := range reasons {
		if reasonCode(reasons, i) == code {
			return true
		}
	}
	return false
}

// describeReasons lists the codes of a cancelled transaction, for errors.
// It never includes item contents.
func describeReasons(reasons []types.CancellationReason) string {
	codes := make([]string, len(reasons))
	for i := range reasons {
		codes[i] = reasonCode(reasons, i)
	}
	return "[" + strings.Join(codes, " ") + "]"
}

// isConditionFailed reports a failed condition of a single-item write.
func isConditionFailed(err error) (*types.ConditionalCheckFailedException, bool) {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ccf, true
	}
	return nil, false
}

// checkUser refuses a user id that could escape its key space.
func checkUser(userID string) error {
	if err := auth.CheckUserID(userID); err != nil {
		return fmt.Errorf("invalid user id: %w", err)
	}
	return nil
}

func itemKey(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		PartitionKey: &types.AttributeValueMemberS{Value: pk},
		SortKey:      &types.AttributeValueMemberS{Value: sk},
	}
}

func metaKey(userID string) map[string]types.AttributeValue {
	return itemKey(userPK(userID), metaSK)
}

func tokenKey(userID string, id int64) map[string]types.AttributeValue {
	return itemKey(userPK(userID), tokenSK(id))
}

func lookupKey(keyHash string) map[string]types.AttributeValue {
	return itemKey(keyPK(keyHash), keySK)
}

func isMeta(av map[string]types.AttributeValue) bool {
	sk, ok := av[SortKey].(*types.AttributeValueMemberS)
	return ok && sk.Value == metaSK
}

// userRead is what readWithUser found: the token item and the request
// record item (nil when absent or not asked for), and the user's disabled
// flag from the meta item.
type userRead struct {
	token, request map[string]types.AttributeValue
	userDisabled   bool
}

// readWithUser reads a token with its user's meta item, and the request
// record with key request when it is not nil, in one strongly consistent
// BatchGetItem: the read of verify and of usage by key.
func (c *Core) readWithUser(ctx context.Context, userID string, tokenID int64, request map[string]types.AttributeValue) (userRead, error) {
	keys := []map[string]types.AttributeValue{tokenKey(userID, tokenID), metaKey(userID)}
	if request != nil {
		keys = append(keys, request)
	}
	items, err := c.batchGet(ctx, keys, nil)
	if err != nil {
		return userRead{}, err
	}
	var r userRead
	for _, av := range items {
		switch {
		case isMeta(av):
			var m metaItem
			if err := attributevalue.UnmarshalMap(av, &m); err != nil {
				return userRead{}, fmt.Errorf("decode user meta: %w", err)
			}
			r.userDisabled = m.Disabled
		case isRequest(av):
			r.request = av
		default:
			r.token = av
		}
	}
	return r, nil
}

// readToken reads the user's token id; found false when there is none.
func (c *Core) readToken(ctx context.Context, userID string, id int64) (t token.Token, found bool, err error) {
	av, err := c.getItem(ctx, tokenKey(userID, id))
	if err != nil || av == nil {
		return token.Token{}, false, err
	}
	t, err = decodeToken(av)
	return t, err == nil, err
}

// batchGetTokens reads the user's tokens among ids (at most 100), see
// batchGet.
func (c *Core) batchGetTokens(ctx context.Context, userID string, ids []int64, proj *expression.Expression) ([]map[string]types.AttributeValue, error) {
	keys := make([]map[string]types.AttributeValue, len(ids))
	for i, id := range ids {
		keys[i] = tokenKey(userID, id)
	}
	items, err := c.batchGet(ctx, keys, proj)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return items, nil
}

// readMeta reads the user's meta item; a user without one has the zero
// metaItem.
func (c *Core) readMeta(ctx context.Context, userID string) (metaItem, error) {
	av, err := c.getItem(ctx, metaKey(userID))
	if err != nil {
		return metaItem{}, fmt.Errorf("read user meta: %w", err)
	}
	var m metaItem
	if av == nil {
		return m, nil
	}
	if err := attributevalue.UnmarshalMap(av, &m); err != nil {
		return metaItem{}, fmt.Errorf("decode user meta: %w", err)
	}
	return m, nil
}

// readLookup reads the lookup item of the key with keyHash; found false
// when there is none. What a found item means (its user, its grace) is the
// caller's to judge.
func (c *Core) readLookup(ctx context.Context, keyHash string) (l lookupItem, found bool, err error) {
	av, err := c.getItem(ctx, lookupKey(keyHash))
	if err != nil {
		return lookupItem{}, false, fmt.Errorf("read key lookup: %w", err)
	}
	if av == nil {
		return lookupItem{}, false, nil
	}
	if err := attributevalue.UnmarshalMap(av, &l); err != nil {
		return lookupItem{}, false, fmt.Errorf("decode key lookup: %w", err)
	}
	return l, true, nil
}

// lookUpKey maps a key hash to its token at now, as token.Ledger's
// LookupKey documents; Tokens and Ledger both answer it.
func (c *Core) lookUpKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error) {
	l, found, err := c.readLookup(ctx, keyHash)
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("look up key: %w", err)
	case !found:
		return "", 0, fmt.Errorf("look up key: %w", token.ErrNotFound)
	case checkUser(l.UserID) != nil || l.TokenID <= 0:
		return "", 0, errors.New("look up key: malformed lookup item")
	case !l.live(now):
		// A rotated-out key whose grace ended; TTL has not deleted it yet.
		return "", 0, fmt.Errorf("look up key: %w", token.ErrNotFound)
	}
	return l.UserID, l.TokenID, nil
}

func decodeToken(av map[string]types.AttributeValue) (token.Token, error) {
	it, err := decodeTokenItem(av)
	if err != nil {
		return token.Token{}, err
	}
	return toDomainToken(it), nil
}

// decodeTokenItem decodes a whole token item; one that does not decode, or
// has no id or key hash, is unreadable.
func decodeTokenItem(av map[string]types.AttributeValue) (tokenItem, error) {
	var it tokenItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return tokenItem{}, unreadable(av, err)
	}
	if it.ID <= 0 || it.KeyHash == "" {
		return tokenItem{}, unreadable(av, errors.New("no id or key hash"))
	}
	return it, nil
}

// unreadable is the error of a token item that cannot be decoded (written
// by an older version, or by hand): code token_unreadable, with the
// item's sort key and the cause for the log.
func unreadable(av map[string]types.AttributeValue, cause error) error {
	sk := "?"
	if v, ok := av[SortKey].(*types.AttributeValueMemberS); ok {
		sk = v.Value
	}
	return fmt.Errorf("decode token %s: %w: %w", sk, &token.Error{Code: token.ETokenUnreadable}, cause)
}

// isUnreadable reports whether err is a token item that cannot be decoded.
func isUnreadable(err error) bool { return token.ErrorCode(err) == token.ETokenUnreadable }

// skipUnreadable logs a token that a read of several tokens (list, search,
// batch delete, batch reveal) leaves out because it cannot be decoded: an
// error of that token alone, never of the whole call.
func skipUnreadable(ctx context.Context, op, userID string, err error) {
	slog.ErrorContext(ctx, "skipping a token that cannot be decoded",
		"op", op, "user_id", userID, "code", token.ETokenUnreadable, "error", err.Error())
}
