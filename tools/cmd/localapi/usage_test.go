package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/llmgw/token-service/tools/stack"
	"github.com/llmgw/token-service/tools/stacktest"
)

// TestUsageEndToEnd serves GET /api/usage/token over HTTP through the
// runner: the sk- key is the only credential, no user access token is
// needed and the authorizer never runs (a user access token as the Bearer
// is just not a key: 401 from the function).
func TestUsageEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs functions")
	}
	ctx := context.Background()
	o := testOptions(t, t.TempDir())
	out := &stacktest.SyncBuffer{}
	e, err := setUp(ctx, o, []string{"AuthorizerFunction", "CreateTokenFunction", "DeleteTokenFunction", "UsageTokenFunction"}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	logs := &stacktest.SyncBuffer{}
	inv := &stacktest.CountingInvoker{Next: e.stack.Pools}
	srv := httptest.NewServer(stack.NewAPI(e.tmpl, inv, slog.New(slog.NewTextHandler(logs, nil))))
	t.Cleanup(srv.Close)

	call := func(t *testing.T, method, path, auth, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, string(raw)
	}

	alice := issueToken(t, o.dynamoDB, o.table, "alice")
	resp, raw := call(t, "POST", "/api/token", "Bearer "+alice,
		`{"name":"relay","expired_time":-1,"remain_quota":1234,"model_limits_enabled":true,"model_limits":["gpt-4"]}`)
	var created struct {
		Data struct {
			ID  int64  `json:"id"`
			Key string `json:"key"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(raw), &created); resp.StatusCode != 200 || err != nil || created.Data.Key == "" {
		t.Fatalf("create: %d %s (%v)", resp.StatusCode, raw, err)
	}
	key := created.Data.Key
	if got := inv.Take(); got["AuthorizerFunction"] != 1 || got["CreateTokenFunction"] != 1 {
		t.Fatalf("create invoked %v, want the authorizer and create once", got)
	}

	usage := `{"code":true,"message":"ok","data":{"object":"token_usage","name":"relay","total_granted":1234,"total_used":0,"total_available":1234,"unlimited_quota":false,"model_limits":{"gpt-4":true},"model_limits_enabled":true,"expires_at":0,"budget_usage":{}}}`
	steps := []struct {
		name, path, auth string
		wantStatus       int
		wantBody         string
	}{
		{"key as Bearer", "/api/usage/token", "Bearer " + key, 200, usage},
		{"trailing slash", "/api/usage/token/", "Bearer " + key, 200, usage},
		{"no Authorization: the function answers, not the gateway", "/api/usage/token", "", 401, `{"code":false,"message":"未提供令牌"}`},
		{"user access token is not a key", "/api/usage/token", "Bearer " + alice, 401, `{"code":false,"message":"无效的令牌"}`},
		{"malformed key", "/api/usage/token", "Bearer sk-123", 401, `{"code":false,"message":"无效的令牌"}`},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			resp, raw := call(t, "GET", s.path, s.auth, "")
			if resp.StatusCode != s.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, s.wantStatus)
			}
			if !jsonEqual(raw, s.wantBody) {
				t.Errorf("body %s, want %s", raw, s.wantBody)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if got := inv.Take(); !reflect.DeepEqual(got, map[string]int{"UsageTokenFunction": 1}) {
				t.Errorf("invoked %v, want UsageTokenFunction once and no authorizer", got)
			}
		})
	}

	t.Run("deleted key", func(t *testing.T) {
		if resp, raw := call(t, "DELETE", "/api/token/"+strconv.FormatInt(created.Data.ID, 10), "Bearer "+alice, ""); resp.StatusCode != 200 {
			t.Fatalf("delete: %d %s", resp.StatusCode, raw)
		}
		resp, raw := call(t, "GET", "/api/usage/token", "Bearer "+key, "")
		if resp.StatusCode != 401 || !jsonEqual(raw, `{"code":false,"message":"无效的令牌"}`) {
			t.Errorf("usage of a deleted key: %d %s, want 401 invalid token", resp.StatusCode, raw)
		}
	})

	all := logs.String() + out.String()
	for _, secret := range []string{key, strings.TrimPrefix(key, "sk-"), alice} {
		if strings.Contains(all, secret) {
			t.Errorf("logs hold a key or an access token")
		}
	}
}

// jsonEqual compares two JSON documents as values.
func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
