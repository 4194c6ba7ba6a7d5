package securitytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/tools/ddblocal"
	"github.com/llmgw/token-service/tools/stacktest"
)

func TestMain(m *testing.M) { ddblocal.RunTests(m) }

// functions are the template's functions the suite runs: every token
// function, the authorizer, verify and usage.
var functions = []string{
	"AuthorizerFunction", "ListTokensFunction", "SearchTokensFunction", "GetTokenFunction",
	"CreateTokenFunction", "UpdateTokenFunction", "DeleteTokenFunction", "BatchDeleteTokensFunction",
	"RevealTokenKeyFunction", "RevealTokenKeysFunction", "RotateTokenFunction",
	"UsageTokenFunction", "VerifyTokenFunction",
}

// Full keys and user access tokens, as nothing outside a response or the
// caller may hold them.
var (
	keyPattern    = regexp.MustCompile(`sk-[0-9A-Za-z]{48}`)
	accessPattern = regexp.MustCompile(`at-[A-Za-z0-9_-]{43}`)
)

// suite is the one running stack of the package and the secrets its tests
// used, which the final checks look for in the logs and the table.
type suite struct {
	st *stacktest.Stack
	mu sync.Mutex
	// secrets are every full key and access token the tests saw or sent.
	secrets []string
}

func (s *suite) secret(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, v...)
}

// user issues an access token for id.
func (s *suite) user(t *testing.T, id string) string {
	t.Helper()
	tok := s.st.IssueToken(t, id)
	s.secret(tok)
	return tok
}

// apiToken is a token object of a response.
type apiToken struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	Key          string `json:"key"`
	Status       int    `json:"status"`
	RemainQuota  int64  `json:"remain_quota"`
	UsedQuota    int64  `json:"used_quota"`
	CreatedTime  int64  `json:"created_time"`
	AccessedTime int64  `json:"accessed_time"`
}

// ok makes a call that must succeed and decodes its data into v (if not nil).
func (s *suite) ok(t *testing.T, method, path, access, body string, v any) stacktest.Response {
	t.Helper()
	r := s.st.Call(t, method, path, access, body)
	if r.Status != 200 || !r.Envelope.Success {
		t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
	}
	if v != nil {
		if err := json.Unmarshal(r.Envelope.Data, v); err != nil {
			t.Fatalf("%s %s: data %s: %v", method, path, r.Envelope.Data, err)
		}
	}
	return r
}

// create makes a token and records its key as a secret.
func (s *suite) create(t *testing.T, access, body string) apiToken {
	t.Helper()
	var tok apiToken
	s.ok(t, "POST", "/api/token/", access, body, &tok)
	if !strings.HasPrefix(tok.Key, "sk-") || strings.Contains(tok.Key, "*") {
		t.Fatalf("created token's key %.8s..., want a full key", tok.Key)
	}
	s.secret(tok.Key)
	return tok
}

// reveal returns the full key of the caller's token id.
func (s *suite) reveal(t *testing.T, access string, id int64) string {
	t.Helper()
	var got struct {
		Key string `json:"key"`
	}
	s.ok(t, "POST", fmt.Sprintf("/api/token/%d/key", id), access, "", &got)
	s.secret(got.Key)
	return got.Key
}

// snapshot is what a user can read of their tokens: the list, each token,
// and every full key.
func (s *suite) snapshot(t *testing.T, access string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	r := s.ok(t, "GET", "/api/token/?p=1&size=100", access, "", nil)
	snap["list"] = string(r.Envelope.Data)
	var page struct {
		Items []apiToken `json:"items"`
	}
	if err := json.Unmarshal(r.Envelope.Data, &page); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range page.Items {
		id := strconv.FormatInt(tok.ID, 10)
		ids = append(ids, id)
		snap["get "+id] = string(s.ok(t, "GET", "/api/token/"+id, access, "", nil).Envelope.Data)
	}
	r = s.ok(t, "POST", "/api/token/batch/keys", access, `{"ids":[`+strings.Join(ids, ",")+`]}`, nil)
	snap["keys"] = string(r.Envelope.Data)
	var keys struct {
		Keys map[string]string `json:"keys"`
	}
	_ = json.Unmarshal(r.Envelope.Data, &keys)
	for _, k := range keys.Keys {
		s.secret(k)
	}
	return snap
}

