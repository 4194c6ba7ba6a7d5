package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/memstore"
)

// usageNow is the tests' clock: tokens expiring after it are live.
var usageNow = time.Unix(1_800_000_000, 0)

// usageEnv is the usage function over an in-memory store, the calls it
// makes to the store counted. What each call costs in DynamoDB is the
// store's test (internal/token/dynamo TestKeyLookupRequests: one GetItem
// each).
type usageEnv struct {
	store   *memstore.Store
	calls   *countingKeyStore
	handler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
}

func newUsageEnv(t *testing.T) usageEnv {
	t.Helper()
	store := MustStore(t)
	calls := &countingKeyStore{KeyStore: store}
	return usageEnv{store: store, calls: calls,
		handler: api.LambdaHandler(api.UsageToken(calls, func() time.Time { return usageNow }))}
}

// countingKeyStore counts the calls that reach the store, by method.
type countingKeyStore struct {
	api.KeyStore
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingKeyStore) count(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[method]++
}

func (c *countingKeyStore) LookupKey(ctx context.Context, keyHash string, now time.Time) (string, int64, error) {
	c.count("LookupKey")
	return c.KeyStore.LookupKey(ctx, keyHash, now)
}

func (c *countingKeyStore) GetWithUser(ctx context.Context, userID string, id int64) (token.Token, bool, error) {
	c.count("GetWithUser")
	return c.KeyStore.GetWithUser(ctx, userID, id)
}

// take returns the calls so far and forgets them.
func (c *countingKeyStore) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := maps.Clone(c.calls)
	clear(c.calls)
	if got == nil {
		got = map[string]int{}
	}
	return got
}

// create stores one token of s for user and returns it with its full key.
func (e usageEnv) create(t *testing.T, user string, s token.Spec) token.Token {
	t.Helper()
	s.Count = 1
	toks, err := s.Tokens(user, usageNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.store.Create(context.Background(), user, toks)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return got[0]
}

func (e usageEnv) update(t *testing.T, tok token.Token, p token.Patch) {
	t.Helper()
	if _, err := e.store.Update(context.Background(), tok.UserID, tok.ID, p, usageNow); err != nil {
		t.Fatalf("update: %v", err)
	}
}

// setKeyHash writes what a rotation leaves on tok, behind the store: the
// current key hash and, with a grace window, the replaced key's hash and
// its end. The key lookups stay as they are.
func (e usageEnv) setKeyHash(t *testing.T, tok token.Token, hash, prevHash string, prevExpires int64) {
	t.Helper()
	err := e.store.Edit(tok.UserID, tok.ID, func(t *token.Token) {
		t.KeyHash, t.PrevKeyHash, t.PrevKeyExpires = hash, prevHash, prevExpires
	})
	if err != nil {
		t.Fatal(err)
	}
}

// usageResult is one answer of the usage function.
type usageResult struct {
	status  int
	headers map[string]string
	body    string
}

// call runs events/usage-token.json with the Authorization header set to
// auth (removed when auth is "") and the extra headers through the function.
func (e usageEnv) call(t *testing.T, auth string, headers ...string) usageResult {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "usage-token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestContext.Authorizer != nil {
		t.Fatal("events/usage-token.json carries an authorizer verdict; its route has none")
	}
	delete(ev.Headers, "authorization")
	if auth != "" {
		ev.Headers["authorization"] = auth
	}
	for i := 0; i+1 < len(headers); i += 2 {
		ev.Headers[headers[i]] = headers[i+1]
	}
	out, err := e.handler(context.Background(), ev)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	return usageResult{status: out.StatusCode, headers: out.Headers, body: out.Body}
}

// want checks the status, the no-store header and the body, as JSON values
// (so the shape is exact: no field more, none less).
func (r usageResult) want(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.headers["Cache-Control"]; got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	var got, want any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatalf("bad want %s: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body\n%s\nwant\n%s", r.body, body)
	}
}

func bearer(key string) string { return "Bearer " + key }

// usageBody is a usage answer for a key without spend windows (budget_usage
// {}; budgets_test.go covers a key with them).
func usageBody(name string, granted, used, available int64, unlimited bool, limits string, enabled bool, expires int64) string {
	return fmt.Sprintf(`{"code":true,"message":"ok","data":{"object":"token_usage","name":%q,"total_granted":%d,"total_used":%d,"total_available":%d,"unlimited_quota":%v,"model_limits":%s,"model_limits_enabled":%v,"expires_at":%d,"budget_usage":{}}}`,
		name, granted, used, available, unlimited, limits, enabled, expires)
}

