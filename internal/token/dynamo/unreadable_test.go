package dynamo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/storetest"
)

// corrupt sets attr of tok's item to v (removes it when v is nil) behind
// the store, as an older version or a hand edit would.
func corrupt(t *testing.T, client *dynamodb.Client, table string, tok token.Token, attr string, v types.AttributeValue) {
	t.Helper()
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "USER#" + tok.UserID},
			"sk": &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", tok.ID)},
		},
		UpdateExpression:         aws.String("REMOVE #a"),
		ExpressionAttributeNames: map[string]string{"#a": attr},
	}
	if v != nil {
		in.UpdateExpression = aws.String("SET #a = :v")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": v}
	}
	if _, err := client.UpdateItem(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// handlerCall runs h as the Lambda function of an HTTP route, for user.
func handlerCall(t *testing.T, h http.Handler, user, path, query, body string, pathID int64) (int, api.Envelope, string) {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{
		RawPath:        path,
		RawQueryString: query,
		Headers:        map[string]string{"content-type": "application/json"},
		Body:           body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID:  "req-1",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodGet, Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: map[string]any{"userId": user}},
		},
	}
	if body != "" {
		ev.RequestContext.HTTP.Method = http.MethodPost
	}
	if pathID > 0 {
		ev.PathParameters = map[string]string{"id": fmt.Sprint(pathID)}
	}
	out, err := api.LambdaHandler(h)(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var env api.Envelope
	if err := json.Unmarshal([]byte(out.Body), &env); err != nil {
		t.Fatalf("%s: not an envelope: %v: %s", path, err, out.Body)
	}
	return out.StatusCode, env, out.Body
}

// TestUnreadableTokens: a token item that cannot be decoded (a used_quota
// past int64, an attribute of the wrong type, no key hash) is that token's
// own error (token_unreadable on get), never its owner's: list, search,
// batch delete and batch reveal answer with the others.
func TestUnreadableTokens(t *testing.T) {
	ctx := context.Background()
	raw, table := dynamotest.NewTable(t)
	s := contractStores(t, raw, table, 1000)
	at := time.Unix(1_800_000_000, 0)
	toks, err := token.Spec{Name: "tok", Count: 6, ExpiredTime: token.NeverExpires, RemainQuota: 10}.Tokens("u1", at)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Tokens.Create(ctx, "u1", toks)
	if err != nil {
		t.Fatal(err)
	}
	good1, overflow, wrongType, wrongList, noHash, good6 := created[0], created[1], created[2], created[3], created[4], created[5]
	// What issue 13 saw: a used_quota past int64 after 18,447 consumes.
	corrupt(t, raw, table, overflow, "used_quota", &types.AttributeValueMemberN{Value: "9227000000000000000"})
	corrupt(t, raw, table, wrongType, "status", &types.AttributeValueMemberS{Value: "enabled"})
	corrupt(t, raw, table, wrongList, "model_limits", &types.AttributeValueMemberS{Value: "gpt-4,gpt-4o"})
	corrupt(t, raw, table, noHash, "key_hash", nil)
	bad := []token.Token{overflow, wrongType, wrongList, noHash}
	readable := []int64{good6.ID, good1.ID} // newest first

	t.Run("get answers the token's own error", func(t *testing.T) {
		for _, b := range bad {
			if _, err := s.Tokens.Get(ctx, "u1", b.ID); token.ErrorCode(err) != token.ETokenUnreadable {
				t.Errorf("Get(%d): %v, want %s", b.ID, err, token.ETokenUnreadable)
			}
			if _, _, err := s.Lookup.GetWithUser(ctx, "u1", b.ID); token.ErrorCode(err) != token.ETokenUnreadable {
				t.Errorf("GetWithUser(%d): %v, want %s", b.ID, err, token.ETokenUnreadable)
			}
			if _, err := s.Keys.RevealKey(ctx, "u1", b.ID, 0, at); token.ErrorCode(err) != token.ETokenUnreadable {
				t.Errorf("RevealKey(%d): %v, want %s", b.ID, err, token.ETokenUnreadable)
			}
		}
		if got, err := s.Tokens.Get(ctx, "u1", good1.ID); err != nil || got.ID != good1.ID {
			t.Errorf("Get(%d) of a readable token: %v", good1.ID, err)
		}
	})

	t.Run("list and search leave them out", func(t *testing.T) {
		page, err := s.Tokens.List(ctx, "u1", 1, 100)
		if err != nil || !slices.Equal(tokenIDs(page.Items), readable) || page.Total != 6 {
			t.Errorf("List = %v total %d, %v; want %v total 6", tokenIDs(page.Items), page.Total, err, readable)
		}
		// Pages keep their places: page 1 of 3 holds 6, 5 and 4 less the
		// unreadable 5 and 4; page 2 holds 3, 2, 1 less 3 and 2.
		for _, p := range []struct {
			page int
			want []int64
		}{{1, []int64{6}}, {2, []int64{1}}, {3, []int64{}}} {
			got, err := s.Tokens.List(ctx, "u1", p.page, 3)
			if err != nil || !slices.Equal(tokenIDs(got.Items), p.want) {
				t.Errorf("List page %d of 3 = %v, %v; want %v", p.page, tokenIDs(got.Items), err, p.want)
			}
		}
		found, err := s.Tokens.Search(ctx, "u1", token.SearchQuery{Keyword: "tok"}, 100)
		if err != nil || !slices.Equal(tokenIDs(found), readable) {
			t.Errorf("Search = %v, %v; want %v", tokenIDs(found), err, readable)
		}
		for _, b := range bad {
			found, err := s.Tokens.Search(ctx, "u1", token.SearchQuery{Key: b.Key}, 100)
			if err != nil || len(found) != 0 {
				t.Errorf("Search by the whole key of %d = %v, %v; want none", b.ID, tokenIDs(found), err)
			}
		}
	})

	t.Run("the handlers answer 200 with the others, and a clear error on get", func(t *testing.T) {
		clock := func() time.Time { return at }
		status, env, body := handlerCall(t, api.ListTokens(s.Tokens, clock), "u1", "/api/token", "p=1&size=100", "", 0)
		var page api.ListPage
		if err := json.Unmarshal(mustJSON(t, env.Data), &page); status != 200 || err != nil || len(page.Items) != 2 {
			t.Errorf("list: %d, %d items: %s", status, len(page.Items), body)
		}
		status, _, body = handlerCall(t, api.SearchTokens(s.Tokens, clock), "u1", "/api/token/search", "keyword=tok", "", 0)
		if status != 200 {
			t.Errorf("search: %d: %s", status, body)
		}
		status, env, body = handlerCall(t, api.GetToken(s.Tokens, clock), "u1", "/api/token/2", "", "", overflow.ID)
		if status != 500 || env.Code != token.ETokenUnreadable || strings.Contains(body, "9227") || strings.Contains(body, "strconv") {
			t.Errorf("get of an unreadable token: %d: %s; want 500 %s without internals", status, body, token.ETokenUnreadable)
		}
	})

	t.Run("batch reveal leaves them out", func(t *testing.T) {
		ids := []int64{good1.ID, overflow.ID, wrongType.ID, wrongList.ID, noHash.ID, good6.ID}
		got, err := s.Keys.RevealKeys(ctx, "u1", ids, 0, at)
		if err != nil || !slices.Equal(tokenIDs(got), []int64{good1.ID, good6.ID}) {
			t.Errorf("RevealKeys = %v, %v; want %v", tokenIDs(got), err, []int64{good1.ID, good6.ID})
		}
	})

	t.Run("delete needs only the id and key hash", func(t *testing.T) {
		// Without a key hash the token cannot be deleted with its lookup
		// item: its own error alone, skipped by a batch.
		if err := s.Tokens.Delete(ctx, "u1", noHash.ID); token.ErrorCode(err) != token.ETokenUnreadable {
			t.Errorf("Delete(%d) without a key hash: %v, want %s", noHash.ID, err, token.ETokenUnreadable)
		}
		status, env, body := handlerCall(t, api.BatchDeleteTokens(s.Tokens), "u1", "/api/token/batch",
			"", fmt.Sprintf(`{"ids":[%d,%d,%d,%d]}`, good1.ID, overflow.ID, wrongType.ID, noHash.ID), 0)
		if status != 200 || string(mustJSON(t, env.Data)) != "3" {
			t.Errorf("batch delete: %d: %s; want 200 and 3 deleted", status, body)
		}
		// A single unreadable token can be deleted by its owner too.
		if err := s.Tokens.Delete(ctx, "u1", wrongList.ID); err != nil {
			t.Errorf("Delete(%d) of a token with a wrong attribute: %v", wrongList.ID, err)
		}
		page, err := s.Tokens.List(ctx, "u1", 1, 100)
		if err != nil || !slices.Equal(tokenIDs(page.Items), []int64{good6.ID}) || page.Total != 2 {
			t.Errorf("after the deletes: List = %v total %d, %v; want [%d] total 2", tokenIDs(page.Items), page.Total, err, good6.ID)
		}
		for _, tok := range []token.Token{overflow, wrongType, wrongList} {
			if _, _, err := s.Lookup.LookupKey(ctx, token.HashKey(tok.Key), at); token.ErrorCode(err) != token.ENotFound {
				t.Errorf("key of deleted token %d: LookupKey %v, want not found", tok.ID, err)
			}
		}
	})
}

