package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// maxTxTokens is the most tokens one transaction creates: each token has
// its lookup item and the meta item is one more action, and a transaction
// holds at most 100.
const maxTxTokens = token.MaxCount

// Create stores tokens for userID: one strongly consistent read of the meta
// item, then one transaction that puts every token and its key lookup item and
// moves the meta item's id counter and count, conditioned on the counter it
// read. A transaction that lost a race is re-read and retried.
func (s *Tokens) Create(ctx context.Context, userID string, tokens []token.Token) ([]token.Token, error) {
	if err := checkUser(userID); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	n := len(tokens)
	if n < 1 || n > maxTxTokens {
		return nil, token.Errorf(token.EInvalidCount, "1 to %d", maxTxTokens)
	}
	prepared := make([]token.Token, n)
	for i, t := range tokens {
		key, err := token.ParseKey(t.Key)
		if err != nil {
			return nil, fmt.Errorf("create token: token %d: %w", i, err)
		}
		t.UserID, t.Key, t.KeyHash, t.KeyMask = userID, key, token.HashKey(key), token.MaskKey(key)
		prepared[i] = t
	}

	for attempt := 1; ; attempt++ {
		meta, err := s.core.readMeta(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		if meta.TokenCount+n > s.limit {
			return nil, fmt.Errorf("create token: %w", token.ErrLimitReached)
		}
		in, created, err := s.createTx(ctx, userID, prepared, meta)
		if err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
		_, err = s.core.db.TransactWriteItems(ctx, in)
		if err == nil {
			return created, nil
		}
		reasons, ok := cancellation(err)
		if !ok {
			return nil, fmt.Errorf("create token: %w", err)
		}
		// Actions: tokens [0,n), key lookups [n,2n), meta 2n. When the meta
		// condition failed another create took these ids first (so the
		// token puts fail too): re-read and retry. A token or lookup that
		// exists while the counter held is a broken counter or a key
		// collision: never retried.
		if reasonCode(reasons, 2*n) != reasonConditionFailed && !hasReason(reasons, reasonConflict) {
			return nil, fmt.Errorf("create token: transaction cancelled: %s", describeReasons(reasons))
		}
		if attempt >= s.core.retry.attempts {
			return nil, fmt.Errorf("create token: %w", errRetriesExhausted)
		}
		if err := s.core.retry.wait(ctx, attempt); err != nil {
			return nil, fmt.Errorf("create token: %w", err)
		}
	}
}

// createTx builds the transaction of one create attempt on top of meta, and
// the tokens it stores as Create returns them (with their full keys).
func (s *Tokens) createTx(ctx context.Context, userID string, tokens []token.Token, meta metaItem) (*dynamodb.TransactWriteItemsInput, []token.Token, error) {
	n := len(tokens)
	items := make([]types.TransactWriteItem, 0, 2*n+1)
	lookups := make([]types.TransactWriteItem, 0, n)
	created := make([]token.Token, n)

	notExists, err := expression.NewBuilder().
		WithCondition(expression.AttributeNotExists(expression.Name(PartitionKey))).Build()
	if err != nil {
		return nil, nil, err
	}
	for i, t := range tokens {
		t.ID = meta.NextID + int64(i) + 1
		it := toDBToken(t)
		it.KeySealed, err = s.sealer.Seal(ctx, []byte(t.Key), sealAAD(it.PK, it.SK))
		if err != nil {
			return nil, nil, fmt.Errorf("seal key: %w", err)
		}
		av, err := attributevalue.MarshalMap(it)
		if err != nil {
			return nil, nil, fmt.Errorf("marshal token: %w", err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName:                aws.String(s.core.table),
			Item:                     av,
			ConditionExpression:      notExists.Condition(),
			ExpressionAttributeNames: notExists.Names(),
		}})
		lav, err := attributevalue.MarshalMap(lookupItem{PK: keyPK(t.KeyHash), SK: keySK, UserID: userID, TokenID: t.ID})
		if err != nil {
			return nil, nil, fmt.Errorf("marshal key lookup: %w", err)
		}
		lookups = append(lookups, types.TransactWriteItem{Put: &types.Put{
			TableName:                aws.String(s.core.table),
			Item:                     lav,
			ConditionExpression:      notExists.Condition(),
			ExpressionAttributeNames: notExists.Names(),
		}})
		c := toDomainToken(it)
		c.Key = t.Key
		created[i] = c
	}
	items = append(items, lookups...)

	// The counter is the guard: any concurrent create moves it. Deletes only
	// lower the count, which ADD applies exactly.
	var counter expression.ConditionBuilder
	if meta.NextID == 0 {
		counter = expression.AttributeNotExists(expression.Name(attrNextID)).
			Or(expression.Name(attrNextID).Equal(expression.Value(0)))
	} else {
		counter = expression.Name(attrNextID).Equal(expression.Value(meta.NextID))
	}
	room := expression.AttributeNotExists(expression.Name(attrTokenCount)).
		Or(expression.Name(attrTokenCount).LessThanEqual(expression.Value(s.limit - n)))
	update := expression.Set(expression.Name(attrNextID), expression.Value(meta.NextID+int64(n))).
		Add(expression.Name(attrTokenCount), expression.Value(n))
	expr, err := expression.NewBuilder().WithCondition(counter.And(room)).WithUpdate(update).Build()
	if err != nil {
		return nil, nil, err
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName:                 aws.String(s.core.table),
		Key:                       metaKey(userID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}})
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, created, nil
}
