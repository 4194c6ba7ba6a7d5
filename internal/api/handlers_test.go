package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/memstore"
)

// fullKey matches a whole key anywhere in a response body.
var fullKey = regexp.MustCompile(`sk-[0-9A-Za-z]{48}`)

// MustStore returns an empty in-memory store, which the contract suite
// (internal/token/storetest) holds to the DynamoDB store's behaviour, so
// the handler tests need no DynamoDB Local.
func MustStore(t *testing.T) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.Config{MaxTokensPerUser: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// brokenStore fails every call as the DynamoDB store fails on a missing
// table: its error names the table and the SDK's internals, which no
// response may show.
type brokenStore struct{ table string }

func (b brokenStore) err(op string) error {
	return fmt.Errorf("dynamo: %s: operation error DynamoDB: %s, https response error StatusCode: 400, "+
		"ResourceNotFoundException: Cannot do operations on a non-existent table %s", op, op, b.table)
}

func (b brokenStore) Create(context.Context, string, []token.Token) ([]token.Token, error) {
	return nil, b.err("TransactWriteItems")
}

func (b brokenStore) Get(context.Context, string, int64) (token.Token, error) {
	return token.Token{}, b.err("GetItem")
}

func (b brokenStore) List(context.Context, string, int, int) (token.Page, error) {
	return token.Page{}, b.err("Query")
}

func (b brokenStore) Search(context.Context, string, token.SearchQuery, int) ([]token.Token, error) {
	return nil, b.err("Query")
}

func (b brokenStore) Update(context.Context, string, int64, token.Patch, time.Time) (token.Token, error) {
	return token.Token{}, b.err("UpdateItem")
}

func (b brokenStore) Delete(context.Context, string, int64) error { return b.err("GetItem") }

func (b brokenStore) DeleteMany(context.Context, string, []int64) (int, error) {
	return 0, b.err("BatchGetItem")
}

func (b brokenStore) RevealKey(context.Context, string, int64, int, time.Time) (token.Token, error) {
	return token.Token{}, b.err("UpdateItem")
}

func (b brokenStore) RevealKeys(context.Context, string, []int64, int, time.Time) ([]token.Token, error) {
	return nil, b.err("UpdateItem")
}

func (b brokenStore) Rotate(context.Context, string, int64, string, time.Duration, time.Time) (token.Token, error) {
	return token.Token{}, b.err("GetItem")
}

func (b brokenStore) LookupKey(context.Context, string, time.Time) (string, int64, error) {
	return "", 0, b.err("GetItem")
}

func (b brokenStore) GetWithUser(context.Context, string, int64) (token.Token, bool, error) {
	return token.Token{}, false, b.err("BatchGetItem")
}

var (
	_ token.Store    = brokenStore{}
	_ token.KeyStore = brokenStore{}
	_ api.KeyStore   = brokenStore{}
)

// server holds the seven handlers over one store, by fixture name.
type server map[string]func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

func newServer(store token.Store, clock api.Clock) server {
	r := token.Rules{AllowedGroups: []string{"default", "vip"}}
	return server{
		"list-tokens":         api.LambdaHandler(api.ListTokens(store, clock)),
		"search-tokens":       api.LambdaHandler(api.SearchTokens(store, clock)),
		"get-token":           api.LambdaHandler(api.GetToken(store, clock)),
		"create-token":        api.LambdaHandler(api.CreateTokens(store, r, clock)),
		"update-token":        api.LambdaHandler(api.UpdateToken(store, r, clock)),
		"delete-token":        api.LambdaHandler(api.DeleteToken(store)),
		"batch-delete-tokens": api.LambdaHandler(api.BatchDeleteTokens(store)),
	}
}

// option changes a fixture event.
type option func(*events.APIGatewayV2HTTPRequest)

func asUser(uid string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer.Lambda["userId"] = uid
	}
}

func withBody(body string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = body
		ev.Headers["content-length"] = strconv.Itoa(len(body))
	}
}

func withQuery(raw string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RawQueryString = raw
		q, _ := url.ParseQuery(raw)
		ev.QueryStringParameters = map[string]string{}
		for k, v := range q {
			ev.QueryStringParameters[k] = strings.Join(v, ",")
		}
	}
}

