package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/storetest"
)

// TestBodyTextIsNeverRewritten: Go's decoder replaces invalid UTF-8 and
// lone surrogate escapes with U+FFFD; every body parser refuses them
// instead (invalid_json), and accepts what is well-formed.
func TestBodyTextIsNeverRewritten(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantName string // when wantCode is ""
		wantCode string
	}{
		{"raw invalid bytes in a name", "{\"name\":\"a\xff\xfe\"}", "", token.EInvalidJSON},
		{"a truncated UTF-8 sequence", "{\"name\":\"\xe4\xbb\"}", "", token.EInvalidJSON},
		{"invalid bytes outside strings", "{\"name\":\"a\"}\xff", "", token.EInvalidJSON},
		{"a lone high surrogate", `{"name":"\ud800"}`, "", token.EInvalidJSON},
		{"upper-case hex", `{"name":"\uD800x"}`, "", token.EInvalidJSON},
		{"a high surrogate at the end of the string", `{"name":"ab\ud83d"}`, "", token.EInvalidJSON},
		{"a high surrogate before a letter escape", `{"name":"\ud800\u0041"}`, "", token.EInvalidJSON},
		{"two high surrogates", `{"name":"\ud800\ud800"}`, "", token.EInvalidJSON},
		{"a lone low surrogate", `{"name":"\udc00"}`, "", token.EInvalidJSON},
		{"a low surrogate before a high one", `{"name":"\ude00\ud83d"}`, "", token.EInvalidJSON},
		{"a high surrogate before an escaped backslash", `{"name":"\ud83d\\ude00"}`, "", token.EInvalidJSON},
		{"a lone surrogate in an ignored field", `{"name":"a","note":"\ud800"}`, "", token.EInvalidJSON},
		{"a lone surrogate in a field name", `{"name":"a","\udfff":1}`, "", token.EInvalidJSON},
		{"a surrogate pair", `{"name":"\ud83d\ude00 ok"}`, "😀 ok", ""},
		{"an escaped backslash before u", `{"name":"\\ud800"}`, `\ud800`, ""},
		{"two escaped backslashes before a pair", `{"name":"\\\\\ud83d\ude00"}`, `\\😀`, ""},
		{"other escapes", `{"name":"a\"b\/c\u00e9"}`, "a\"b/cé", ""},
		{"raw UTF-8", `{"name":"令牌 😀"}`, "令牌 😀", ""},
		{"a BMP escape", `{"name":"\u4ee4\u724c"}`, "令牌", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := api.ParseCreate([]byte(tt.body), rules, now)
			if got := token.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("ParseCreate(%q) code %q (%v), want %q", tt.body, got, err, tt.wantCode)
			}
			if tt.wantCode == "" && s.Name != tt.wantName {
				t.Errorf("name %q, want %q", s.Name, tt.wantName)
			}
		})
	}

	// The other parsers read bodies the same way.
	others := []struct {
		name  string
		parse func(body []byte) error
	}{
		{"update", func(b []byte) error { _, _, err := api.ParseUpdate(b, false, rules, now); return err }},
		{"update status_only", func(b []byte) error { _, _, err := api.ParseUpdate(b, true, rules, now); return err }},
		{"batch", func(b []byte) error { _, err := api.ParseBatch(b); return err }},
		{"rotate", func(b []byte) error { _, err := api.ParseRotate(b); return err }},
	}
	for _, o := range others {
		t.Run(o.name, func(t *testing.T) {
			for _, body := range []string{`{"id":1,"ids":[1],"status":1,"x":"\ud800"}`, "{\"id\":1,\"ids\":[1],\"status\":1,\"x\":\"\xff\"}"} {
				if got := token.ErrorCode(o.parse([]byte(body))); got != token.EInvalidJSON {
					t.Errorf("%q: code %q, want %q", body, got, token.EInvalidJSON)
				}
			}
			if err := o.parse([]byte(`{"id":1,"ids":[1],"status":1,"x":"\ud83d\ude00\\ud800"}`)); err != nil {
				t.Errorf("a well-formed body refused: %v", err)
			}
		})
	}
}

func withBase64Body(body string) option {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = base64.StdEncoding.EncodeToString([]byte(body))
		ev.IsBase64Encoded = true
		ev.Headers["content-length"] = strconv.Itoa(len(body))
	}
}