func tokenIDs(ts []token.Token) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLargestListsPageOnDynamoDB: 100 tokens at the largest lists read in
// one page of 100 through the list handler on DynamoDB Local: 200, under
// 1 MB, with one Query.
func TestLargestListsPageOnDynamoDB(t *testing.T) {
	ctx := context.Background()
	s, counter, _, _ := countedContractStores(t)
	at := time.Unix(1_800_000_000, 0)
	models := storetest.ModelLimitsOf(token.MaxModels, token.MaxModelLimitsBytes)
	ips := storetest.AllowIPsOf(token.MaxAllowIPs, token.MaxAllowIPsBytes)
	for _, count := range []int{token.MaxCount, token.MaxCount, 100 - 2*token.MaxCount} {
		toks, err := token.Spec{Name: "big", Count: count, ExpiredTime: token.NeverExpires, UnlimitedQuota: true,
			ModelLimitsEnabled: true, ModelLimits: models, AllowIPs: ips}.Tokens("big", at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Tokens.Create(ctx, "big", toks); err != nil {
			t.Fatal(err)
		}
	}
	counter.Reset()
	status, env, body := handlerCall(t, api.ListTokens(s.Tokens, func() time.Time { return at }), "big", "/api/token", "size=100", "", 0)
	var page api.ListPage
	if err := json.Unmarshal(mustJSON(t, env.Data), &page); status != 200 || err != nil || len(page.Items) != 100 {
		t.Fatalf("list: %d, %d items, %v", status, len(page.Items), err)
	}
	if len(body) >= 1<<20 {
		t.Errorf("a page of 100 is %d bytes, want under 1 MB", len(body))
	}
	if got := counter.Counts(); got["Query"] != 1 || counter.Total() != 1 {
		t.Errorf("DynamoDB requests %v, want one Query", got)
	}
}
