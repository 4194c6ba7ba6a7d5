package dynamo_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/ddbcount"
	"github.com/llmgw/token-service/internal/dynamotest"
	"github.com/llmgw/token-service/internal/seal"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
	"github.com/llmgw/token-service/internal/token/storetest"
)

// contractStores is the one place this file builds the DynamoDB store:
// every role of it the contract uses, over one core on table through
// client, with the per-user token limit limit.
func contractStores(t *testing.T, client dynamo.API, table string, limit int) storetest.Stores {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	core, err := dynamo.NewCore(client, table)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := dynamo.NewTokens(core, sealer, limit)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dynamo.NewKeys(core, sealer)
	if err != nil {
		t.Fatal(err)
	}
	access := dynamo.NewAccessTokens(core)
	return storetest.Stores{Tokens: tokens, Keys: keys, Lookup: tokens, Access: access, Users: access,
		Windows: func(t *testing.T, userID string, id int64, w map[token.Period]token.BudgetWindow) {
			t.Helper()
			writeWindows(t, client, table, userID, id, w)
		}}
}

// writeWindows writes a token's spend-window state by hand, as verify's
// charges leave it: bs_<period> (the window's start) and bu_<period> (what
// it counted), top-level attributes of the token item (budgets.go).
func writeWindows(t *testing.T, client dynamo.API, table, userID string, id int64, w map[token.Period]token.BudgetWindow) {
	t.Helper()
	var sets []string
	values := map[string]types.AttributeValue{}
	for i, p := range token.Periods {
		win, ok := w[p]
		if !ok {
			continue
		}
		sets = append(sets, fmt.Sprintf("bs_%s = :s%d, bu_%s = :u%d", p, i, p, i))
		values[fmt.Sprintf(":s%d", i)] = &types.AttributeValueMemberN{Value: fmt.Sprint(win.Start)}
		values[fmt.Sprintf(":u%d", i)] = &types.AttributeValueMemberN{Value: fmt.Sprint(win.Used)}
	}
	if len(sets) == 0 {
		return
	}
	_, err := client.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "USER#" + userID},
			"sk": &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", id)},
		},
		UpdateExpression:          aws.String("SET " + strings.Join(sets, ", ")),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: values,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContract holds the DynamoDB store to the contract the in-memory
// store of the handler tests passes too (internal/token/memstore), each
// case on a fresh DynamoDB Local table.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, limit int) storetest.Stores {
		client, table := dynamotest.NewTable(t)
		return contractStores(t, client, table, limit)
	})
}

// countedContractStores are contractStores on a fresh table whose requests
// counter counts; raw is an uncounted client of the same table.
func countedContractStores(t *testing.T) (s storetest.Stores, counter *ddbcount.Counter, raw *dynamodb.Client, table string) {
	t.Helper()
	raw, table = dynamotest.NewTable(t)
	counter = &ddbcount.Counter{}
	return contractStores(t, dynamodb.New(raw.Options(), counter.Option), table, 1000), counter, raw, table
}

