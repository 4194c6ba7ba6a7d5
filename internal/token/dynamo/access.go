package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/auth"
)

// PutAccessToken stores the hash of a new user access token for p. It never
// replaces an existing item.
func (s *Store) PutAccessToken(ctx context.Context, hash string, p auth.Principal) error {
	if hash == "" {
		return errors.New("put access token: empty hash")
	}
	if err := checkUser(p.UserID); err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	if p.Role != auth.RoleUser && p.Role != auth.RoleAdmin {
		return fmt.Errorf("put access token: unknown role %q", p.Role)
	}
	av, err := attributevalue.MarshalMap(accessItem{
		PK:          accessPK(hash),
		SK:          accessSK,
		UserID:      p.UserID,
		Role:        p.Role,
		Status:      statusActive,
		CreatedTime: s.now().Unix(),
	})
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	expr, err := expression.NewBuilder().
		WithCondition(expression.AttributeNotExists(expression.Name(PartitionKey))).Build()
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     av,
		ConditionExpression:      expr.Condition(),
		ExpressionAttributeNames: expr.Names(),
	})
	if _, ok := isConditionFailed(err); ok {
		return errors.New("put access token: an access token with this hash exists")
	}
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	return nil
}

// LookupAccessToken returns the principal of the active access token with
// hash, read strongly consistently, then its user's disabled flag (a second
// strongly consistent GetItem, of the meta item): auth.ErrUnknown for an
// unknown or revoked token, auth.ErrDisabled for a disabled user's.
func (s *Store) LookupAccessToken(ctx context.Context, hash string) (auth.Principal, error) {
	if hash == "" {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            itemKey(accessPK(hash), accessSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", err)
	}
	if len(out.Item) == 0 {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	var it accessItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: decode: %w", err)
	}
	if it.Status != statusActive || it.UserID == "" {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	disabled, err := s.userDisabled(ctx, it.UserID)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", err)
	}
	if disabled {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrDisabled)
	}
	return auth.Principal{UserID: it.UserID, Role: it.Role}, nil
}

// userDisabled reads the disabled flag of the user's meta item, strongly
// consistently, so that disabling a user refuses their next request. A
// missing meta item is a user that is not disabled.
func (s *Store) userDisabled(ctx context.Context, userID string) (bool, error) {
	if err := checkUser(userID); err != nil {
		return false, fmt.Errorf("read user meta: %w", err)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.table),
		Key:                      metaKey(userID),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#d"),
		ExpressionAttributeNames: map[string]string{"#d": attrDisabled},
	})
	if err != nil {
		return false, fmt.Errorf("read user meta: %w", err)
	}
	var m struct {
		Disabled bool `dynamodbav:"disabled"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &m); err != nil {
		return false, fmt.Errorf("read user meta: decode: %w", err)
	}
	return m.Disabled, nil
}

// RevokeAccessToken deletes the access token with hash; an unknown hash is
// not an error.
func (s *Store) RevokeAccessToken(ctx context.Context, hash string) error {
	if hash == "" {
		return nil
	}
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.table),
		Key:       itemKey(accessPK(hash), accessSK),
	})
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}