func sameSnapshot(t *testing.T, who string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s's %s changed:\nbefore %s\nafter  %s", who, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s has a new %s: %s", who, k, after[k])
		}
	}
}

// storedToken reads a token's item straight from the table.
func (s *suite) storedToken(t *testing.T, user string, id int64) map[string]types.AttributeValue {
	t.Helper()
	out, err := s.st.DB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(s.st.Table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "USER#" + user},
			"sk": &types.AttributeValueMemberS{Value: fmt.Sprintf("TOKEN#%019d", id)},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func attrS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func attrN(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// TestSecurity runs the stack once and every attack against it, then
// checks the logs and the table for secrets.
func TestSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every function")
	}
	s := &suite{st: stacktest.Start(t, stacktest.Options{
		Template:     "../../template.yaml",
		Functions:    functions,
		MaxInstances: 2,
		// The reveal limit is not under test here; the snapshots reveal often.
		Overrides: map[string]string{"RevealsPerMinute": "10000"},
	})}

	t.Run("authorization matrix", s.testAuthorizationMatrix)
	t.Run("mass assignment", s.testMassAssignment)
	t.Run("identity forgery", s.testIdentityForgery)
	t.Run("authorizer refusals", s.testAuthorizerRefusals)
	t.Run("admin disables a user", s.testDisableUser)
	t.Run("key life cycle", s.testKeyLifeCycle)
	// These two look at everything the ones above did.
	t.Run("no secret in any log line", s.testLogs)
	t.Run("no secret in the table", s.testTable)
}

// testAuthorizationMatrix: for every endpoint and every field carrying a
// token id or key, user B on user A's token gets exactly what B gets on a
// token that does not exist, and A's tokens are unchanged afterwards.
func (s *suite) testAuthorizationMatrix(t *testing.T) {
	alice := s.user(t, "matrix-a")
	bob := s.user(t, "matrix-b")
	a1 := s.create(t, alice, `{"name":"a-one","expired_time":-1,"remain_quota":1000}`)
	a2 := s.create(t, alice, `{"name":"a-two","expired_time":-1,"unlimited_quota":true,"model_limits_enabled":true,"model_limits":"gpt-4","allow_ips":"10.0.0.1"}`)
	// Bob has a token of his own, with an id of his own (1, as Alice's).
	b1 := s.create(t, bob, `{"name":"b-one","expired_time":-1}`)
	const missing = 987654321 // no one's
	missingKey, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a3 := s.create(t, alice, `{"name":"a-three","expired_time":-1}`)
	beforeA := s.snapshot(t, alice)
	beforeB := s.snapshot(t, bob)

	type probe struct {
		name, method, path, body string // %s is the id or key under test
	}
	probes := []probe{
		{"get path id", "GET", "/api/token/%s", ""},
		{"reveal path id", "POST", "/api/token/%s/key", ""},
		{"rotate path id", "POST", "/api/token/%s/rotate", `{"grace_seconds":60}`},
		{"rotate path id, no body", "POST", "/api/token/%s/rotate", ""},
		{"update body id", "PUT", "/api/token/", `{"id":%s,"name":"pwned","remain_quota":1,"status":2}`},
		{"update body id, status only", "PUT", "/api/token/?status_only=true", `{"id":%s,"status":2}`},
		{"batch delete ids", "POST", "/api/token/batch", `{"ids":[%s]}`},
		{"batch reveal ids", "POST", "/api/token/batch/keys", `{"ids":[%s]}`},
		{"delete path id", "DELETE", "/api/token/%s", ""},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			for _, victim := range []int64{a3.ID, a2.ID} {
				if victim <= b1.ID {
					t.Fatalf("alice's token %d has an id bob owns", victim)
				}
				ask := func(id string) stacktest.Response {
					path, body := p.path, p.body
					if strings.Contains(path, "%s") {
						path = fmt.Sprintf(path, id)
					}
					if strings.Contains(body, "%s") {
						body = fmt.Sprintf(body, id)
					}
					return s.st.Call(t, p.method, path, bob, body)
				}
				onA := ask(strconv.FormatInt(victim, 10))
				onMissing := ask(strconv.Itoa(missing))
				sameAnswer(t, onA, onMissing)
				if onA.Status == 200 && p.name != "batch delete ids" && p.name != "batch reveal ids" {
					t.Errorf("bob on alice's token %d: 200 %s", victim, onA.Body)
				}
			}
		})
	}
	// Batch ids mixing one of Bob's own with Alice's: only Bob's counts.
	t.Run("batch reveal mixed ids", func(t *testing.T) {
		var got struct {
			Keys map[string]string `json:"keys"`
		}
		s.ok(t, "POST", "/api/token/batch/keys", bob, fmt.Sprintf(`{"ids":[%d,%d,%d]}`, b1.ID, a3.ID, missing), &got)
		if len(got.Keys) != 1 || got.Keys[strconv.FormatInt(b1.ID, 10)] != b1.Key {
			t.Errorf("keys %v, want only bob's token %d", got.Keys, b1.ID)
		}
		for _, k := range got.Keys {
			s.secret(k)
		}
	})
	t.Run("search by another user's key", func(t *testing.T) {
		for _, q := range []string{"token=%s", "token=%s&keyword=a", "keyword=&token=%s"} {
			for _, strip := range []bool{false, true} {
				key := func(k string) string {
					if strip {
						return strings.TrimPrefix(k, "sk-")
					}
					return k
				}
				onA := s.st.Call(t, "GET", "/api/token/search?"+fmt.Sprintf(q, key(a1.Key)), bob, "")
				onMissing := s.st.Call(t, "GET", "/api/token/search?"+fmt.Sprintf(q, key(missingKey)), bob, "")
				sameAnswer(t, onA, onMissing)
				if string(onA.Envelope.Data) != "[]" {
					t.Errorf("search %s as bob: %s, want []", q, onA.Envelope.Data)
				}
			}
		}
		// Alice finds her own by the same key (the probe can fail).
		var found []apiToken
		s.ok(t, "GET", "/api/token/search?token="+a1.Key, alice, "", &found)
		if len(found) != 1 || found[0].ID != a1.ID {
			t.Errorf("alice's search by her key: %+v, want token %d", found, a1.ID)
		}
	})
	sameSnapshot(t, "alice", beforeA, s.snapshot(t, alice))
	sameSnapshot(t, "bob", beforeB, s.snapshot(t, bob))
}