func TestUsageTokenShape(t *testing.T) {
	e := newUsageEnv(t)
	expires := usageNow.Unix() + 86400
	limited := e.create(t, "u1", token.Spec{Name: "limited", ExpiredTime: expires, RemainQuota: 1000,
		ModelLimitsEnabled: true, ModelLimits: []string{"gpt-4", "claude-3"}})
	// 300 of it spent, as the relay's consume of 300 leaves the token.
	err := e.store.Edit(limited.UserID, limited.ID, func(t *token.Token) { t.RemainQuota, t.UsedQuota = 700, 300 })
	if err != nil {
		t.Fatalf("spend: %v", err)
	}
	never := e.create(t, "u1", token.Spec{Name: "不过期", ExpiredTime: token.NeverExpires, RemainQuota: 5})
	unlimited := e.create(t, "u2", token.Spec{Name: "unlimited", ExpiredTime: token.NeverExpires, UnlimitedQuota: true,
		ModelLimits: []string{"gpt-4o"}})

	tests := []struct {
		name string
		auth string
		want string
	}{
		{"limits, used quota, expiry", bearer(limited.Key),
			usageBody("limited", 1000, 300, 700, false, `{"gpt-4":true,"claude-3":true}`, true, expires)},
		{"never expires reads 0, no limits reads {}", bearer(never.Key),
			usageBody("不过期", 5, 0, 5, false, `{}`, false, 0)},
		{"unlimited; listed models even when limits are off", bearer(unlimited.Key),
			usageBody("unlimited", 0, 0, 0, true, `{"gpt-4o":true}`, false, 0)},
		{"key without sk-", bearer(strings.TrimPrefix(never.Key, token.KeyPrefix)),
			usageBody("不过期", 5, 0, 5, false, `{}`, false, 0)},
		{"lower-case scheme, extra spaces", "  bearer   " + never.Key + " ",
			usageBody("不过期", 5, 0, 5, false, `{}`, false, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.calls.take()
			r := e.call(t, tt.auth)
			r.want(t, 200, tt.want)
			// The key lookup, then the token.
			if got, want := e.calls.take(), map[string]int{"LookupKey": 1, "GetWithUser": 1}; !maps.Equal(got, want) {
				t.Errorf("store calls %v, want %v", got, want)
			}
			if m := fullKey.FindString(r.body); m != "" {
				t.Errorf("body holds a full key: %s", r.body)
			}
		})
	}
}

func TestUsageTokenUnusableKeysStillRead(t *testing.T) {
	e := newUsageEnv(t)
	past := usageNow.Unix() - 60
	disabled := e.create(t, "u1", token.Spec{Name: "disabled", ExpiredTime: token.NeverExpires, RemainQuota: 10})
	st := token.StatusDisabled
	e.update(t, disabled, token.Patch{Status: &st})
	expired := e.create(t, "u1", token.Spec{Name: "expired", ExpiredTime: usageNow.Unix() + 60, RemainQuota: 10})
	e.update(t, expired, token.Patch{ExpiredTime: &past})
	exhausted := e.create(t, "u1", token.Spec{Name: "exhausted", ExpiredTime: token.NeverExpires, RemainQuota: 0})

	tests := []struct {
		name string
		key  string
		want string
	}{
		{"disabled", disabled.Key, usageBody("disabled", 10, 0, 10, false, `{}`, false, 0)},
		{"expired", expired.Key, usageBody("expired", 10, 0, 10, false, `{}`, false, past)},
		{"exhausted", exhausted.Key, usageBody("exhausted", 0, 0, 0, false, `{}`, false, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.call(t, bearer(tt.key)).want(t, 200, tt.want)
		})
	}
}

