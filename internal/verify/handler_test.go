package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

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
		{"unknown fields ignored", `{"key":"k","trace":"x"}`, token.VerifyRequest{Key: "k"}, false},
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
		{"request id", `{"key":"k","consume":5,"request_id":"0b6f7d8e-2c4a-4f1e-9d3b-5a6c7e8f9a0b"}`,
			token.VerifyRequest{Key: "k", Consume: 5, RequestID: "0b6f7d8e-2c4a-4f1e-9d3b-5a6c7e8f9a0b"}, false},
		{"null request id", `{"key":"k","request_id":null}`, token.VerifyRequest{Key: "k"}, false},
		{"request id number", `{"key":"k","request_id":5}`, token.VerifyRequest{}, true},
		{"request id object", `{"key":"k","request_id":{}}`, token.VerifyRequest{}, true},
		{"empty request id", `{"key":"k","request_id":""}`, token.VerifyRequest{}, true},
		{"request id too long", `{"key":"k","request_id":"` + strings.Repeat("r", 129) + `"}`, token.VerifyRequest{}, true},
		{"request id with a space", `{"key":"k","request_id":"a b"}`, token.VerifyRequest{}, true},
		{"request id with #", `{"key":"k","request_id":"a#b"}`, token.VerifyRequest{}, true},
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
	s.Budgets, s.BudgetTimezone = token.Budgets{token.PeriodDay: 1000}, "Asia/Shanghai"
	tok := e.create(t, "user-7", s)
	inv := verify.NewInvoker(e.verifier, func() time.Time { return now })
	// now is 2027-01-15 16:00:05 in Shanghai: the day resets at 00:00 there.
	const midnight = float64(1_800_028_800)
	budgets := map[string]any{"day": float64(1000)}

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
				"budgets": budgets, "budget_timezone": "Asia/Shanghai",
				"budget_usage": map[string]any{"day": map[string]any{"limit": float64(1000), "used": float64(10), "resets_at": midnight}},
			}}},
		{"settle", `{"key":"` + tok.Key + `","model":"x","consume":100,"settle":true}`, map[string]any{
			"valid": true, "charged": float64(90), "shortfall": float64(10), "token": map[string]any{
				"id": float64(tok.ID), "user_id": "user-7", "name": "t", "group": "vip", "status": float64(4),
				"remain_quota": float64(0), "used_quota": float64(100), "unlimited_quota": false,
				"model_limits_enabled": true, "model_limits": "gpt-4,claude", "expired_time": float64(-1), "rpm_limit": float64(30),
				"budgets": budgets, "budget_timezone": "Asia/Shanghai",
				"budget_usage": map[string]any{"day": map[string]any{"limit": float64(1000), "used": float64(100), "resets_at": midnight}},
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
		`{"key":"k","consume":1,"request_id":"r-1"}`, `{"key":"k","request_id":7}`, `{"key":"k","request_id":"a/b"}`,
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

// failingLedger fails every read with an error full of internal detail,
// as a store failure would.
type failingLedger struct{ token.Ledger }

const internalDetail = "read for verify: decode token TOKEN#0000000000000000007: strconv.ParseInt: parsing \"9227000000000000000\": value out of range"

func (failingLedger) LookupKey(context.Context, string, time.Time) (string, int64, error) {
	return "u1", 7, nil
}

func (failingLedger) ReadForVerify(context.Context, string, int64, string) (token.VerifyState, error) {
	return token.VerifyState{}, errors.New(internalDetail)
}

// A store failure is a function error with a generic text and the Lambda
// request id; the cause goes to the log line with the same request id.
func TestStoreFailureAnswersNoInternalText(t *testing.T) {
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))

	key, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	inv := verify.NewInvoker(verify.New(failingLedger{}, 0), func() time.Time { return now })
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "8f2c1e0a-req"})
	out, err := inv.Invoke(ctx, []byte(`{"key":"`+key+`","consume":5}`))
	if err == nil {
		t.Fatalf("Invoke answered %s, want a function error", out)
	}
	var ie *verify.InternalError
	if !errors.As(err, &ie) || ie.RequestID != "8f2c1e0a-req" {
		t.Errorf("error %#v, want an InternalError with the request id", err)
	}
	for _, leak := range []string{"decode", "TOKEN#", "strconv", "9227000000000000000", key[3:]} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the function error %q holds %q", err.Error(), leak)
		}
	}
	if !strings.Contains(err.Error(), "8f2c1e0a-req") {
		t.Errorf("the function error %q does not name the request id", err.Error())
	}

	var line struct {
		Level     string `json:"level"`
		Msg       string `json:"msg"`
		RequestID string `json:"request_id"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if line.Level != "ERROR" || line.RequestID != "8f2c1e0a-req" || !strings.Contains(line.Error, internalDetail) {
		t.Errorf("log line %s: want the error with its detail and the request id", logs.String())
	}
	if strings.Contains(logs.String(), key[3:]) {
		t.Error("the log line holds the key")
	}
}