// sameAnswer compares two answers field by field: status, code, message and
// data.
func sameAnswer(t *testing.T, got, want stacktest.Response) {
	t.Helper()
	if got.Status != want.Status || got.Envelope.Code != want.Envelope.Code ||
		got.Envelope.Message != want.Envelope.Message || !bytes.Equal(got.Envelope.Data, want.Envelope.Data) {
		t.Errorf("on another user's token: %d %s\non a missing token:      %d %s", got.Status, got.Body, want.Status, want.Body)
	}
}

// testMassAssignment: fields a user may not set are ignored on create and
// update, as the stored token shows.
func (s *suite) testMassAssignment(t *testing.T) {
	alice := s.user(t, "mass-a")
	s.user(t, "mass-b")
	forgedKey, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s.secret(forgedKey)
	start := time.Now().Unix()
	body := fmt.Sprintf(`{"name":"mass","expired_time":-1,"remain_quota":100,
		"id":777,"user_id":"mass-b","key":%q,"key_hash":"deadbeef","used_quota":555,
		"created_time":1,"accessed_time":2,"status":2}`, forgedKey)
	created := s.create(t, alice, body)

	t.Run("create", func(t *testing.T) {
		if created.ID == 777 || created.Key == forgedKey || created.UsedQuota != 0 || created.Status != 1 ||
			created.CreatedTime < start || created.AccessedTime == 2 {
			t.Errorf("created %+v: a forbidden field was taken", created)
		}
		item := s.storedToken(t, "mass-a", created.ID)
		if attrS(item, "user_id") != "mass-a" || attrS(item, "key_hash") != token.HashKey(created.Key) ||
			attrN(item, "used_quota") != "0" || attrN(item, "status") != "1" || attrN(item, "id") != strconv.FormatInt(created.ID, 10) {
			t.Errorf("stored token %v: a forbidden field was taken", item)
		}
		if item := s.storedToken(t, "mass-b", created.ID); len(item) != 0 {
			t.Errorf("user mass-b got a token: %v", item)
		}
		if item := s.storedToken(t, "mass-a", 777); len(item) != 0 {
			t.Errorf("token 777 exists: %v", item)
		}
		a, err := stacktest.Verify(context.Background(), stacktest.NewLambdaClient(s.st.LambdaURL), map[string]any{"key": forgedKey})
		if err != nil || a.Valid || a.Code != "not_found" {
			t.Errorf("the forged key verifies: %+v, %v", a, err)
		}
	})

	t.Run("update", func(t *testing.T) {
		before := s.storedToken(t, "mass-a", created.ID)
		var updated apiToken
		s.ok(t, "PUT", "/api/token/", alice, fmt.Sprintf(`{"id":%d,"name":"mass2","user_id":"mass-b","key":%q,
			"key_hash":"deadbeef","used_quota":555,"created_time":1,"accessed_time":2}`, created.ID, forgedKey), &updated)
		if updated.Name != "mass2" {
			t.Fatalf("update did not rename: %+v", updated)
		}
		after := s.storedToken(t, "mass-a", created.ID)
		for _, name := range []string{"user_id", "key_hash", "key_mask", "used_quota", "created_time", "accessed_time", "status", "key_sealed"} {
			if fmt.Sprint(before[name]) != fmt.Sprint(after[name]) {
				t.Errorf("update changed %s: %v -> %v", name, before[name], after[name])
			}
		}
		if item := s.storedToken(t, "mass-b", created.ID); len(item) != 0 {
			t.Errorf("user mass-b got a token: %v", item)
		}
		if k := s.reveal(t, alice, created.ID); k != created.Key {
			t.Errorf("the key changed on update")
		}
	})
}