func TestUsageTokenRefusesBeforeTheStore(t *testing.T) {
	e := newUsageEnv(t)
	good := e.create(t, "u1", token.Spec{Name: "good", ExpiredTime: token.NeverExpires, RemainQuota: 1})
	// The same body with its checksum broken.
	last := good.Key[len(good.Key)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	badSum := good.Key[:len(good.Key)-1] + string(flip)

	const missing = `{"code":false,"message":"未提供令牌"}`
	const invalid = `{"code":false,"message":"无效的令牌"}`
	tests := []struct {
		name, auth, want string
	}{
		{"no Authorization header", "", missing},
		{"blank header", "   ", missing},
		{"Bearer without a key", "Bearer", missing},
		{"Bearer and spaces", "Bearer    ", missing},
		{"not Bearer", "Basic " + good.Key, invalid},
		{"key without a scheme", good.Key, invalid},
		{"three parts", "Bearer " + good.Key + " x", invalid},
		{"bad checksum", bearer(badSum), invalid},
		{"too short", bearer("sk-123"), invalid},
		{"new-api channel suffix", bearer(good.Key + "-2"), invalid},
		{"not base62", bearer(good.Key[:10] + "_" + good.Key[11:]), invalid},
		{"user access token", bearer("at-" + strings.Repeat("A", 43)), invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.calls.take()
			e.call(t, tt.auth).want(t, 401, tt.want)
			if got := e.calls.take(); len(got) != 0 {
				t.Errorf("store calls %v, want none", got)
			}
		})
	}
	t.Run("english", func(t *testing.T) {
		e.call(t, "", "accept-language", "en-US,en;q=0.9").want(t, 401, `{"code":false,"message":"Token not provided"}`)
		e.call(t, bearer(badSum), "accept-language", "en").want(t, 401, `{"code":false,"message":"Invalid token"}`)
	})
}

func TestUsageTokenDeadKeys(t *testing.T) {
	e := newUsageEnv(t)
	ctx := context.Background()
	const invalid = `{"code":false,"message":"无效的令牌"}`

	unknown, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	deleted := e.create(t, "u1", token.Spec{Name: "deleted", ExpiredTime: token.NeverExpires, RemainQuota: 1})
	if err := e.store.Delete(ctx, deleted.UserID, deleted.ID); err != nil {
		t.Fatal(err)
	}
	// A rotated-out key: its lookup item still names the token, whose key
	// hash is now another key's (what a rotation past its grace leaves).
	rotated := e.create(t, "u1", token.Spec{Name: "rotated", ExpiredTime: token.NeverExpires, RemainQuota: 1})
	newKey, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	e.setKeyHash(t, rotated, token.HashKey(newKey), "", 0)
	// A key rotated out with a grace window that lasts until usageNow+60.
	graced := e.create(t, "u1", token.Spec{Name: "graced", ExpiredTime: token.NeverExpires, RemainQuota: 1})
	e.setKeyHash(t, graced, token.HashKey(newKey), graced.KeyHash, usageNow.Unix()+60)
	t.Run("rotated out, within its grace", func(t *testing.T) {
		e.call(t, bearer(graced.Key)).want(t, 200, usageBody("graced", 1, 0, 1, false, `{}`, false, 0))
	})
	t.Run("rotated out, grace over", func(t *testing.T) {
		later := e
		later.handler = api.LambdaHandler(api.UsageToken(e.store, func() time.Time { return usageNow.Add(time.Minute) }))
		later.call(t, bearer(graced.Key)).want(t, 401, invalid)
	})

	tests := []struct {
		name, key string
		wantCalls map[string]int
	}{
		{"unknown", unknown, map[string]int{"LookupKey": 1}},
		{"deleted", deleted.Key, map[string]int{"LookupKey": 1}},
		{"rotated out", rotated.Key, map[string]int{"LookupKey": 1, "GetWithUser": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.calls.take()
			e.call(t, bearer(tt.key)).want(t, 401, invalid)
			if got := e.calls.take(); !maps.Equal(got, tt.wantCalls) {
				t.Errorf("store calls %v, want %v", got, tt.wantCalls)
			}
		})
	}
}

func TestUsageTokenServerError(t *testing.T) {
	store := brokenStore{table: "no-such-table"}
	key, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	e := usageEnv{handler: api.LambdaHandler(api.UsageToken(store, func() time.Time { return usageNow }))}
	r := e.call(t, bearer(key))
	r.want(t, 500, `{"code":false,"message":"`+api.Message(token.EInternal, api.LangZH)+`"}`)
	if strings.Contains(r.body, "no-such-table") || strings.Contains(r.body, "ResourceNotFound") {
		t.Errorf("500 leaks internals: %s", r.body)
	}
}
