package dynamo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// conflictAPI fakes the one failure DynamoDB Local cannot produce: its
// transactions fail with TransactionConflict `conflicts` times, then succeed.
// Every other call the store makes here finds nothing; anything else panics
// through the nil embedded API.
type conflictAPI struct {
	dynamo.API
	mu        sync.Mutex
	conflicts int
	txCalls   int
	gets      int
	item      map[string]types.AttributeValue // what GetItem finds
}

func (f *conflictAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return &dynamodb.GetItemOutput{Item: f.item}, nil
}

func (f *conflictAPI) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txCalls++
	if f.txCalls > f.conflicts {
		return &dynamodb.TransactWriteItemsOutput{}, nil
	}
	reasons := make([]types.CancellationReason, len(in.TransactItems))
	for i := range reasons {
		reasons[i].Code = aws.String("None")
	}
	reasons[len(reasons)-1].Code = aws.String("TransactionConflict")
	return nil, &types.TransactionCanceledException{
		Message:             aws.String("Transaction cancelled"),
		CancellationReasons: reasons,
	}
}

func newFakeStore(t *testing.T, api dynamo.API) parts {
	t.Helper()
	sealer, err := seal.NewAESGCM(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := newParts(t, api, "tokens", sealer, 0)
	dynamo.SetRetry(s.core, 10, time.Millisecond, 5*time.Millisecond)
	return s
}

// conflictCases are the TransactionConflict runs every transaction's retry
// is tested with: the fake cancels the first conflicts attempts; with the
// retry bound of newFakeStore (10 attempts) the last one never succeeds.
var conflictCases = []struct {
	name        string
	conflicts   int
	wantTxCalls int
	wantErr     bool
}{
	{"one conflict", 1, 2, false},
	{"three conflicts", 3, 4, false},
	{"conflicts never end", 1000, 10, true},
}

func TestCreateRetriesTransactionConflict(t *testing.T) {
	for _, tt := range conflictCases {
		t.Run(tt.name, func(t *testing.T) {
			api := &conflictAPI{conflicts: tt.conflicts}
			s := newFakeStore(t, api)
			toks := mustTokens(t, "u", spec("x", 2))
			got, err := s.tokens.Create(context.Background(), "u", toks)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Create error = %v, want error: %v", err, tt.wantErr)
			}
			if api.txCalls != tt.wantTxCalls {
				t.Errorf("TransactWriteItems called %d times, want %d", api.txCalls, tt.wantTxCalls)
			}
			if api.gets != tt.wantTxCalls {
				t.Errorf("meta read %d times, want once per attempt (%d)", api.gets, tt.wantTxCalls)
			}
			if tt.wantErr {
				if code := token.ErrorCode(err); code != token.EInternal {
					t.Errorf("error code %q, want %q", code, token.EInternal)
				}
				return
			}
			if len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 || got[0].Key != toks[0].Key {
				t.Errorf("Create returned %+v, want ids 1, 2 with their keys", got)
			}
		})
	}
}

func TestCreateStopsWhenContextEnds(t *testing.T) {
	api := &conflictAPI{conflicts: 1000}
	s := newFakeStore(t, api)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.tokens.Create(ctx, "u", mustTokens(t, "u", spec("x", 1)))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a cancelled context: %v, want context.Canceled", err)
	}
	if api.txCalls != 1 {
		t.Errorf("TransactWriteItems called %d times, want 1", api.txCalls)
	}
}

func TestDeleteRetriesTransactionConflict(t *testing.T) {
	item, err := attributevalue.MarshalMap(map[string]any{
		"pk": "USER#u", "sk": "TOKEN#0000000000000000007", "id": 7, "key_hash": "abc",
	})
	if err != nil {
		t.Fatal(err)
	}
	api := &conflictAPI{conflicts: 2, item: item}
	s := newFakeStore(t, api)
	if err := s.tokens.Delete(context.Background(), "u", 7); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if api.txCalls != 3 || api.gets != 3 {
		t.Errorf("TransactWriteItems called %d times after %d reads, want 3 and 3", api.txCalls, api.gets)
	}
}