// testIdentityForgery: a forged API Gateway context header, a body user_id
// and a query user_id naming another user change nothing of the answer's
// user: every HTTP function acts as the authorizer's user.
func (s *suite) testIdentityForgery(t *testing.T) {
	carol := s.user(t, "forge-caller")
	dave := s.user(t, "forge-victim")
	// Both have tokens 1..3, Dave's with their own names.
	var cs, ds []apiToken
	for i := 1; i <= 3; i++ {
		cs = append(cs, s.create(t, carol, fmt.Sprintf(`{"name":"carol-%d","expired_time":-1,"remain_quota":100}`, i)))
		ds = append(ds, s.create(t, dave, fmt.Sprintf(`{"name":"dave-%d","expired_time":-1,"remain_quota":100}`, i)))
	}
	if cs[0].ID != ds[0].ID {
		t.Fatalf("ids differ: %d, %d", cs[0].ID, ds[0].ID)
	}
	beforeDave := s.snapshot(t, dave)
	forged := `{"requestId":"forged","authorizer":{"lambda":{"userId":"forge-victim","role":"admin"}},"http":{"method":"GET","path":"/"}}`
	headers := func(authz string) map[string]string {
		return map[string]string{
			"Authorization":                 authz,
			"X-GoLambdaProxy-ApiGw-Context": forged,
			"X-GoLambdaProxy-Context":       forged,
		}
	}
	call := func(t *testing.T, method, path, body string) stacktest.Response {
		t.Helper()
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := s.st.Do(t, method, path+sep+"user_id=forge-victim&userId=forge-victim", headers("Bearer "+carol), body)
		if r.Status != 200 || !r.Envelope.Success {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		return r
	}
	id := func(i int) string { return strconv.FormatInt(cs[i].ID, 10) }

	t.Run("list", func(t *testing.T) {
		r := call(t, "GET", "/api/token/", "")
		if !strings.Contains(string(r.Envelope.Data), `"carol-1"`) || strings.Contains(string(r.Envelope.Data), "dave-") {
			t.Errorf("list: %s, want carol's tokens", r.Envelope.Data)
		}
	})
	t.Run("search", func(t *testing.T) {
		r := call(t, "GET", "/api/token/search?keyword=-1", "")
		if !strings.Contains(string(r.Envelope.Data), `"carol-1"`) || strings.Contains(string(r.Envelope.Data), "dave-") {
			t.Errorf("search: %s, want carol's token", r.Envelope.Data)
		}
		r = call(t, "GET", "/api/token/search?token="+ds[0].Key, "")
		if string(r.Envelope.Data) != "[]" {
			t.Errorf("search by dave's key: %s, want []", r.Envelope.Data)
		}
	})
	t.Run("get", func(t *testing.T) {
		r := call(t, "GET", "/api/token/"+id(0), "")
		if !strings.Contains(string(r.Envelope.Data), `"carol-1"`) {
			t.Errorf("get: %s, want carol-1", r.Envelope.Data)
		}
	})
	t.Run("create", func(t *testing.T) {
		r := call(t, "POST", "/api/token/", `{"name":"carol-new","expired_time":-1,"user_id":"forge-victim"}`)
		var tok apiToken
		_ = json.Unmarshal(r.Envelope.Data, &tok)
		s.secret(tok.Key)
		if item := s.storedToken(t, "forge-caller", tok.ID); attrS(item, "name") != "carol-new" {
			t.Errorf("carol's token %d: %v, want carol-new", tok.ID, item)
		}
	})
	t.Run("update", func(t *testing.T) {
		call(t, "PUT", "/api/token/", fmt.Sprintf(`{"id":%s,"name":"carol-renamed","user_id":"forge-victim"}`, id(0)))
		call(t, "PUT", "/api/token/?status_only=true", fmt.Sprintf(`{"id":%s,"status":2,"user_id":"forge-victim"}`, id(0)))
		if item := s.storedToken(t, "forge-caller", cs[0].ID); attrS(item, "name") != "carol-renamed" || attrN(item, "status") != "2" {
			t.Errorf("carol's token: %v, want renamed and disabled", item)
		}
	})
	t.Run("reveal", func(t *testing.T) {
		r := call(t, "POST", "/api/token/"+id(1)+"/key", `{"user_id":"forge-victim"}`)
		if !strings.Contains(string(r.Envelope.Data), cs[1].Key) {
			t.Errorf("reveal: not carol's key")
		}
		r = call(t, "POST", "/api/token/batch/keys", fmt.Sprintf(`{"ids":[%s,%s],"user_id":"forge-victim"}`, id(1), id(2)))
		if !strings.Contains(string(r.Envelope.Data), cs[1].Key) || !strings.Contains(string(r.Envelope.Data), cs[2].Key) {
			t.Errorf("batch reveal: not carol's keys")
		}
	})
	t.Run("rotate", func(t *testing.T) {
		r := call(t, "POST", "/api/token/"+id(1)+"/rotate", `{"grace_seconds":0,"user_id":"forge-victim"}`)
		var tok apiToken
		_ = json.Unmarshal(r.Envelope.Data, &tok)
		s.secret(tok.Key)
		if tok.Key == cs[1].Key || tok.Name != "carol-2" {
			t.Errorf("rotate: %+v, want carol-2 with a new key", tok)
		}
		if k := s.reveal(t, carol, cs[1].ID); k != tok.Key {
			t.Error("carol's key is not the rotated one")
		}
	})
	t.Run("usage", func(t *testing.T) {
		r := s.st.Do(t, "GET", "/api/usage/token?user_id=forge-victim", headers("Bearer "+cs[2].Key), "")
		if r.Status != 200 || !strings.Contains(string(r.Body), `"name":"carol-3"`) {
			t.Errorf("usage: %d %s, want carol-3's", r.Status, r.Body)
		}
	})
	t.Run("delete", func(t *testing.T) {
		call(t, "DELETE", "/api/token/"+id(2), `{"user_id":"forge-victim"}`)
		call(t, "POST", "/api/token/batch", fmt.Sprintf(`{"ids":[%s],"user_id":"forge-victim"}`, id(1)))
		for _, i := range []int{1, 2} {
			if item := s.storedToken(t, "forge-caller", cs[i].ID); len(item) != 0 {
				t.Errorf("carol's token %d not deleted", cs[i].ID)
			}
		}
	})
	sameSnapshot(t, "dave", beforeDave, s.snapshot(t, dave))
}

// testAuthorizerRefusals: what the API answers without a valid access
// token, and that a missing header never reaches the authorizer.
func (s *suite) testAuthorizerRefusals(t *testing.T) {
	good := s.user(t, "refusals")
	revoked := s.user(t, "refusals-revoked")
	disabled := s.user(t, "refusals-disabled")
	store := s.st.AccessTokens(t)
	ctx := context.Background()
	if err := store.RevokeAccessToken(ctx, auth.Hash(revoked)); err != nil {
		t.Fatal(err)
	}
	if err := store.SetUserDisabled(ctx, "refusals-disabled", true); err != nil {
		t.Fatal(err)
	}
	unknown, _ := auth.NewAccessToken()
	s.secret(unknown)
	tests := []struct {
		name           string
		header         map[string]string
		wantStatus     int
		wantBody       string
		wantAuthorizer int
	}{
		{"missing header", nil, 401, `{"message":"Unauthorized"}`, 0},
		{"empty header", map[string]string{"Authorization": ""}, 401, `{"message":"Unauthorized"}`, 0},
		{"wrong scheme", map[string]string{"Authorization": "Basic " + good}, 403, `{"message":"Forbidden"}`, 1},
		{"no scheme", map[string]string{"Authorization": good}, 403, `{"message":"Forbidden"}`, 1},
		{"api key as bearer", map[string]string{"Authorization": "Bearer sk-" + strings.Repeat("a", 48)}, 403, `{"message":"Forbidden"}`, 1},
		{"unknown token", map[string]string{"Authorization": "Bearer " + unknown}, 403, `{"message":"Forbidden"}`, 1},
		{"revoked token", map[string]string{"Authorization": "Bearer " + revoked}, 403, `{"message":"Forbidden"}`, 1},
		{"disabled user", map[string]string{"Authorization": "Bearer " + disabled}, 403, `{"message":"Forbidden"}`, 1},
		{"1 MiB header", map[string]string{"Authorization": "Bearer " + strings.Repeat("A", 1<<20)}, 403, `{"message":"Forbidden"}`, 1},
		{"good token", map[string]string{"Authorization": "Bearer " + good}, 200, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.st.Invocations.Take()
			r := s.st.Do(t, "GET", "/api/token/", tt.header, "")
			if r.Status != tt.wantStatus || (tt.wantBody != "" && string(r.Body) != tt.wantBody) {
				t.Errorf("%d %.200s, want %d %s", r.Status, r.Body, tt.wantStatus, tt.wantBody)
			}
			got := s.st.Invocations.Take()
			if got["AuthorizerFunction"] != tt.wantAuthorizer {
				t.Errorf("authorizer ran %d times, want %d", got["AuthorizerFunction"], tt.wantAuthorizer)
			}
			if tt.wantStatus != 200 && got["ListTokensFunction"] != 0 {
				t.Errorf("the function ran after a refusal: %v", got)
			}
		})
	}
}

