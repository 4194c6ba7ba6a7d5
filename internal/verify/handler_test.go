package verify_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name    string
		event   string
		want    token.VerifyRequest
		wantErr bool
	}{
		{"full", `{"key":"sk-a","model":"gpt-4","client_ip":"1.2.3.4","consume":1500,"settle":true}`,
			token.VerifyRequest{Key: "sk-a", Model: "gpt-4", ClientIP: "1.2.3.4", Consume: 1500, Settle: true}, false},
		{"key only", `{"key":"k"}`, token.VerifyRequest{Key: "k"}, false},
		{"nulls", `{"key":"k","model":null,"client_ip":null,"consume":null,"settle":null}`, token.VerifyRequest{Key: "k"}, false},
		{"refund", `{"key":"k","consume":-20}`, token.VerifyRequest{Key: "k", Consume: -20}, false},
		{"unknown fields ignored", `{"key":"k","request_id":"x"}`, token.VerifyRequest{Key: "k"}, false},
		{"no key", `{"model":"m"}`, token.VerifyRequest{}, true},
		{"null key", `{"key":null}`, token.VerifyRequest{}, true},
		{"key number", `{"key":5}`, token.VerifyRequest{}, true},
		{"consume string", `{"key":"k","consume":"15"}`, token.VerifyRequest{}, true},
		{"consume fraction", `{"key":"k","consume":1.5}`, token.VerifyRequest{}, true},
		{"consume exponent", `{"key":"k","consume":1e3}`, token.VerifyRequest{}, true},
		{"consume overflow", `{"key":"k","consume":99999999999999999999}`, token.VerifyRequest{}, true},
		{"settle string", `{"key":"k","settle":"true"}`, token.VerifyRequest{}, true},
		{"model number", `{"key":"k","model":4}`, token.VerifyRequest{}, true},
		{"array", `[{"key":"k"}]`, token.VerifyRequest{}, true},
		{"string", `"sk-a"`, token.VerifyRequest{}, true},
		{"not json", `key=sk-a`, token.VerifyRequest{}, true},
		{"empty", ``, token.VerifyRequest{}, true},
		{"truncated", `{"key":"k"`, token.VerifyRequest{}, true},
		{"too large", `{"key":"` + strings.Repeat("a", 70_000) + `"}`, token.VerifyRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verify.ParseEvent([]byte(tt.event))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestInvokerAnswers round-trips JSON payloads through the lambda.Handler
// the function starts, against DynamoDB Local.
func TestInvokerAnswers(t *testing.T) {
	e := newEnv(t)
	s := spec()
	s.RemainQuota = 100
	s.ModelLimitsEnabled, s.ModelLimits = true, []string{"gpt-4", "claude"}
	s.Group, s.RPMLimit = "vip", 30
	tok := e.create(t, "user-7", s)
	inv := verify.NewInvoker(e.verifier, func() time.Time { return now })

	tests := []struct {
		name    string
		payload string
		want    map[string]any
	}{
		{"valid", `{"key":"` + tok.Key + `","model":"gpt-4","consume":10}`, map[string]any{
			"valid": true, "token": map[string]any{
				"id": float64(tok.ID), "user_id": "user-7", "name": "t", "group": "vip", "status": float64(1),
				"remain_quota": float64(90), "used_quota": float64(10), "unlimited_quota": false,
				"model_limits_enabled": true, "model_limits": "gpt-4,claude", "expired_time": float64(-1), "rpm_limit": float64(30),
			}}},
		{"settle", `{"key":"` + tok.Key + `","model":"x","consume":100,"settle":true}`, map[string]any{
			"valid": true, "charged": float64(90), "shortfall": float64(10), "token": map[string]any{
				"id": float64(tok.ID), "user_id": "user-7", "name": "t", "group": "vip", "status": float64(4),
				"remain_quota": float64(0), "used_quota": float64(100), "unlimited_quota": false,
				"model_limits_enabled": true, "model_limits": "gpt-4,claude", "expired_time": float64(-1), "rpm_limit": float64(30),
			}}},
		{"refused", `{"key":"` + tok.Key + `","model":"gpt-4"}`, map[string]any{
			"valid": false, "code": "exhausted", "message": "该令牌额度已用尽"}},
		{"malformed", `{"key":1}`, map[string]any{"valid": false, "code": "invalid_request", "message": "参数错误"}},
		{"not json", `nope`, map[string]any{"valid": false, "code": "invalid_request", "message": "参数错误"}},
		{"bad key", `{"key":"sk-nope"}`, map[string]any{"valid": false, "code": "not_found", "message": "无效的令牌"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := inv.Invoke(context.Background(), []byte(tt.payload))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer\n got %s\nwant %v", out, tt.want)
			}
		})
	}
}

// TestStoreFailureIsAnError: a verify whose store fails is the invoke's
// error, never an answer.
func TestStoreFailureIsAnError(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, "u1", spec())
	inv := verify.NewInvoker(e.verifier, func() time.Time { return now })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, err := inv.Invoke(ctx, []byte(`{"key":"`+tok.Key+`"}`))
	if err == nil {
		t.Fatalf("Invoke with a failing store answered %s, want an error", out)
	}
	if strings.Contains(err.Error(), tok.Key) || strings.Contains(err.Error(), tok.Key[3:]) {
		t.Errorf("error holds the key: %v", err)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"key":"sk-a","model":"gpt-4","client_ip":"1.2.3.4","consume":1500,"settle":true}`,
		`{"key":"k"}`, `{"key":null}`, `{"key":5}`, `{"key":"k","consume":1.5}`, `{"key":"k","consume":"15"}`,
		`{"key":"k","consume":-20}`, `{"key":"k","consume":99999999999999999999}`, `{"key":"k","settle":"yes"}`,
		` {"key":"k"} `, `[]`, `null`, ``, `{`, `"sk-a"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := verify.ParseEvent(raw)
		if err != nil {
			if token.ErrorCode(err) != token.EInvalidRequest {
				t.Fatalf("ParseEvent(%q) error code %q, want %q", raw, token.ErrorCode(err), token.EInvalidRequest)
			}
			if req != (token.VerifyRequest{}) {
				t.Fatalf("ParseEvent(%q) refused but returned %+v", raw, req)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("ParseEvent accepted invalid JSON %q", raw)
		}
	})
}
