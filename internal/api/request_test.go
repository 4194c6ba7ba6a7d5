package api_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/api"
	"github.com/llmgw/token-service/internal/token"
)

var (
	rules = token.Rules{AllowedGroups: []string{"default", "vip"}}
	// now is before the upstream example's expired_time (1640995200, 2022).
	now = time.Unix(1609459200, 0) // 2021-01-01
)

func ptr[T any](v T) *T { return &v }

func TestParseCreate(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     token.Spec
		wantCode string
	}{
		{
			name: "upstream example",
			body: `{"name":"My API Token","expired_time":1640995200,"remain_quota":1000000,"unlimited_quota":false,"model_limits_enabled":true,"model_limits":["gpt-3.5-turbo","gpt-4"],"allow_ips":"192.168.1.1,10.0.0.1","group":"default"}`,
			want: token.Spec{Name: "My API Token", ExpiredTime: 1640995200, RemainQuota: 1000000, ModelLimitsEnabled: true,
				ModelLimits: []string{"gpt-3.5-turbo", "gpt-4"}, AllowIPs: []string{"192.168.1.1", "10.0.0.1"}, Group: "default", Count: 1},
		},
		{
			name: "defaults: never expires, count 1",
			body: `{"name":"a"}`,
			want: token.Spec{Name: "a", ExpiredTime: -1, Count: 1, ModelLimits: []string{}, AllowIPs: []string{}},
		},
		{
			name: "model limits as a comma string, allow_ips as an array and newlines",
			body: `{"name":"a","model_limits":"gpt-4, gpt-4o,,gpt-4","allow_ips":["10.0.0.0/8\n192.168.1.1"],"count":3,"rpm_limit":60}`,
			want: token.Spec{Name: "a", ExpiredTime: -1, Count: 3, RPMLimit: 60, ModelLimits: []string{"gpt-4", "gpt-4o"}, AllowIPs: []string{"10.0.0.0/8", "192.168.1.1"}},
		},
		{
			name: "fields a user may not set are ignored",
			body: `{"name":"a","id":99,"user_id":"other","key":"sk-x","key_hash":"h","used_quota":5,"created_time":1,"accessed_time":2,"status":2,"unknown":{"x":[1]}}`,
			want: token.Spec{Name: "a", ExpiredTime: -1, Count: 1, ModelLimits: []string{}, AllowIPs: []string{}},
		},
		{name: "30 Chinese characters", body: `{"name":"` + strings.Repeat("令", 30) + `"}`,
			want: token.Spec{Name: strings.Repeat("令", 30), ExpiredTime: -1, Count: 1, ModelLimits: []string{}, AllowIPs: []string{}}},
		{name: "31 Chinese characters", body: `{"name":"` + strings.Repeat("令", 31) + `"}`, wantCode: token.ENameTooLong},
		{name: "generated names too long", body: `{"name":"` + strings.Repeat("a", 29) + `","count":2}`, wantCode: token.ENameTooLong},
		{name: "count 0", body: `{"name":"a","count":0}`, wantCode: token.EInvalidCount},
		{name: "count 50", body: `{"name":"a","count":50}`, wantCode: token.EInvalidCount},
		{name: "no name", body: `{}`, wantCode: token.ENameRequired},
		{name: "expired in the past", body: `{"name":"a","expired_time":1}`, wantCode: token.EInvalidExpiry},
		{name: "negative quota", body: `{"name":"a","remain_quota":-1}`, wantCode: token.EInvalidQuota},
		{name: "unknown group", body: `{"name":"a","group":"gold"}`, wantCode: token.EInvalidGroup},
		{name: "bad ip", body: `{"name":"a","allow_ips":"1.2.3.999"}`, wantCode: token.EInvalidAllowIPs},
		{name: "malformed json", body: `{"name":`, wantCode: token.EInvalidJSON},
		{name: "empty body", body: ``, wantCode: token.EInvalidJSON},
		{name: "trailing data", body: `{"name":"a"} {"name":"b"}`, wantCode: token.EInvalidJSON},
		{name: "array body", body: `[1]`, wantCode: token.EInvalidJSON},
		{name: "name of wrong type", body: `{"name":5}`, wantCode: token.EInvalidJSON},
		{name: "quota of wrong type", body: `{"name":"a","remain_quota":"5"}`, wantCode: token.EInvalidJSON},
		{name: "fractional quota", body: `{"name":"a","remain_quota":1.5}`, wantCode: token.EInvalidJSON},
		{name: "model limits of numbers", body: `{"name":"a","model_limits":[1,2]}`, wantCode: token.EInvalidJSON},
		{name: "model limits object", body: `{"name":"a","model_limits":{"a":1}}`, wantCode: token.EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseCreate([]byte(tt.body), rules, now)
			if gotCode := token.ErrorCode(err); gotCode != tt.wantCode {
				t.Fatalf("ParseCreate code = %q (%v), want %q", gotCode, err, tt.wantCode)
			}
			if tt.wantCode == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCreate =\n%+v, want\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseUpdate(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		statusOnly bool
		wantID     int64
		want       token.Patch
		wantCode   string
	}{
		{name: "name only", body: `{"id":7,"name":"x"}`, wantID: 7, want: token.Patch{Name: ptr("x")}},
		{name: "nulls are absent", body: `{"id":7,"name":null,"remain_quota":null,"model_limits":null,"status":null}`, wantID: 7},
		{name: "full", body: `{"id":7,"name":"n","expired_time":-1,"remain_quota":5,"unlimited_quota":true,"model_limits_enabled":true,"model_limits":"a,b","allow_ips":"","group":"vip","status":2,"rpm_limit":10}`,
			wantID: 7, want: token.Patch{Name: ptr("n"), ExpiredTime: ptr(int64(-1)), RemainQuota: ptr(int64(5)), UnlimitedQuota: ptr(true),
				ModelLimitsEnabled: ptr(true), ModelLimits: &[]string{"a", "b"}, AllowIPs: &[]string{}, Group: ptr("vip"),
				Status: ptr(token.StatusDisabled), RPMLimit: ptr(int64(10))}},
		{name: "status only keeps the status", body: `{"id":123,"status":1,"name":"ignored"}`, statusOnly: true, wantID: 123, want: token.Patch{Status: ptr(token.StatusEnabled)}},
		{name: "status only ignores bad other fields", body: `{"id":1,"status":2,"name":""}`, statusOnly: true, wantID: 1, want: token.Patch{Status: ptr(token.StatusDisabled)}},
		{name: "status only ignores wrong types of other fields", body: `{"id":1,"status":2,"name":7,"model_limits":{}}`, statusOnly: true, wantID: 1, want: token.Patch{Status: ptr(token.StatusDisabled)}},
		{name: "status only needs status", body: `{"id":1}`, statusOnly: true, wantCode: token.EInvalidStatus},
		{name: "status 3", body: `{"id":1,"status":3}`, wantCode: token.EInvalidStatus},
		{name: "huge status", body: `{"id":1,"status":4294967297}`, wantCode: token.EInvalidStatus},
		{name: "missing id", body: `{"name":"x"}`, wantCode: token.EInvalidID},
		{name: "null id", body: `{"id":null}`, wantCode: token.EInvalidID},
		{name: "string id", body: `{"id":"7"}`, wantCode: token.EInvalidID},
		{name: "id abc", body: `{"id":"abc"}`, wantCode: token.EInvalidID},
		{name: "zero id", body: `{"id":0}`, wantCode: token.EInvalidID},
		{name: "negative id", body: `{"id":-1}`, wantCode: token.EInvalidID},
		{name: "fraction id", body: `{"id":1.5}`, wantCode: token.EInvalidID},
		{name: "exponent id", body: `{"id":1e3}`, wantCode: token.EInvalidID},
		{name: "id object", body: `{"id":{}}`, wantCode: token.EInvalidID},
		{name: "31 characters", body: `{"id":1,"name":"` + strings.Repeat("名", 31) + `"}`, wantCode: token.ENameTooLong},
		{name: "wrong type", body: `{"id":1,"unlimited_quota":"yes"}`, wantCode: token.EInvalidJSON},
		{name: "malformed", body: `{"id":1,`, wantCode: token.EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, p, err := api.ParseUpdate([]byte(tt.body), tt.statusOnly, rules, now)
			if gotCode := token.ErrorCode(err); gotCode != tt.wantCode {
				t.Fatalf("ParseUpdate code = %q (%v), want %q", gotCode, err, tt.wantCode)
			}
			if tt.wantCode != "" {
				return
			}
			if id != tt.wantID {
				t.Errorf("id = %d, want %d", id, tt.wantID)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("patch = %s, want %s", dumpPatch(p), dumpPatch(tt.want))
			}
		})
	}
}