// testDisableUser: cmd/admin disable-user refuses the user's access tokens
// and keys (verify, and usage by key: 401) from the next request on;
// enable-user restores both.
func (s *suite) testDisableUser(t *testing.T) {
	const uid = "admin-disabled"
	access := s.user(t, uid)
	other := s.user(t, "admin-bystander")
	tok := s.create(t, access, `{"name":"to-disable","expired_time":-1,"remain_quota":100}`)
	otherTok := s.create(t, other, `{"name":"bystander","expired_time":-1,"remain_quota":100}`)
	lambda := stacktest.NewLambdaClient(s.st.LambdaURL)
	ctx := context.Background()

	bin := filepath.Join(t.TempDir(), "admin")
	// Built in the product module, as an operator builds it: the tooling
	// module does not carry the product's KMS client.
	build := exec.Command("go", "build", "-o", bin, "./cmd/admin")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cmd/admin: %v\n%s", err, out)
	}
	admin := func(t *testing.T, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TABLE_NAME="+s.st.Table, "AWS_ENDPOINT_URL_DYNAMODB="+s.st.Endpoint,
			"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("admin %v: %v\n%s", args, err, out)
		}
	}
	steps := []struct {
		name       string
		args       []string
		wantStatus int
		wantValid  bool
		wantCode   string
		wantUsage  int
	}{
		{"before", nil, 200, true, "", 200},
		{"disabled", []string{"disable-user", "-user", uid}, 403, false, "disabled", 401},
		{"enabled", []string{"enable-user", "-user", uid}, 200, true, "", 200},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.args != nil {
				admin(t, st.args...)
			}
			if r := s.st.Call(t, "GET", "/api/token/", access, ""); r.Status != st.wantStatus {
				t.Errorf("list: %d %s, want %d", r.Status, r.Body, st.wantStatus)
			}
			if r := s.st.Call(t, "POST", fmt.Sprintf("/api/token/%d/key", tok.ID), access, ""); r.Status != st.wantStatus {
				t.Errorf("reveal: %d, want %d", r.Status, st.wantStatus)
			}
			a, err := stacktest.Verify(ctx, lambda, map[string]any{"key": tok.Key})
			if err != nil || a.Valid != st.wantValid || a.Code != st.wantCode {
				t.Errorf("verify: %+v, %v; want valid %v code %q", a, err, st.wantValid, st.wantCode)
			}
			if r := s.st.Call(t, "GET", "/api/usage/token", tok.Key, ""); r.Status != st.wantUsage {
				t.Errorf("usage by key: %d %s, want %d", r.Status, r.Body, st.wantUsage)
			}
			// Another user is never affected.
			if r := s.st.Call(t, "GET", "/api/token/", other, ""); r.Status != 200 {
				t.Errorf("bystander's list: %d", r.Status)
			}
			if a, err := stacktest.Verify(ctx, lambda, map[string]any{"key": otherTok.Key}); err != nil || !a.Valid {
				t.Errorf("bystander's key: %+v, %v", a, err)
			}
			if r := s.st.Call(t, "GET", "/api/usage/token", otherTok.Key, ""); r.Status != 200 {
				t.Errorf("bystander's usage by key: %d %s", r.Status, r.Body)
			}
		})
	}
}