// withID targets token id (any string) on the path, as API Gateway sends it.
func withID(id string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.PathParameters = map[string]string{"id": id}
		ev.RawPath = "/api/token/" + id
		ev.RequestContext.HTTP.Path = ev.RawPath
	}
}

func withHeader(k, v string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers[k] = v }
}

func english() option { return withHeader("accept-language", "en-US,en;q=0.9") }

// response is a decoded function answer.
type response struct {
	Status  int
	Headers map[string]string
	Body    string
	Env     struct {
		Success bool            `json:"success"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
		Code    string          `json:"code"`
	}
}

// call runs fixture events/<name>.json, changed by opts, through the
// function's Lambda handler (httpadapter V2, ProxyWithContext).
func (s server) call(t *testing.T, name string, opts ...option) response {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name+".json"))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	for _, o := range opts {
		o(&ev)
	}
	out, err := s[name](context.Background(), ev)
	if err != nil {
		t.Fatalf("%s: handler error: %v", name, err)
	}
	r := response{Status: out.StatusCode, Headers: out.Headers, Body: out.Body}
	if err := json.Unmarshal([]byte(out.Body), &r.Env); err != nil {
		t.Fatalf("%s: body is not an envelope: %v: %s", name, err, out.Body)
	}
	return r
}

func (r response) data(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Env.Data, v); err != nil {
		t.Fatalf("decode data: %v: %s", err, r.Env.Data)
	}
}

func (r response) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status || r.Env.Code != code || r.Env.Success != (code == "") {
		t.Fatalf("got %d code %q success %v, want %d code %q: %s", r.Status, r.Env.Code, r.Env.Success, status, code, r.Body)
	}
}

// create makes one token for uid with body and returns it.
func (s server) create(t *testing.T, uid, body string) api.Token {
	t.Helper()
	r := s.call(t, "create-token", asUser(uid), withBody(body))
	r.want(t, 200, "")
	var tok api.Token
	r.data(t, &tok)
	return tok
}

func (s server) list(t *testing.T, uid string) api.ListPage {
	t.Helper()
	r := s.call(t, "list-tokens", asUser(uid), withQuery("p=1&size=100"))
	r.want(t, 200, "")
	var p api.ListPage
	r.data(t, &p)
	return p
}

func id(tok api.Token) string { return strconv.FormatInt(tok.ID, 10) }

const upstreamCreate = `{"name":"My API Token","expired_time":1640995200,"remain_quota":1000000,"unlimited_quota":false,"model_limits_enabled":true,"model_limits":["gpt-3.5-turbo","gpt-4"],"allow_ips":"192.168.1.1,10.0.0.1","group":"default"}`

func TestUpstreamExamples(t *testing.T) {
	// The upstream create example expires in 2022: run at the start of 2021.
	s := newServer(MustStore(t), func() time.Time { return time.Unix(1609459200, 0) })

	r := s.call(t, "create-token", withBody(upstreamCreate))
	r.want(t, 200, "")
	if got := r.Headers["Cache-Control"]; got != "no-store" {
		t.Errorf("create Cache-Control = %q, want no-store", got)
	}
	var created api.Token
	r.data(t, &created)
	want := api.Token{ID: created.ID, Name: "My API Token", Key: created.Key, Status: 1, RemainQuota: 1000000,
		ModelLimitsEnabled: true, ModelLimits: "gpt-3.5-turbo,gpt-4", AllowIPs: "192.168.1.1,10.0.0.1",
		Group: "default", ExpiredTime: 1640995200, CreatedTime: 1609459200}
	if !reflect.DeepEqual(created, noBudgets(want)) {
		t.Errorf("created =\n%+v, want\n%+v", created, want)
	}
	if created.ID <= 0 || !fullKey.MatchString(created.Key) {
		t.Errorf("created id %d key %q: want a positive id and a full key", created.ID, created.Key)
	}
	for _, field := range []string{"user_id", "key_hash"} {
		if strings.Contains(r.Body, field) {
			t.Errorf("create response holds %q: %s", field, r.Body)
		}
	}
	second := s.create(t, "events-user", `{"name":"other"}`)

	t.Run("list", func(t *testing.T) {
		r := s.call(t, "list-tokens")
		r.want(t, 200, "")
		var p api.ListPage
		r.data(t, &p)
		if p.Total != 2 || p.Page != 1 || p.PageSize != 20 || len(p.Items) != 2 || p.Items[0].ID != second.ID || p.Items[1].ID != created.ID {
			t.Errorf("list = %+v, want both tokens newest first, page 1 of size 20", p)
		}
		r = s.call(t, "list-tokens", withQuery("p=2&page_size=1"))
		r.data(t, &p)
		if p.Total != 2 || p.Page != 2 || p.PageSize != 1 || len(p.Items) != 1 || p.Items[0].ID != created.ID {
			t.Errorf("list page 2 of size 1 = %+v, want the older token", p)
		}
	})
	t.Run("search", func(t *testing.T) {
		r := s.call(t, "search-tokens") // keyword=api&token=sk-123: no key matches
		r.want(t, 200, "")
		var got []api.Token
		r.data(t, &got)
		if got == nil || len(got) != 0 {
			t.Errorf("search sk-123 = %s, want []", r.Env.Data)
		}
		r = s.call(t, "search-tokens", withQuery("keyword=API&token="+url.QueryEscape(created.Key[:7])))
		r.want(t, 200, "")
		r.data(t, &got)
		if len(got) != 1 || got[0].ID != created.ID {
			t.Errorf("search keyword=API token=%s = %s, want the created token", created.Key[:7], r.Env.Data)
		}
		r = s.call(t, "search-tokens", withQuery("keyword=&token="+created.Key))
		r.data(t, &got)
		if len(got) != 1 || got[0].ID != created.ID {
			t.Errorf("search by whole key = %s, want the created token", r.Env.Data)
		}
	})
	t.Run("get", func(t *testing.T) {
		r := s.call(t, "get-token", withID(id(created)))
		r.want(t, 200, "")
		var got api.Token
		r.data(t, &got)
		masked := created
		masked.Key = token.MaskKey(created.Key)
		if !reflect.DeepEqual(got, masked) {
			t.Errorf("get =\n%+v, want\n%+v", got, masked)
		}
	})
	t.Run("update full", func(t *testing.T) {
		body := `{"id":` + id(created) + `,"name":"renamed","expired_time":-1,"remain_quota":7,"unlimited_quota":true,"model_limits_enabled":false,"model_limits":"gpt-4o","allow_ips":"10.0.0.0/8","group":"vip","status":2,"rpm_limit":60}`
		r := s.call(t, "update-token", withBody(body))
		r.want(t, 200, "")
		var got api.Token
		r.data(t, &got)
		want := api.Token{ID: created.ID, Name: "renamed", Key: token.MaskKey(created.Key), Status: 2, RemainQuota: 7,
			UnlimitedQuota: true, ModelLimits: "gpt-4o", AllowIPs: "10.0.0.0/8", Group: "vip", ExpiredTime: -1,
			RPMLimit: 60, CreatedTime: created.CreatedTime}
		if !reflect.DeepEqual(got, noBudgets(want)) {
			t.Errorf("update =\n%+v, want\n%+v", got, want)
		}
	})
	t.Run("update status only", func(t *testing.T) {
		r := s.call(t, "update-token", withQuery("status_only=true"), withBody(`{"id":`+id(created)+`,"status":1,"name":"ignored"}`))
		r.want(t, 200, "")
		var got api.Token
		r.data(t, &got)
		if got.Status != 1 || got.Name != "renamed" {
			t.Errorf("status_only update = %+v, want status 1 and the name unchanged", got)
		}
	})
	t.Run("delete", func(t *testing.T) {
		s.call(t, "delete-token", withID(id(second))).want(t, 200, "")
		s.call(t, "get-token", withID(id(second))).want(t, 404, token.ENotFound)
	})
	t.Run("batch delete", func(t *testing.T) {
		r := s.call(t, "batch-delete-tokens", withBody(`{"ids":[`+id(created)+`,`+id(second)+`,`+id(created)+`]}`))
		r.want(t, 200, "")
		if string(r.Env.Data) != "1" {
			t.Errorf("batch delete data = %s, want 1", r.Env.Data)
		}
		if p := s.list(t, "events-user"); p.Total != 0 || len(p.Items) != 0 {
			t.Errorf("after batch delete list = %+v, want empty", p)
		}
	})
}

func TestFixturesAsTheyAre(t *testing.T) {
	// Every events/ fixture, unchanged, succeeds once events-user has token 1.
	s := newServer(MustStore(t), time.Now)
	for _, name := range []string{"create-token", "list-tokens", "search-tokens", "get-token", "update-token", "batch-delete-tokens", "create-token", "delete-token"} {
		r := s.call(t, name)
		if name == "batch-delete-tokens" {
			// token 1 is deleted by the batch; create-token makes token 2,
			// so delete-token of id 1 then answers 404.
			r.want(t, 200, "")
			continue
		}
		if name == "delete-token" {
			r.want(t, 404, token.ENotFound)
			continue
		}
		r.want(t, 200, "")
	}
}

func TestDocumentedFailures(t *testing.T) {
	start := time.Now()
	store := MustStore(t)
	s := newServer(store, func() time.Time { return start })
	// later sees the same tokens an hour on, when the first one has expired.
	later := newServer(store, func() time.Time { return start.Add(time.Hour) })
	expiring := s.create(t, "u1", `{"name":"expiring","expired_time":`+strconv.FormatInt(start.Unix()+60, 10)+`,"unlimited_quota":true}`)
	exhausted := s.create(t, "u1", `{"name":"exhausted","remain_quota":0}`)
	s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(expiring)+`,"status":2}`)).want(t, 200, "")

	tests := []struct {
		name       string
		srv        server
		fixture    string
		opts       []option
		wantStatus int
		wantCode   string
		zh, en     string
	}{
		{"get unknown", s, "get-token", []option{withID("999")}, 404, token.ENotFound, "Token不存在", "Token not found"},
		{"delete unknown", s, "delete-token", []option{withID("999")}, 404, token.ENotFound, "Token不存在", "Token not found"},
		{"update unknown", s, "update-token", []option{withBody(`{"id":999,"name":"x"}`)}, 404, token.ENotFound, "Token不存在", "Token not found"},
		{"name too long", s, "create-token", []option{withBody(`{"name":"` + strings.Repeat("长", 31) + `"}`)}, 400, token.ENameTooLong, "令牌名称过长", "The token name is too long (at most 30 characters)"},
		{"enable expired", later, "update-token", []option{withQuery("status_only=true"), withBody(`{"id":` + id(expiring) + `,"status":1}`)}, 400, token.ETokenExpired,
			"令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期", "The token has expired and cannot be enabled: change its expiry first, or make it never expire"},
		{"enable exhausted", s, "update-token", []option{withBody(`{"id":` + id(exhausted) + `,"status":1}`)}, 400, token.ETokenExhausted,
			"令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度", "The token's quota is used up and it cannot be enabled: raise its remaining quota first, or make it unlimited"},
		{"batch empty", s, "batch-delete-tokens", []option{withBody(`{"ids":[]}`)}, 400, token.EInvalidRequest, "参数错误", "Invalid request parameters"},
		{"batch missing", s, "batch-delete-tokens", []option{withBody(`{}`)}, 400, token.EInvalidRequest, "参数错误", "Invalid request parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.list(t, "u1")
			opts := append([]option{asUser("u1")}, tt.opts...)
			r := tt.srv.call(t, tt.fixture, opts...)
			r.want(t, tt.wantStatus, tt.wantCode)
			if r.Env.Message != tt.zh {
				t.Errorf("zh message = %q, want %q", r.Env.Message, tt.zh)
			}
			r = tt.srv.call(t, tt.fixture, append(opts, english())...)
			r.want(t, tt.wantStatus, tt.wantCode)
			if r.Env.Message != tt.en {
				t.Errorf("en message = %q, want %q", r.Env.Message, tt.en)
			}
			if after := s.list(t, "u1"); !equalJSON(t, before, after) {
				t.Errorf("a refused request changed the tokens:\n%+v\n%+v", before, after)
			}
		})
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestUpdateChangesOnlyPresentFields(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	orig := s.create(t, "u1", `{"name":"orig","remain_quota":500,"model_limits_enabled":true,"model_limits":"gpt-4","allow_ips":"10.0.0.1","group":"vip","rpm_limit":9}`)
	orig.Key = token.MaskKey(orig.Key)

	tests := []struct {
		name     string
		newName  string
		wantCode string
	}{
		{"ascii", "x", ""},
		{"30 Chinese characters", strings.Repeat("令", 30), ""},
		{"31 Chinese characters", strings.Repeat("令", 31), token.ENameTooLong},
	}
	wantName := orig.Name
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(orig)+`,"name":"`+tt.newName+`"}`))
			if tt.wantCode != "" {
				r.want(t, 400, tt.wantCode)
				if r.Env.Message != "令牌名称过长" {
					t.Errorf("message = %q, want 令牌名称过长", r.Env.Message)
				}
			} else {
				r.want(t, 200, "")
				wantName = tt.newName
			}
			var got api.Token
			s.call(t, "get-token", asUser("u1"), withID(id(orig))).data(t, &got)
			want := orig
			want.Name = wantName
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after update token =\n%+v, want\n%+v", got, want)
			}
		})
	}
}

func TestOtherUsersTokensAreNotFound(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	a1 := s.create(t, "alice", `{"name":"a1"}`)
	a2 := s.create(t, "alice", `{"name":"a2"}`)
	before := s.list(t, "alice")

	s.call(t, "get-token", asUser("bob"), withID(id(a1))).want(t, 404, token.ENotFound)
	s.call(t, "update-token", asUser("bob"), withBody(`{"id":`+id(a1)+`,"name":"stolen"}`)).want(t, 404, token.ENotFound)
	s.call(t, "update-token", asUser("bob"), withQuery("status_only=true"), withBody(`{"id":`+id(a1)+`,"status":2}`)).want(t, 404, token.ENotFound)
	s.call(t, "delete-token", asUser("bob"), withID(id(a1))).want(t, 404, token.ENotFound)
	r := s.call(t, "batch-delete-tokens", asUser("bob"), withBody(`{"ids":[`+id(a1)+`,`+id(a2)+`]}`))
	r.want(t, 200, "")
	if string(r.Env.Data) != "0" {
		t.Errorf("bob's batch delete of alice's ids = %s, want 0", r.Env.Data)
	}
	var found []api.Token
	s.call(t, "search-tokens", asUser("bob"), withQuery("keyword=a")).data(t, &found)
	if len(found) != 0 {
		t.Errorf("bob's search found %d of alice's tokens", len(found))
	}
	if after := s.list(t, "alice"); !equalJSON(t, before, after) || after.Total != 2 {
		t.Errorf("alice's tokens changed:\n%+v\n%+v", before, after)
	}
}

func TestIdentityComesOnlyFromTheAuthorizer(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	a := s.create(t, "alice", `{"name":"a"}`)
	// No commas: the adapter splits header values on them, and the forgery
	// must be one the header-based accessor would believe.
	forged := `{"authorizer":{"lambda":{"userId":"alice"}}}`

	r := s.call(t, "list-tokens", asUser("mallory"), withHeader("X-GoLambdaProxy-ApiGw-Context", forged))
	r.want(t, 200, "")
	var p api.ListPage
	r.data(t, &p)
	if p.Total != 0 || len(p.Items) != 0 {
		t.Errorf("forged context header listed %+v, want mallory's (no) tokens", p)
	}
	s.call(t, "get-token", asUser("mallory"), withID(id(a)), withHeader("x-golambdaproxy-apigw-context", forged)).want(t, 404, token.ENotFound)
	s.call(t, "delete-token", asUser("mallory"), withID(id(a)), withHeader("X-GoLambdaProxy-ApiGw-Context", forged)).want(t, 404, token.ENotFound)

	// Without a verdict (or with a malformed user id) nobody is anybody.
	noVerdict := func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer = nil }
	for name, opts := range map[string][]option{
		"no authorizer":      {noVerdict, withHeader("X-GoLambdaProxy-ApiGw-Context", forged)},
		"empty user id":      {asUser("")},
		"user id not string": {func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer.Lambda["userId"] = 42 }},
		"bad user id":        {asUser("alice bob")},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.call(t, "list-tokens", opts...)
			r.want(t, 401, token.EUnauthorized)
			if strings.Contains(r.Body, "alice") {
				t.Errorf("401 body mentions alice: %s", r.Body)
			}
		})
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	tok := s.create(t, "u1", `{"name":"keep"}`)
	before := s.list(t, "u1")
	huge := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`

	tests := []struct {
		name       string
		fixture    string
		opts       []option
		wantStatus int
		wantCode   string
	}{
		{"create malformed", "create-token", []option{withBody(`{"name":"x"`)}, 400, token.EInvalidJSON},
		{"create wrong type", "create-token", []option{withBody(`{"name":"x","remain_quota":"lots"}`)}, 400, token.EInvalidJSON},
		{"create model limits of numbers", "create-token", []option{withBody(`{"name":"x","model_limits":[1]}`)}, 400, token.EInvalidJSON},
		{"create 1 MiB", "create-token", []option{withBody(huge)}, 413, token.EBodyTooLarge},
		{"create past expiry", "create-token", []option{withBody(`{"name":"x","expired_time":1}`)}, 400, token.EInvalidExpiry},
		{"create unknown group", "create-token", []option{withBody(`{"name":"x","group":"gold"}`)}, 400, token.EInvalidGroup},
		{"update 1 MiB", "update-token", []option{withBody(huge)}, 413, token.EBodyTooLarge},
		{"update malformed", "update-token", []option{withBody(`{"id":1,`)}, 400, token.EInvalidJSON},
		{"update wrong type", "update-token", []option{withBody(`{"id":` + id(tok) + `,"name":7}`)}, 400, token.EInvalidJSON},
		{"update id abc", "update-token", []option{withBody(`{"id":"abc","name":"x"}`)}, 400, token.EInvalidID},
		{"update id 0", "update-token", []option{withBody(`{"id":0,"name":"x"}`)}, 400, token.EInvalidID},
		{"update id -1", "update-token", []option{withBody(`{"id":-1,"name":"x"}`)}, 400, token.EInvalidID},
		{"update id fraction", "update-token", []option{withBody(`{"id":1.5,"name":"x"}`)}, 400, token.EInvalidID},
		{"update id missing", "update-token", []option{withBody(`{"name":"x"}`)}, 400, token.EInvalidID},
		{"update status 3", "update-token", []option{withBody(`{"id":` + id(tok) + `,"status":3}`)}, 400, token.EInvalidStatus},
		{"get id abc", "get-token", []option{withID("abc")}, 400, token.EInvalidID},
		{"get id 0", "get-token", []option{withID("0")}, 400, token.EInvalidID},
		{"get id -1", "get-token", []option{withID("-1")}, 400, token.EInvalidID},
		{"delete id abc", "delete-token", []option{withID("abc")}, 400, token.EInvalidID},
		{"delete id 0", "delete-token", []option{withID("0")}, 400, token.EInvalidID},
		{"delete id -1", "delete-token", []option{withID("-1")}, 400, token.EInvalidID},
		{"batch malformed", "batch-delete-tokens", []option{withBody(`{"ids":[1,`)}, 400, token.EInvalidJSON},
		{"batch string id", "batch-delete-tokens", []option{withBody(`{"ids":["` + id(tok) + `"]}`)}, 400, token.EInvalidRequest},
		{"batch id 0 among good ones", "batch-delete-tokens", []option{withBody(`{"ids":[` + id(tok) + `,0]}`)}, 400, token.EInvalidRequest},
		{"batch 101 ids", "batch-delete-tokens", []option{withBody(`{"ids":[` + id(tok) + strings.Repeat(",1", 100) + `]}`)}, 400, token.EInvalidRequest},
		{"batch 1 MiB", "batch-delete-tokens", []option{withBody(huge)}, 413, token.EBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, tt.fixture, append([]option{asUser("u1")}, tt.opts...)...)
			r.want(t, tt.wantStatus, tt.wantCode)
			if r.Env.Message == "" {
				t.Errorf("no message: %s", r.Body)
			}
			if after := s.list(t, "u1"); !equalJSON(t, before, after) {
				t.Errorf("bad input changed the tokens:\n%+v\n%+v", before, after)
			}
		})
	}
}

