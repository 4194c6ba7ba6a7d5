package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/verify"
	"github.com/llmgw/token-service/relay"
)

// fakeLambda answers each Invoke with the next step, recording the events.
type fakeLambda struct {
	mu     sync.Mutex
	steps  []func(ctx context.Context) (*lambda.InvokeOutput, error)
	events []relay.Event
}

func (f *fakeLambda) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	f.mu.Lock()
	var ev relay.Event
	if err := json.Unmarshal(in.Payload, &ev); err != nil {
		panic(err)
	}
	f.events = append(f.events, ev)
	step := f.steps[0]
	if len(f.steps) > 1 {
		f.steps = f.steps[1:]
	}
	f.mu.Unlock()
	return step(ctx)
}

func answer(payload string) func(context.Context) (*lambda.InvokeOutput, error) {
	return func(context.Context) (*lambda.InvokeOutput, error) {
		return &lambda.InvokeOutput{StatusCode: 200, Payload: []byte(payload)}, nil
	}
}

func functionError(context.Context) (*lambda.InvokeOutput, error) {
	return &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"),
		Payload: []byte(`{"errorMessage":"verify: internal error, please retry (request id abc)","errorType":"InternalError"}`)}, nil
}

func throttled(context.Context) (*lambda.InvokeOutput, error) {
	return nil, &types.TooManyRequestsException{Message: aws.String("Rate exceeded")}
}

// hang is an attempt the function never answers in time, failing as the
// SDK reports it: a response error without a response.
func hang(ctx context.Context) (*lambda.InvokeOutput, error) {
	<-ctx.Done()
	return nil, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{}}, Err: &aws.RequestCanceledError{Err: ctx.Err()}}}
}

// cut is a connection closed before the answer, as the SDK reports it.
func cut(context.Context) (*lambda.InvokeOutput, error) {
	return nil, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{}}, Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "read", Err: io.EOF}}}}
}

func serverError(context.Context) (*lambda.InvokeOutput, error) {
	return nil, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http503}, Err: errors.New("service unavailable")}}
}

func accessDenied(context.Context) (*lambda.InvokeOutput, error) {
	return nil, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http403}, Err: errors.New("AccessDeniedException")}}
}

const held = `{"valid":true,"token":{"id":7,"user_id":"u","name":"t","group":"","status":1,"remain_quota":900,"used_quota":100,` +
	`"unlimited_quota":false,"model_limits_enabled":false,"model_limits":"","expired_time":-1,"rpm_limit":0},"charged":100,"delta":100}`

func newClient(f *fakeLambda) *relay.Client {
	return relay.New(f, "VerifyTokenFunction", relay.Options{
		Attempts: 4, AttemptTimeout: 50 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond,
	})
}

var call = relay.Call{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1"}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		steps     []func(context.Context) (*lambda.InvokeOutput, error)
		wantCalls int
		wantErr   error
	}{
		{"answered", steps(answer(held)), 1, nil},
		{"a function error, then the answer", steps(functionError, answer(held)), 2, nil},
		{"throttled, then the answer", steps(throttled, answer(held)), 2, nil},
		{"an attempt timed out, then the answer", steps(hang, answer(held)), 2, nil},
		{"a server error, then the answer", steps(serverError, answer(held)), 2, nil},
		{"the connection cut, then the answer", steps(cut, answer(held)), 2, nil},
		{"every attempt fails", steps(functionError), 4, relay.ErrUnavailable},
		{"access denied is not retried", steps(accessDenied, answer(held)), 1, errLasting},
		{"a refusal is not retried", steps(answer(`{"valid":false,"code":"insufficient_quota","message":"令牌额度不足"}`), answer(held)), 1, relay.InsufficientQuota},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeLambda{steps: tt.steps}
			h, err := newClient(f).Hold(context.Background(), call, 100)
			switch {
			case tt.wantErr == errLasting:
				if err == nil || errors.Is(err, relay.ErrUnavailable) {
					t.Errorf("err = %v, want an error no retry cures", err)
				}
			case !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(f.events) != tt.wantCalls {
				t.Fatalf("%d invocations, want %d", len(f.events), tt.wantCalls)
			}
			for i, ev := range f.events {
				if ev != f.events[0] {
					t.Errorf("attempt %d sent %+v, want the first attempt's %+v", i+1, ev, f.events[0])
				}
			}
			if err == nil && (h.Answer.Charged != 100 || h.Answer.Token.RemainQuota != 900 || h.RequestID != f.events[0].RequestID) {
				t.Errorf("hold %+v", h)
			}
		})
	}
}

// errLasting stands for any error that is neither an answer nor ErrUnavailable.
var errLasting = errors.New("lasting")

func steps(s ...func(context.Context) (*lambda.InvokeOutput, error)) []func(context.Context) (*lambda.InvokeOutput, error) {
	return s
}

// An event that charges without a request id cannot be sent twice safely:
// it is retried only when Lambda throttled it (the function did not run).
func TestChargeWithoutRequestIDIsNotRetriedBlindly(t *testing.T) {
	tests := []struct {
		name      string
		steps     []func(context.Context) (*lambda.InvokeOutput, error)
		wantCalls int
	}{
		{"function error", steps(functionError, answer(held)), 1},
		{"timeout", steps(hang, answer(held)), 1},
		{"throttled", steps(throttled, answer(held)), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeLambda{steps: tt.steps}
			_, _ = newClient(f).Do(context.Background(), relay.Event{Key: "sk-k", Consume: 5})
			if len(f.events) != tt.wantCalls {
				t.Errorf("%d invocations, want %d", len(f.events), tt.wantCalls)
			}
		})
	}
}