// testKeyLifeCycle makes sure every endpoint ran with real keys before the
// log check: create, list, search, get, update, reveal, rotate, verify and
// consume (old and new key), usage, delete, batch delete.
func (s *suite) testKeyLifeCycle(t *testing.T) {
	access := s.user(t, "life")
	lambda := stacktest.NewLambdaClient(s.st.LambdaURL)
	ctx := context.Background()
	tok := s.create(t, access, `{"name":"life","expired_time":-1,"remain_quota":100}`)
	var batch []apiToken
	s.ok(t, "POST", "/api/token/", access, `{"name":"lives","expired_time":-1,"count":2}`, &batch)
	for _, b := range batch {
		s.secret(b.Key)
	}
	id := strconv.FormatInt(tok.ID, 10)
	s.ok(t, "GET", "/api/token/", access, "", nil)
	s.ok(t, "GET", "/api/token/search?keyword=life&token="+tok.Key, access, "", nil)
	s.ok(t, "GET", "/api/token/search?token="+tok.Key[3:10], access, "", nil)
	s.ok(t, "GET", "/api/token/"+id, access, "", nil)
	s.ok(t, "PUT", "/api/token/", access, `{"id":`+id+`,"name":"life2"}`, nil)
	s.reveal(t, access, tok.ID)
	if a, err := stacktest.Verify(ctx, lambda, map[string]any{"key": tok.Key, "consume": 5}); err != nil || !a.Valid {
		t.Fatalf("verify: %+v, %v", a, err)
	}
	var rotated apiToken
	s.ok(t, "POST", "/api/token/"+id+"/rotate", access, `{"grace_seconds":60}`, &rotated)
	s.secret(rotated.Key)
	for _, k := range []string{tok.Key, rotated.Key} {
		if a, err := stacktest.Verify(ctx, lambda, map[string]any{"key": k, "consume": 1}); err != nil || !a.Valid {
			t.Errorf("verify after rotate: %+v, %v", a, err)
		}
	}
	if r := s.st.Do(t, "GET", "/api/usage/token", map[string]string{"Authorization": "Bearer " + rotated.Key}, ""); r.Status != 200 {
		t.Errorf("usage: %d %s", r.Status, r.Body)
	}
	if r := s.st.Do(t, "GET", "/api/usage/token", map[string]string{"Authorization": "Bearer " + access}, ""); r.Status != 401 {
		t.Errorf("usage with an access token: %d %s, want 401", r.Status, r.Body)
	}
	s.ok(t, "DELETE", "/api/token/"+id, access, "", nil)
	s.ok(t, "POST", "/api/token/batch", access, fmt.Sprintf(`{"ids":[%d,%d]}`, batch[0].ID, batch[1].ID), nil)
}