// dumpPatch shows a patch's values rather than its pointers.
func dumpPatch(p token.Patch) string {
	b, _ := json.Marshal(p)
	return string(b)
}

func TestParseBatch(t *testing.T) {
	many := "[" + strings.TrimSuffix(strings.Repeat("1,", 101), ",") + "]"
	hundred := "[" + strings.TrimSuffix(strings.Repeat("2,", 100), ",") + "]"
	tests := []struct {
		name     string
		body     string
		want     []int64
		wantCode string
	}{
		{name: "upstream example", body: `{"ids":[1,2,3,4,5]}`, want: []int64{1, 2, 3, 4, 5}},
		{name: "duplicates count once", body: `{"ids":[3,1,3]}`, want: []int64{3, 1}},
		{name: "100 ids", body: `{"ids":` + hundred + `}`, want: []int64{2}},
		{name: "101 ids", body: `{"ids":` + many + `}`, wantCode: token.EInvalidRequest},
		{name: "empty", body: `{"ids":[]}`, wantCode: token.EInvalidRequest},
		{name: "missing", body: `{}`, wantCode: token.EInvalidRequest},
		{name: "null", body: `{"ids":null}`, wantCode: token.EInvalidRequest},
		{name: "not an array", body: `{"ids":5}`, wantCode: token.EInvalidRequest},
		{name: "zero", body: `{"ids":[1,0]}`, wantCode: token.EInvalidRequest},
		{name: "negative", body: `{"ids":[-1]}`, wantCode: token.EInvalidRequest},
		{name: "fraction", body: `{"ids":[1.5]}`, wantCode: token.EInvalidRequest},
		{name: "string", body: `{"ids":["1"]}`, wantCode: token.EInvalidRequest},
		{name: "malformed", body: `{"ids":[1,`, wantCode: token.EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseBatch([]byte(tt.body))
			if gotCode := token.ErrorCode(err); gotCode != tt.wantCode {
				t.Fatalf("ParseBatch code = %q (%v), want %q", gotCode, err, tt.wantCode)
			}
			if tt.wantCode == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseBatch = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePage(t *testing.T) {
	tests := []struct {
		query              string
		wantPage, wantSize int
	}{
		{"", 1, 20},
		{"p=1&size=20", 1, 20},
		{"p=3&size=5", 3, 5},
		{"p=2&page_size=50", 2, 50},
		{"size=10&page_size=50", 1, 10},
		{"size=0&page_size=30", 1, 30},
		{"p=abc&size=xyz", 1, 20},
		{"p=0&size=0", 1, 20},
		{"p=-5&size=-1", 1, 20},
		{"size=101", 1, 100},
		{"size=99999999999999999999999", 1, 100},
		{"p=99999999999999999999999", api.MaxPage, 20},
		{"p=-99999999999999999999999", 1, 20},
		{"p=1.5&size=2.5", 1, 20},
		{"p=%20%207%20", 7, 20},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			page, size := api.ParsePage(q)
			if page != tt.wantPage || size != tt.wantSize {
				t.Errorf("ParsePage(%q) = %d, %d, want %d, %d", tt.query, page, size, tt.wantPage, tt.wantSize)
			}
		})
	}
}

func TestParseSearch(t *testing.T) {
	q, _ := url.ParseQuery("keyword=api&token=sk-123&keyword=second")
	got := api.ParseSearch(q)
	want := token.SearchQuery{Keyword: "api", Key: "sk-123"}
	if got != want {
		t.Errorf("ParseSearch = %+v, want %+v", got, want)
	}
}