func TestHoldSettleRefundEvents(t *testing.T) {
	f := &fakeLambda{steps: steps(answer(held))}
	c := newClient(f)
	ctx := context.Background()
	h, err := c.Hold(ctx, call, 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(ctx, h, 120); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(ctx, h, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refund(ctx, h, 120); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, call); err != nil {
		t.Fatal(err)
	}
	id := h.RequestID
	want := []relay.Event{
		{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1", Consume: 300, RequestID: id},
		{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1", Consume: 120, Settle: true, RequestID: id},
		{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1", Consume: 0, Settle: true, RequestID: id},
		{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1", Consume: -120, RequestID: id},
		{Key: "sk-k", Model: "gpt-4", ClientIP: "10.0.0.1"},
	}
	if !reflect.DeepEqual(f.events, want) {
		t.Errorf("events\n got %+v\nwant %+v", f.events, want)
	}
	// Every event parses as the verify function parses it, with the
	// settle of 0 a settle.
	for _, ev := range f.events {
		b, _ := json.Marshal(ev)
		req, err := verify.ParseEvent(b)
		if err != nil || req.Consume != ev.Consume || req.Settle != ev.Settle || req.RequestID != ev.RequestID {
			t.Errorf("%s parses as %+v, %v", b, req, err)
		}
	}
	if _, err := c.Hold(ctx, call, 0); err == nil {
		t.Error("a hold of 0 was sent")
	}
	if _, err := c.Refund(ctx, h, -1); err == nil {
		t.Error("a negative refund was sent")
	}
}

func TestNewRequestID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := relay.NewRequestID()
		if !uuid.MatchString(id) || token.CheckRequestID(id) != nil {
			t.Fatalf("request id %q: want a UUID the service accepts", id)
		}
		if seen[id] {
			t.Fatalf("request id %q made twice", id)
		}
		seen[id] = true
	}
}

// The client reads what the verify function writes: a refusal's fields,
// and every field of a valid answer.
func TestAnswersDecode(t *testing.T) {
	charged, delta, shortfall := int64(150), int64(50), int64(100)
	a := verify.Answer{Valid: true, Charged: &charged, Delta: &delta, Shortfall: &shortfall, Replayed: true, Token: &verify.TokenView{
		ID: 7, UserID: "u", Name: "n", Group: "g", Status: 4, RemainQuota: 0, UsedQuota: 150, UnlimitedQuota: false,
		ModelLimitsEnabled: true, ModelLimits: "gpt-4,claude", ExpiredTime: -1, RPMLimit: 60,
	}}
	payload, _ := json.Marshal(a)
	got, err := newClient(&fakeLambda{steps: steps(answer(string(payload)))}).Verify(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	want := relay.Answer{Charged: 150, Delta: 50, Shortfall: 100, Replayed: true, Token: relay.Token{
		ID: 7, UserID: "u", Name: "n", Group: "g", Status: 4, UsedQuota: 150,
		ModelLimitsEnabled: true, ModelLimits: "gpt-4,claude", ExpiredTime: -1, RPMLimit: 60,
	}}
	if got != want {
		t.Errorf("answer\n got %+v\nwant %+v", got, want)
	}

	limited := verify.Refused(token.VerifyRateLimited)
	limited.RetryAfterSeconds = 42
	payload, _ = json.Marshal(limited)
	_, err = newClient(&fakeLambda{steps: steps(answer(string(payload)))}).Verify(context.Background(), call)
	var r *relay.Refusal
	if !errors.As(err, &r) || r.Code != relay.RateLimited || r.RetryAfter != 42*time.Second || r.Message != limited.Message {
		t.Errorf("refusal %+v, want rate_limited after 42 s", err)
	}
}

// The client's codes are the service's.
func TestCodes(t *testing.T) {
	pairs := map[relay.Code]string{
		relay.InvalidRequest: token.VerifyInvalidRequest, relay.NotFound: token.VerifyNotFound,
		relay.RequestConflict: token.VerifyRequestConflict, relay.Disabled: token.VerifyDisabled,
		relay.Expired: token.VerifyExpired, relay.Exhausted: token.VerifyExhausted,
		relay.IPNotAllowed: token.VerifyIPNotAllowed, relay.ModelNotAllowed: token.VerifyModelNotAllowed,
		relay.RateLimited: token.VerifyRateLimited, relay.InsufficientQuota: token.VerifyInsufficientQuota,
	}
	for c, want := range pairs {
		if string(c) != want {
			t.Errorf("relay code %q, service code %q", c, want)
		}
	}
}

// The caller's context bounds every attempt and the pauses between them.
func TestContextEndsTheRetries(t *testing.T) {
	f := &fakeLambda{steps: steps(hang)}
	c := relay.New(f, "VerifyTokenFunction", relay.Options{Attempts: 100, AttemptTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Verify(ctx, call)
	if !errors.Is(err, relay.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrUnavailable and context.Canceled", err)
	}
	if len(f.events) != 1 {
		t.Errorf("%d invocations after the context ended, want 1", len(f.events))
	}
}

var (
	http503 = http.Response{StatusCode: 503, Header: http.Header{}}
	http403 = http.Response{StatusCode: 403, Header: http.Header{}}
)
