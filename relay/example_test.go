package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/llmgw/token-service/relay"
)

// stubVerify stands in for the verify function in the examples: one token
// with 1000 quota, charged by request id as the service charges it.
type stubVerify struct {
	remain, used int64
	charged      map[string]int64
}

func (s *stubVerify) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	var ev relay.Event
	if err := json.Unmarshal(in.Payload, &ev); err != nil {
		return nil, err
	}
	before := s.charged[ev.RequestID]
	after := before
	switch {
	case ev.Settle:
		after = ev.Consume
	case ev.Consume < 0:
		after = max(before+ev.Consume, 0)
	case ev.Consume > s.remain:
		return &lambda.InvokeOutput{Payload: []byte(`{"valid":false,"code":"insufficient_quota","message":"令牌额度不足"}`)}, nil
	default:
		after = ev.Consume
	}
	s.charged[ev.RequestID] = after
	s.remain -= after - before
	s.used += after - before
	out, _ := json.Marshal(map[string]any{"valid": true, "charged": after, "delta": after - before,
		"token": map[string]any{"id": 1, "status": 1, "remain_quota": s.remain, "used_quota": s.used, "expired_time": -1}})
	return &lambda.InvokeOutput{Payload: out}, nil
}

func newStub() *stubVerify { return &stubVerify{remain: 1000, charged: map[string]int64{}} }

// The relay's pattern for one LLM call: hold an estimate, make the call,
// settle its real cost.
func Example() {
	ctx := context.Background()
	client := relay.New(newStub(), "VerifyTokenFunction", relay.Options{})
	call := relay.Call{Key: "sk-...", Model: "gpt-4o", ClientIP: "203.0.113.7"}

	h, err := client.Hold(ctx, call, 300) // before the LLM call: the estimate
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("held", h.Answer.Charged, "remain", h.Answer.Token.RemainQuota)

	// ... the LLM call, which cost 120 ...

	a, err := client.Settle(ctx, h, 120)
	if err != nil {
		log.Fatal(err) // ErrUnavailable: settle h again later, it is safe
	}
	fmt.Println("charged", a.Charged, "delta", a.Delta, "remain", a.Token.RemainQuota)
	// Output:
	// held 300 remain 700
	// charged 120 delta -180 remain 880
}

// A call that failed gives its hold back.
func ExampleClient_Refund() {
	ctx := context.Background()
	client := relay.New(newStub(), "VerifyTokenFunction", relay.Options{})
	h, err := client.Hold(ctx, relay.Call{Key: "sk-..."}, 300)
	if err != nil {
		log.Fatal(err)
	}
	// ... the LLM call failed ...
	a, err := client.Refund(ctx, h, h.Amount)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("charged", a.Charged, "remain", a.Token.RemainQuota)
	// Output:
	// charged 0 remain 1000
}

// Refusals are *relay.Refusal errors; errors.Is tells their codes.
func ExampleRefusal() {
	client := relay.New(newStub(), "VerifyTokenFunction", relay.Options{})
	_, err := client.Hold(context.Background(), relay.Call{Key: "sk-..."}, 5000)
	switch {
	case errors.Is(err, relay.InsufficientQuota):
		fmt.Println("answer the user 403: not enough quota")
	case errors.Is(err, relay.ErrUnavailable):
		fmt.Println("answer the user 503")
	}
	// Output:
	// answer the user 403: not enough quota
}

// A relay in AWS builds the Lambda client from its role's credentials and
// names the stack's verify function (output VerifyFunctionArn). Against
// the local runner (make start-api) the Lambda endpoint is
// http://127.0.0.1:3001 and the function "VerifyTokenFunction".
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	local := false
	lc := lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		if local {
			o.BaseEndpoint = aws.String("http://127.0.0.1:3001")
		}
	})
	client := relay.New(lc, "arn:aws:lambda:us-east-1:123456789012:function:token-service-VerifyTokenFunction-abc", relay.Options{})
	_ = client
}