// An event without path parameters has no id, whatever its path ends
// with: 400 invalid_id, never the path's last segment.
func TestTrailingSlashAndPathWithoutParameters(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	tok := s.create(t, "u1", `{"name":"slash"}`)
	for _, path := range []string{"/api/token/" + id(tok) + "/", "/api/token/" + id(tok)} {
		t.Run(path, func(t *testing.T) {
			r := s.call(t, "get-token", asUser("u1"), func(ev *events.APIGatewayV2HTTPRequest) {
				ev.PathParameters = nil
				ev.RawPath = path
			})
			r.want(t, 400, token.EInvalidID)
		})
	}
}

func TestOnlyCreateShowsFullKeys(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	r := s.call(t, "create-token", asUser("u1"), withBody(`{"name":"secret","count":2}`))
	r.want(t, 200, "")
	if n := len(fullKey.FindAllString(r.Body, -1)); n != 2 {
		t.Fatalf("create response holds %d full keys, want 2", n)
	}
	var created []api.Token
	r.data(t, &created)
	for name, r := range map[string]response{
		"list":          s.call(t, "list-tokens", asUser("u1")),
		"get":           s.call(t, "get-token", asUser("u1"), withID(id(created[0]))),
		"search":        s.call(t, "search-tokens", asUser("u1"), withQuery("keyword=secret")),
		"search by key": s.call(t, "search-tokens", asUser("u1"), withQuery("token="+created[1].Key)),
		"update":        s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(created[0])+`,"name":"renamed"}`)),
	} {
		t.Run(name, func(t *testing.T) {
			r.want(t, 200, "")
			if k := fullKey.FindString(r.Body); k != "" {
				t.Errorf("%s response holds a full key: %s", name, r.Body)
			}
			if !strings.Contains(r.Body, "**********") {
				t.Errorf("%s response holds no masked key: %s", name, r.Body)
			}
		})
	}
}