// TestNamesThatHideWhatTheyAre: every name of issue 13 items 3 and 4 is
// refused through the handlers, on create and on update, and nothing is
// stored; ordinary names in any script are stored as sent.
func TestNamesThatHideWhatTheyAre(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	tok := s.create(t, "u1", `{"name":"keep"}`)
	before := s.list(t, "u1")

	tests := []struct {
		name string
		body option // the create body; the update sends the same name
		json string // the name as a JSON string, for the update
		code string
	}{
		{"raw invalid bytes", withBody("{\"name\":\"a\xff\xfe\"}"), "\"a\xff\xfe\"", token.EInvalidJSON},
		{"raw invalid bytes, base64 event", withBase64Body("{\"name\":\"a\xff\xfe\"}"), "\"a\xff\xfe\"", token.EInvalidJSON},
		{"lone surrogate escape", withBody(`{"name":"\ud800"}`), `"\ud800"`, token.EInvalidJSON},
		{"zero-width spaces only", withBody(`{"name":"\u200b\u200b"}`), `"\u200b\u200b"`, token.EInvalidName},
		{"right-to-left override", withBody(`{"name":"\u202egnp.exe"}`), `"\u202egnp.exe"`, token.EInvalidName},
		{"tag characters", withBody(`{"name":"ok\udb40\udc41"}`), `"ok\udb40\udc41"`, token.EInvalidName},
		{"leading BOM", withBody(`{"name":"\ufeffname"}`), `"\ufeffname"`, token.EInvalidName},
		{"control character", withBody(`{"name":"a\u0007b"}`), `"a\u0007b"`, token.EInvalidName},
		{"blank", withBody(`{"name":"  "}`), `"  "`, token.ENameRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(t, "create-token", asUser("u1"), tt.body)
			r.want(t, 400, tt.code)
			r = s.call(t, "update-token", asUser("u1"), withBody(`{"id":`+id(tok)+`,"name":`+tt.json+`}`))
			r.want(t, 400, tt.code)
			if after := s.list(t, "u1"); !equalJSON(t, before, after) {
				t.Errorf("a refused name changed the tokens:\n%+v\n%+v", before, after)
			}
		})
	}

	for _, name := range []string{"我的令牌", "トークン・テスト", "رمز الوصول", "👩‍💻 dev", "👨‍👩‍👧", "🇨🇳 prod"} {
		t.Run("accepted "+name, func(t *testing.T) {
			quoted, _ := json.Marshal(name)
			created := s.create(t, "u2", `{"name":`+string(quoted)+`}`)
			r := s.call(t, "update-token", asUser("u2"), withBody(`{"id":`+id(created)+`,"name":`+string(quoted)+`}`))
			r.want(t, 200, "")
			r = s.call(t, "get-token", asUser("u2"), withID(id(created)))
			r.want(t, 200, "")
			var got api.Token
			r.data(t, &got)
			if created.Name != name || got.Name != name {
				t.Errorf("created %q, read %q; want %q", created.Name, got.Name, name)
			}
		})
	}
}

// largestCreate is a create body of count tokens with model_limits models
// and allow_ips ips.
func largestCreate(t *testing.T, count int, models, ips []string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": "big", "count": count, "model_limits_enabled": true,
		"model_limits": models, "allow_ips": strings.Join(ips, "\n"), "unlimited_quota": true})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLargestListsInOnePage: 100 tokens at the largest model_limits and
