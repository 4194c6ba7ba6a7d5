package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/token"
)

// victim is a token to delete: its id and the key hash read before the
// delete, which names its lookup item.
type victim struct {
	id      int64
	keyHash string
	// prevKeyHash names the lookup item of a key rotated out with a grace
	// window, deleted with the token whether or not it has expired.
	prevKeyHash string
}

// Delete removes one token, its key lookup item and one from the user's
// count in one transaction, after a strongly consistent read of its key hash.
func (s *Tokens) Delete(ctx context.Context, userID string, id int64) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if err := token.CheckID(id); err != nil {
		return err
	}
	n, err := s.deleteVictims(ctx, userID, []int64{id})
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("delete token: %w", token.ErrNotFound)
	}
	return nil
}

// maxDeleteTx is the most tokens one delete transaction removes: each
// takes its lookup item and maybe a rotated-out key's, and the meta item is
// one more action, within DynamoDB's 100.
const maxDeleteTx = 33

// DeleteMany removes the user's tokens among ids, maxDeleteTx per
// transaction, and returns how many it removed. Ids the user does not own
// (or that a concurrent call removed first) are skipped.
func (s *Tokens) DeleteMany(ctx context.Context, userID string, ids []int64) (int, error) {
	if err := checkUser(userID); err != nil {
		return 0, fmt.Errorf("delete tokens: %w", err)
	}
	ids, err := token.UniqueIDs(ids)
	if err != nil {
		return 0, err
	}
	n, err := s.deleteVictims(ctx, userID, ids)
	if err != nil {
		return n, fmt.Errorf("delete tokens: %w", err)
	}
	return n, nil
}

// deleteVictims deletes the existing tokens among ids and returns how many
// it deleted. A transaction cancelled because a token vanished (or by a
// conflict) is retried with a fresh read of its chunk.
func (s *Tokens) deleteVictims(ctx context.Context, userID string, ids []int64) (int, error) {
	deleted := 0
	for start := 0; start < len(ids); start += maxDeleteTx {
		chunk := ids[start:min(start+maxDeleteTx, len(ids))]
		for attempt := 1; ; attempt++ {
			victims, err := s.readKeyHashes(ctx, userID, chunk)
			if err != nil {
				return deleted, err
			}
			if len(victims) == 0 {
				break
			}
			err = s.deleteTx(ctx, userID, victims)
			if err == nil {
				deleted += len(victims)
				break
			}
			reasons, ok := cancellation(err)
			if !ok {
				return deleted, err
			}
			// Actions: tokens [0,n), then lookups and the meta item. A token that
			// vanished (a concurrent delete; the count then fails its
			// condition too) or a conflict: re-read and retry. The count
			// failing alone means it would go below zero.
			n := len(victims)
			vanished := false
			for i := 0; i < n; i++ {
				vanished = vanished || reasonCode(reasons, i) == reasonConditionFailed
			}
			if !vanished && !hasReason(reasons, reasonConflict) {
				return deleted, fmt.Errorf("transaction cancelled: %s", describeReasons(reasons))
			}
			if attempt >= s.core.retry.attempts {
				return deleted, errRetriesExhausted
			}
			if err := s.core.retry.wait(ctx, attempt); err != nil {
				return deleted, err
			}
			// Only the ids still present are worth reading again.
			chunk = victimIDs(victims)
		}
	}
	return deleted, nil
}

func victimIDs(vs []victim) []int64 {
	ids := make([]int64, len(vs))
	for i, v := range vs {
		ids[i] = v.id
	}
	return ids
}

// deleteTx deletes victims in one transaction: each token conditioned on the
// key hash read (so a vanished or replaced token cancels it), each lookup
// item, and the count on the meta item.
func (s *Tokens) deleteTx(ctx context.Context, userID string, victims []victim) error {
	n := len(victims)
	items := make([]types.TransactWriteItem, 0, 2*n+1)
	lookups := make([]types.TransactWriteItem, 0, n)
	for _, v := range victims {
		expr, err := expression.NewBuilder().
			WithCondition(expression.Name(attrKeyHash).Equal(expression.Value(v.keyHash))).Build()
		if err != nil {
			return err
		}
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{
			TableName:                 aws.String(s.core.table),
			Key:                       tokenKey(userID, v.id),
			ConditionExpression:       expr.Condition(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		}})
		lookups = append(lookups, types.TransactWriteItem{Delete: &types.Delete{
			TableName: aws.String(s.core.table),
			Key:       lookupKey(v.keyHash),
		}})
		if v.prevKeyHash != "" && v.prevKeyHash != v.keyHash {
			lookups = append(lookups, types.TransactWriteItem{Delete: &types.Delete{
				TableName: aws.String(s.core.table),
				Key:       lookupKey(v.prevKeyHash),
			}})
		}
	}
	items = append(items, lookups...)

	cond := expression.AttributeExists(expression.Name(PartitionKey)).
		And(expression.Name(attrTokenCount).GreaterThanEqual(expression.Value(n)))
	update := expression.Add(expression.Name(attrTokenCount), expression.Value(-n))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(update).Build()
	if err != nil {
		return err
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName:                 aws.String(s.core.table),
		Key:                       metaKey(userID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}})
	_, err = s.core.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	return err
}

// readKeyHashes reads, strongly consistently, which of ids (at most 100)
// the user owns and their key hashes, in the order of ids.
func (s *Tokens) readKeyHashes(ctx context.Context, userID string, ids []int64) ([]victim, error) {
	if len(ids) == 1 {
		// One id: a GetItem, as cheap and simpler to trace than a batch.
		av, err := s.core.getItem(ctx, tokenKey(userID, ids[0]))
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		if av == nil {
			return nil, nil
		}
		v, err := decodeVictim(av)
		if err != nil {
			// The one token asked for: its own error, not a skip.
			return nil, err
		}
		return []victim{v}, nil
	}

	proj, err := expression.NewBuilder().WithProjection(expression.NamesList(expression.Name(PartitionKey), expression.Name(SortKey),
		expression.Name("id"), expression.Name(attrKeyHash), expression.Name(attrPrevKeyHash))).Build()
	if err != nil {
		return nil, err
	}
	items, err := s.core.batchGetTokens(ctx, userID, ids, &proj)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]victim, len(ids))
	for _, av := range items {
		v, err := decodeVictim(av)
		if isUnreadable(err) {
			skipUnreadable(ctx, "delete tokens", userID, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		byID[v.id] = v
	}
	victims := make([]victim, 0, len(byID))
	for _, id := range ids {
		if v, ok := byID[id]; ok {
			victims = append(victims, v)
		}
	}
	return victims, nil
}

// victimItem is what a delete reads of a token item: only the attributes
// it needs, so a token whose other attributes cannot be decoded can still
// be deleted by its owner.
type victimItem struct {
	ID          int64  `dynamodbav:"id"`
	KeyHash     string `dynamodbav:"key_hash"`
	PrevKeyHash string `dynamodbav:"prev_key_hash"`
}

// decodeVictim decodes what a delete needs of a token item; an item
// without them is unreadable (token_unreadable).
func decodeVictim(av map[string]types.AttributeValue) (victim, error) {
	var it victimItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return victim{}, unreadable(av, err)
	}
	if it.KeyHash == "" || it.ID <= 0 {
		return victim{}, unreadable(av, errors.New("no id or key hash"))
	}
	return victim{id: it.ID, keyHash: it.KeyHash, prevKeyHash: it.PrevKeyHash}, nil
}