func TestCreateCount(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	r := s.call(t, "create-token", asUser("u1"), withBody(`{"name":"name","count":3}`))
	r.want(t, 200, "")
	var created []api.Token
	r.data(t, &created)
	var names []string
	for _, c := range created {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), "name,name-2,name-3"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}

	// A single token with count 1 is an object, as without count.
	r = s.call(t, "create-token", asUser("u1"), withBody(`{"name":"one","count":1}`))
	r.want(t, 200, "")
	if !strings.HasPrefix(string(r.Env.Data), "{") {
		t.Errorf("count 1 data = %s, want an object", r.Env.Data)
	}

	before := s.list(t, "u1")
	for _, body := range []string{
		`{"name":"` + strings.Repeat("n", 28) + `","count":10}`, // n...n-10 is 31 characters
		`{"name":"x","count":50}`,
		`{"name":"x","count":0}`,
	} {
		r := s.call(t, "create-token", asUser("u1"), withBody(body))
		if r.Status != 400 {
			t.Errorf("create %s = %d, want 400", body, r.Status)
		}
	}
	if after := s.list(t, "u1"); !equalJSON(t, before, after) || after.Total != 4 {
		t.Errorf("refused creates changed the tokens: %d -> %d", before.Total, after.Total)
	}
}

func TestServerErrorsHideInternals(t *testing.T) {
	const missing = "tokens-table-missing"
	store := brokenStore{table: missing}
	s := newServer(store, time.Now)
	s["reveal-token-key"] = api.LambdaHandler(api.RevealKey(store, 100, time.Now))
	s["reveal-token-keys"] = api.LambdaHandler(api.RevealKeys(store, 100, time.Now))
	s["rotate-token"] = api.LambdaHandler(api.RotateToken(store, time.Now))
	tests := []struct {
		fixture  string
		wantCode string
		zh       string
	}{
		{"list-tokens", token.EListFailed, "获取Token列表失败"},
		{"search-tokens", token.ESearchFailed, "搜索Token失败"},
		{"get-token", token.EInternal, "服务器内部错误，请稍后再试"},
		{"create-token", token.EInternal, "服务器内部错误，请稍后再试"},
		{"update-token", token.EInternal, "服务器内部错误，请稍后再试"},
		{"delete-token", token.EInternal, "服务器内部错误，请稍后再试"},
		{"batch-delete-tokens", token.EInternal, "服务器内部错误，请稍后再试"},
		{"reveal-token-key", token.EInternal, "服务器内部错误，请稍后再试"},
		{"reveal-token-keys", token.EInternal, "服务器内部错误，请稍后再试"},
		{"rotate-token", token.EInternal, "服务器内部错误，请稍后再试"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			r := s.call(t, tt.fixture)
			r.want(t, 500, tt.wantCode)
			if r.Env.Message != tt.zh {
				t.Errorf("message = %q, want %q", r.Env.Message, tt.zh)
			}
			for _, leak := range []string{missing, "ResourceNotFound", "dynamo", "operation error"} {
				if strings.Contains(r.Body, leak) {
					t.Errorf("500 body leaks %q: %s", leak, r.Body)
				}
			}
		})
	}
}