// allow_ips list in one page of 100, under 1 MB; one entry or one byte
// over either limit is 400 with the field's code, and nothing is stored.
func TestLargestListsInOnePage(t *testing.T) {
	s := newServer(MustStore(t), time.Now)
	models := storetest.ModelLimitsOf(token.MaxModels, token.MaxModelLimitsBytes)
	ips := storetest.AllowIPsOf(token.MaxAllowIPs, token.MaxAllowIPsBytes)
	for _, count := range []int{49, 49, 2} {
		s.call(t, "create-token", asUser("big"), withBody(largestCreate(t, count, models, ips))).want(t, 200, "")
	}

	r := s.call(t, "list-tokens", asUser("big"), withQuery("p=1&size=100"))
	r.want(t, 200, "")
	var page api.ListPage
	r.data(t, &page)
	if len(page.Items) != 100 || page.Total != 100 {
		t.Fatalf("list: %d items, total %d; want 100 and 100", len(page.Items), page.Total)
	}
	for _, tok := range page.Items {
		if tok.ModelLimits != strings.Join(models, ",") || tok.AllowIPs != strings.Join(ips, ",") {
			t.Fatalf("token %d: lists of %d and %d bytes, want 4096 and 2048", tok.ID, len(tok.ModelLimits), len(tok.AllowIPs))
		}
	}
	pageBytes := len(r.Body)
	if pageBytes >= 1<<20 {
		t.Errorf("a page of 100 is %d bytes, want under 1 MB", pageBytes)
	}
	r = s.call(t, "search-tokens", asUser("big"), withQuery("keyword=big"))
	r.want(t, 200, "")
	if n := len(r.Body); n >= 1<<20 {
		t.Errorf("a search of 100 is %d bytes, want under 1 MB", n)
	}
	t.Logf("a page of 100 tokens at the largest lists: %d bytes", pageBytes)

	// One over each limit, on create and on update.
	one := s.create(t, "u1", `{"name":"one"}`)
	before := s.list(t, "u1")
	tests := []struct {
		name        string
		models, ips []string
		code        string
	}{
		{"201 models", storetest.ModelLimitsOf(201, 4000), nil, token.EInvalidModels},
		{"models of 4097 bytes", storetest.ModelLimitsOf(200, 4097), nil, token.EInvalidModels},
		{"101 ips", nil, storetest.AllowIPsOf(101, 2000), token.EInvalidAllowIPs},
		{"ips of 2049 bytes", nil, storetest.AllowIPsOf(100, 2049), token.EInvalidAllowIPs},
		{"a lone *", []string{"*"}, nil, token.EInvalidModels},
		{"a * inside", []string{"g*pt"}, nil, token.EInvalidModels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.call(t, "create-token", asUser("u1"), withBody(largestCreate(t, 1, tt.models, tt.ips))).want(t, 400, tt.code)
			patch := map[string]any{"id": one.ID}
			if tt.models != nil {
				patch["model_limits"] = tt.models
			}
			if tt.ips != nil {
				patch["allow_ips"] = tt.ips
			}
			b, _ := json.Marshal(patch)
			s.call(t, "update-token", asUser("u1"), withBody(string(b))).want(t, 400, tt.code)
			if after := s.list(t, "u1"); !equalJSON(t, before, after) {
				t.Errorf("a refused list changed the tokens:\n%+v\n%+v", before, after)
			}
		})
	}
}

// TestUsageTokenDisabledUser: a disabled user's keys answer 401 on usage,
// as every other use of them fails; enabled again, 200. Other users'
// keys are untouched.
func TestUsageTokenDisabledUser(t *testing.T) {
	e := newUsageEnv(t)
	mine := e.create(t, "u1", token.Spec{Name: "mine", ExpiredTime: token.NeverExpires, RemainQuota: 10})
	theirs := e.create(t, "u2", token.Spec{Name: "theirs", ExpiredTime: token.NeverExpires, RemainQuota: 10})
	okMine := usageBody("mine", 10, 0, 10, false, `{}`, false, 0)
	okTheirs := usageBody("theirs", 10, 0, 10, false, `{}`, false, 0)

	steps := []struct {
		name     string
		disabled bool
		status   int
		body     string
	}{
		{"enabled", false, 200, okMine},
		{"disabled", true, 401, `{"code":false,"message":"该令牌状态不可用"}`},
		{"enabled again", false, 200, okMine},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := e.store.SetUserDisabled(context.Background(), "u1", st.disabled); err != nil {
				t.Fatal(err)
			}
			e.calls.take()
			e.call(t, bearer(mine.Key)).want(t, st.status, st.body)
			// One read of the lookup, one of the token with its user.
			if got, want := e.calls.take(), map[string]int{"LookupKey": 1, "GetWithUser": 1}; !maps.Equal(got, want) {
				t.Errorf("store calls %v, want %v", got, want)
			}
			e.call(t, bearer(theirs.Key)).want(t, 200, okTheirs)
		})
	}
	if err := e.store.SetUserDisabled(context.Background(), "u1", true); err != nil {
		t.Fatal(err)
	}
	e.call(t, bearer(mine.Key), "accept-language", "en").want(t, 401, `{"code":false,"message":"The token is disabled"}`)
}

// TestUsageTokenModelPatterns: the usage map lists model_limits entries as
// written, patterns included.
func TestUsageTokenModelPatterns(t *testing.T) {
	e := newUsageEnv(t)
	tok := e.create(t, "u1", token.Spec{Name: "patterns", ExpiredTime: token.NeverExpires, RemainQuota: 1,
		ModelLimitsEnabled: true, ModelLimits: []string{"gpt-4o*", "claude-3-opus", "openai/*"}})
	e.call(t, bearer(tok.Key)).want(t, 200,
		usageBody("patterns", 1, 0, 1, false, `{"gpt-4o*":true,"claude-3-opus":true,"openai/*":true}`, true, 0))
}