// testLogs: no line of any function or of the runner holds a full key or
// an access token.
func (s *suite) testLogs(t *testing.T) {
	logs := map[string]string{"functions": s.st.Output.String(), "runner": s.st.RunnerLog.String()}
	if !strings.Contains(logs["functions"], "RotateTokenFunction") || !strings.Contains(logs["runner"], "VerifyTokenFunction") {
		t.Fatalf("the logs were not captured:\n%.3000s", logs["functions"])
	}
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	if len(secrets) < 20 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	for name, text := range logs {
		for _, line := range strings.Split(text, "\n") {
			if m := keyPattern.FindString(line); m != "" {
				t.Errorf("%s log line holds a key %.8s...: %.120s", name, m, strings.ReplaceAll(line, m, "<key>"))
			}
			if m := accessPattern.FindString(line); m != "" {
				t.Errorf("%s log line holds an access token %.6s...: %.120s", name, m, strings.ReplaceAll(line, m, "<token>"))
			}
		}
		for _, sec := range secrets {
			if sec == "" {
				continue
			}
			body := sec[3:] // without sk- or at-
			if strings.Contains(text, body) {
				t.Errorf("%s log holds the secret %.6s...", name, sec)
			}
		}
	}
}

// testTable: no attribute of any item, nested ones included, holds a full
// key or an access token.
func (s *suite) testTable(t *testing.T) {
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	p := dynamodb.NewScanPaginator(s.st.DB, &dynamodb.ScanInput{TableName: aws.String(s.st.Table), ConsistentRead: aws.Bool(true)})
	items := 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Items {
			items++
			where := attrS(item, "pk") + " " + attrS(item, "sk")
			walk(item, func(path, v string) {
				if keyPattern.MatchString(v) || accessPattern.MatchString(v) {
					t.Errorf("%s %s holds a key or access token", where, path)
				}
				for _, sec := range secrets {
					if sec != "" && strings.Contains(v, sec[3:]) {
						t.Errorf("%s %s holds the secret %.6s...", where, path, sec)
					}
				}
			})
		}
	}
	if items < 20 {
		t.Errorf("the scan found only %d items", items)
	}
}

// walk calls f with every string form of every value in item, nested
// lists, maps and sets included (binary values as their bytes).
func walk(item map[string]types.AttributeValue, f func(path, v string)) {
	for name, v := range item {
		f(name+" (name)", name)
		walkValue(name, v, f)
	}
}

func walkValue(path string, v types.AttributeValue, f func(path, v string)) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		f(path, v.Value)
	case *types.AttributeValueMemberN:
		f(path, v.Value)
	case *types.AttributeValueMemberB:
		f(path, string(v.Value))
	case *types.AttributeValueMemberSS:
		for i, s := range v.Value {
			f(fmt.Sprintf("%s[%d]", path, i), s)
		}
	case *types.AttributeValueMemberNS:
		for i, s := range v.Value {
			f(fmt.Sprintf("%s[%d]", path, i), s)
		}
	case *types.AttributeValueMemberBS:
		for i, b := range v.Value {
			f(fmt.Sprintf("%s[%d]", path, i), string(b))
		}
	case *types.AttributeValueMemberL:
		for i, e := range v.Value {
			walkValue(fmt.Sprintf("%s[%d]", path, i), e, f)
		}
	case *types.AttributeValueMemberM:
		walk(v.Value, func(p, s string) { f(path+"."+p, s) })
	}
}
