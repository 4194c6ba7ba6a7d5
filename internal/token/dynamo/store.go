// Package dynamo is the DynamoDB implementation of token.Store and
// auth.Store, on the single table of DESIGN.md "Data model":
//
//	token       pk USER#<uid>      sk TOKEN#<id, 19 digits>
//	user meta   pk USER#<uid>      sk USER     token_count, next_id (last id issued)
//	key lookup  pk KEY#<sha256>    sk KEY      user_id, token_id
//	access      pk ACCESS#<sha256> sk ACCESS   user_id, role, status, created_time
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
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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

// DefaultMaxTokensPerUser is the limit when Config.MaxTokensPerUser is 0.
const DefaultMaxTokensPerUser = 1000

// maxTxTokens is the most tokens one transaction creates or deletes: each
// token has its lookup item and the meta item is one more action, and a
// transaction holds at most 100.
const maxTxTokens = token.MaxCount

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

// Config configures a Store.
type Config struct {
	Client API
	Table  string
	// Sealer encrypts each key at rest, bound to its item's pk and sk.
	Sealer token.Sealer
	// MaxTokensPerUser caps a user's token count; 0 means
	// DefaultMaxTokensPerUser.
	MaxTokensPerUser int
}

// Store keeps tokens and user access tokens in one DynamoDB table.
type Store struct {
	db     API
	table  string
	sealer token.Sealer
	limit  int
	now    func() time.Time
	retry  retryPolicy
	// revealWindows is the reveal window last seen per user (countReveal).
	revealWindows *windowCache
}

var (
	_ token.Store = (*Store)(nil)
	_ auth.Store  = (*Store)(nil)
)

// New returns a Store for cfg.
func New(cfg Config) (*Store, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("dynamo: no client")
	case cfg.Table == "":
		return nil, errors.New("dynamo: no table name")
	case cfg.Sealer == nil:
		return nil, errors.New("dynamo: no sealer")
	case cfg.MaxTokensPerUser < 0:
		return nil, fmt.Errorf("dynamo: negative token limit %d", cfg.MaxTokensPerUser)
	}
	limit := cfg.MaxTokensPerUser
	if limit == 0 {
		limit = DefaultMaxTokensPerUser
	}
	return &Store{
		db:     cfg.Client,
		table:  cfg.Table,
		sealer: cfg.Sealer,
		limit:  limit,
		now:    time.Now,
		retry:  defaultRetry,

		revealWindows: newWindowCache(10_000),
	}, nil
}

// defaultRetry is bounded mainly by the caller's context: the HTTP handlers
// end it a second before the Lambda deadline, so a request that keeps losing
// races answers in time. 50 concurrent creates for one user against DynamoDB
// Local needed up to 8 attempts; 64 is a backstop for a caller without one.
var defaultRetry = retryPolicy{attempts: 64, base: 10 * time.Millisecond, max: 500 * time.Millisecond}

// retryPolicy bounds the re-read-and-retry loops of transactions that lost
// a race: full-jitter exponential backoff.
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

// conditionalUpdate is the UpdateItem of the item at key with expr's update
// and condition; a failed condition returns the item as it was, so the
// caller can tell why without another read.
func (s *Store) conditionalUpdate(key map[string]types.AttributeValue, expr expression.Expression) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 key,
		UpdateExpression:                    expr.Update(),
		ConditionExpression:                 expr.Condition(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}