// TestKeyLookupRequests pins the DynamoDB work of the usage endpoint's
// reads (internal/api's tests pin that it makes them: LookupKey, then
// GetWithUser when the key is known): one GetItem of the key lookup item,
// then one BatchGetItem of the token and its user's meta item, whatever the
// key's state.
func TestKeyLookupRequests(t *testing.T) {
	ctx := context.Background()
	at := time.Unix(1_800_000_000, 0)
	s, counter, raw, table := countedContractStores(t)
	mustOne := func(user, name string) token.Token {
		t.Helper()
		toks, err := token.Spec{Name: name, Count: 1, ExpiredTime: token.NeverExpires, RemainQuota: 1}.Tokens(user, at)
		if err != nil {
			t.Fatal(err)
		}
		created, err := s.Tokens.Create(ctx, user, toks)
		if err != nil {
			t.Fatal(err)
		}
		return created[0]
	}
	newKey := func() string {
		k, err := token.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	live := mustOne("u1", "live")
	deleted := mustOne("u1", "deleted")
	if err := s.Tokens.Delete(ctx, "u1", deleted.ID); err != nil {
		t.Fatal(err)
	}
	// A rotated-out key whose lookup item still names the token, whose key
	// hash is now another key's (what a rotation past its grace leaves
	// until TTL deletes the item).
	rotated := mustOne("u1", "rotated")
	writeKeyHash(t, raw, table, rotated, token.HashKey(newKey()), "", 0)
	// A key rotated out with a grace window that lasts until at+60.
	graced := mustOne("u2", "graced")
	writeKeyHash(t, raw, table, graced, token.HashKey(newKey()), graced.KeyHash, at.Unix()+60)

	tests := []struct {
		name     string
		key      string
		at       time.Time
		wantOK   bool // LookupKey found it and the token accepts it
		wantReqs map[string]int
	}{
		{"live key", live.Key, at, true, map[string]int{"GetItem": 1, "BatchGetItem": 1}},
		{"rotated out, within its grace", graced.Key, at, true, map[string]int{"GetItem": 1, "BatchGetItem": 1}},
		{"rotated out, the token refuses it", rotated.Key, at, false, map[string]int{"GetItem": 1, "BatchGetItem": 1}},
		{"unknown", newKey(), at, false, map[string]int{"GetItem": 1}},
		{"deleted", deleted.Key, at, false, map[string]int{"GetItem": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counter.Reset()
			hash := token.HashKey(tt.key)
			ok := false
			user, id, err := s.Lookup.LookupKey(ctx, hash, tt.at)
			if err == nil {
				var tok token.Token
				tok, _, err = s.Lookup.GetWithUser(ctx, user, id)
				ok = err == nil && tok.AcceptsKeyHash(hash, tt.at)
			}
			if err != nil && token.ErrorCode(err) != token.ENotFound {
				t.Fatalf("read: %v", err)
			}
			if ok != tt.wantOK {
				t.Errorf("key accepted = %v, want %v", ok, tt.wantOK)
			}
			if got, want := counter.Counts(), tt.wantReqs; !maps.Equal(got, want) {
				t.Errorf("DynamoDB requests %v, want %v", got, want)
			}
		})
	}
}

// writeKeyHash writes what a rotation leaves on tok's item, behind the
// store: the current key hash and, with a grace window, the replaced key's
// hash and its end. The lookup items stay as they are.
func writeKeyHash(t *testing.T, client *dynamodb.Client, table string, tok token.Token, hash, prevHash string, prevExpires int64) {
	t.Helper()
	update := "SET key_hash = :h REMOVE prev_key_hash, prev_key_expires"
	values := map[string]types.AttributeValue{":h": &types.AttributeValueMemberS{Value: hash}}
	if prevHash != "" {
		update = "SET key_hash = :h, prev_key_hash = :p, prev_key_expires = :x"
		values[":p"] = &types.AttributeValueMemberS{Value: prevHash}
		values[":x"] = &types.AttributeValueMemberN{Value: fmt.Sprint(prevExpires)}
	}
	_, err := client.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "USER#" + tok.UserID},
			"sk": &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", tok.ID)},
		},
		UpdateExpression:          aws.String(update),
		ExpressionAttributeValues: values,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAccessTokenLookupRequests pins the DynamoDB work of the authorizer's
// read (internal/authorizer's tests pin that it makes one, and none for a
// header that cannot hold an access token): one GetItem for an unknown or
// revoked token, two (the token, then its user's meta item) for a known
// one, disabled or not.
func TestAccessTokenLookupRequests(t *testing.T) {
	ctx := context.Background()
	s, counter, _, _ := countedContractStores(t)
	issue := func(user string) string {
		t.Helper()
		tok, err := auth.NewAccessToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Access.PutAccessToken(ctx, auth.Hash(tok), auth.Principal{UserID: user, Role: auth.RoleUser}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := issue("alice")
	disabled := issue("mallory")
	revoked := issue("gone")
	if err := s.Access.RevokeAccessToken(ctx, auth.Hash(revoked)); err != nil {
		t.Fatal(err)
	}
	if err := s.Users.SetUserDisabled(ctx, "mallory", true); err != nil {
		t.Fatal(err)
	}
	unknown, err := auth.NewAccessToken()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		hash     string
		wantErr  error
		wantGets int
	}{
		{"empty hash", "", auth.ErrUnknown, 0},
		{"unknown token", auth.Hash(unknown), auth.ErrUnknown, 1},
		{"revoked token", auth.Hash(revoked), auth.ErrUnknown, 1},
		{"disabled user", auth.Hash(disabled), auth.ErrDisabled, 2},
		{"good token", auth.Hash(good), nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counter.Reset()
			_, err := s.Access.LookupAccessToken(ctx, tt.hash)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("LookupAccessToken error = %v, want %v", err, tt.wantErr)
			}
			if counts := counter.Counts(); counts["GetItem"] != tt.wantGets || counter.Total() != tt.wantGets {
				t.Errorf("DynamoDB requests = %v, want %d GetItem and nothing else", counts, tt.wantGets)
			}
		})
	}
}
