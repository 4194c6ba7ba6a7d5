package dynamo_test

import (
	"context"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/token"
)

// TestRequestsPerOperation pins the DynamoDB work of each store method, counted
// by the SDK middleware, at two token counts: the list's first page and a
// get must not grow with the user's tokens.
func TestRequestsPerOperation(t *testing.T) {
	for _, existing := range []int{1, 120} {
		e := newEnv(t, 1000)
		var counter ddbcount.Counter
		store := newParts(t, dynamodb.New(e.client.Options(), counter.Option), e.table, e.sealer, 1000)
		ctx := context.Background()
		const user = "cost-user"
		var created []token.Token
		for len(created) < existing {
			n := min(existing-len(created), token.MaxCount)
			created = append(created, mustCreate(t, store.tokens, user, mustTokens(t, user, spec("t", n)))...)
		}
		newest := created[len(created)-1]
		rename := "renamed"
		disable := token.StatusDisabled

		tests := []struct {
			name string
			run  func() error
			want map[string]int
		}{
			{"get", func() error { _, err := store.tokens.Get(ctx, user, newest.ID); return err },
				map[string]int{"GetItem": 1}},
			{"list page 1", func() error { _, err := store.tokens.List(ctx, user, 1, 20); return err },
				map[string]int{"Query": 1}},
			{"list far past the end", func() error {
				p, err := store.tokens.List(ctx, user, 100000, 100)
				if err == nil && (len(p.Items) != 0 || p.Total != existing) {
					t.Errorf("page past the end = %d items, total %d", len(p.Items), p.Total)
				}
				return err
			}, map[string]int{"Query": 1}},
			{"create", func() error {
				_, err := store.tokens.Create(ctx, user, mustTokens(t, user, spec("c", 1)))
				return err
			}, map[string]int{"GetItem": 1, "TransactWriteItems": 1}},
			{"update", func() error {
				_, err := store.tokens.Update(ctx, user, newest.ID, token.Patch{Name: &rename}, now)
				return err
			}, map[string]int{"UpdateItem": 1}},
			{"status-only update", func() error {
				_, err := store.tokens.Update(ctx, user, newest.ID, token.Patch{Status: &disable}, now)
				return err
			}, map[string]int{"UpdateItem": 1}},
			{"search by exact key", func() error {
				_, err := store.tokens.Search(ctx, user, token.SearchQuery{Key: newest.Key}, 100)
				return err
			}, map[string]int{"GetItem": 2}},
			{"delete", func() error { return store.tokens.Delete(ctx, user, newest.ID) },
				map[string]int{"GetItem": 1, "TransactWriteItems": 1}},
		}
		for _, tt := range tests {
			counter.Reset()
			if err := tt.run(); err != nil {
				t.Fatalf("%d tokens, %s: %v", existing, tt.name, err)
			}
			if got := counter.Counts(); !maps.Equal(got, tt.want) {
				t.Errorf("%d tokens, %s: requests = %v, want %v", existing, tt.name, got, tt.want)
			}
		}
	}
}
