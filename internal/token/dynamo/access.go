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

	"github.com/llmgw/token-service/internal/auth"
)

// attrAccessIssued marks, on a user's meta item, that an access token was
// issued here for the user (Unix seconds of the first one).
const attrAccessIssued = "access_issued"

// AccessTokens keeps user access tokens (auth.Store), what the authorizer
// reads and cmd/admin writes, and the user's disabled flag, which refuses
// both their access tokens and their keys.
type AccessTokens struct {
	core *Core
	now  func() time.Time
}

var _ auth.Store = (*AccessTokens)(nil)

// NewAccessTokens returns the access token store over core.
func NewAccessTokens(core *Core) *AccessTokens { return &AccessTokens{core: core, now: time.Now} }

// PutAccessToken stores the hash of a new user access token for p. It never
// replaces an existing item. In the same transaction it marks the user's
// meta item as a user of this deployment (access_issued, set once), so that
// an import never mistakes a user who holds only an access token here for a
// new one and merges another person into them (README "Migrating from
// new-api or one-api"). The marker holds no counter: a first create still
// finds no next_id.
func (s *AccessTokens) PutAccessToken(ctx context.Context, hash string, p auth.Principal) error {
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
	marker, err := expression.NewBuilder().WithUpdate(expression.Set(expression.Name(attrAccessIssued),
		expression.IfNotExists(expression.Name(attrAccessIssued), expression.Value(s.now().Unix())))).Build()
	if err != nil {
		return fmt.Errorf("put access token: %w", err)
	}
	_, err = s.core.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                aws.String(s.core.table),
			Item:                     av,
			ConditionExpression:      expr.Condition(),
			ExpressionAttributeNames: expr.Names(),
		}},
		{Update: &types.Update{
			TableName:                 aws.String(s.core.table),
			Key:                       metaKey(p.UserID),
			UpdateExpression:          marker.Update(),
			ExpressionAttributeNames:  marker.Names(),
			ExpressionAttributeValues: marker.Values(),
		}},
	}})
	if reasons, ok := cancellation(err); ok && reasonCode(reasons, 0) == reasonConditionFailed {
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
func (s *AccessTokens) LookupAccessToken(ctx context.Context, hash string) (auth.Principal, error) {
	if hash == "" {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	av, err := s.core.getItem(ctx, itemKey(accessPK(hash), accessSK))
	if err != nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", err)
	}
	if av == nil {
		return auth.Principal{}, fmt.Errorf("lookup access token: %w", auth.ErrUnknown)
	}
	var it accessItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
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
// missing meta item is a user that is not disabled. The whole item is read
// (a few numbers: the read costs what the flag alone would).
func (s *AccessTokens) userDisabled(ctx context.Context, userID string) (bool, error) {
	if err := checkUser(userID); err != nil {
		return false, fmt.Errorf("read user meta: %w", err)
	}
	m, err := s.core.readMeta(ctx, userID)
	if err != nil {
		return false, err
	}
	return m.Disabled, nil
}

// RevokeAccessToken deletes the access token with hash; an unknown hash is
// not an error.
func (s *AccessTokens) RevokeAccessToken(ctx context.Context, hash string) error {
	if hash == "" {
		return nil
	}
	_, err := s.core.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.core.table),
		Key:       itemKey(accessPK(hash), accessSK),
	})
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// SetUserDisabled sets the user's disabled flag on their meta item (made if
// missing): a disabled user's access tokens are refused, and their keys
// verify as "disabled", whatever their tokens' status.
func (s *AccessTokens) SetUserDisabled(ctx context.Context, userID string, disabled bool) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	expr, err := expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrDisabled), expression.Value(disabled))).Build()
	if err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	if _, err := s.core.db.UpdateItem(ctx, s.core.updateInput(metaKey(userID), expr)); err != nil {
		return fmt.Errorf("set user disabled: %w", err)
	}
	return nil
}
