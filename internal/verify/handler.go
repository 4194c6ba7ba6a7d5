package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/llmgw/token-service/internal/token"
)

// maxEventSize bounds the event a handler decodes: a verify event is a few
// hundred bytes.
const maxEventSize = 64 << 10

// event is the Lambda Invoke payload. Pointer and raw fields tell a missing
// or null field from a wrong type.
type event struct {
	Key      *string         `json:"key"`
	Model    *string         `json:"model"`
	ClientIP *string         `json:"client_ip"`
	Consume  json.RawMessage `json:"consume"`
	Settle   *bool           `json:"settle"`
	// RequestID must be a string: any other JSON type fails the decode.
	RequestID *string `json:"request_id"`
}

// ParseEvent decodes a verify event: a JSON object with a string "key";
// "model" and "client_ip" strings, "consume" an integer, "settle" a bool
// and "request_id" a string of token.CheckRequestID, each optional (null =
// absent). Unknown fields are ignored. Anything else is an error, answered
// as invalid_request.
func ParseEvent(raw []byte) (token.VerifyRequest, error) {
	if len(raw) > maxEventSize {
		return token.VerifyRequest{}, token.Errorf(token.EInvalidRequest, "event over %d bytes", maxEventSize)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return token.VerifyRequest{}, token.Errorf(token.EInvalidRequest, "event is not a JSON object")
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return token.VerifyRequest{}, token.Errorf(token.EInvalidRequest, "event does not decode")
	}
	if ev.Key == nil {
		return token.VerifyRequest{}, token.Errorf(token.EInvalidRequest, "key is required")
	}
	req := token.VerifyRequest{Key: *ev.Key}
	if ev.Model != nil {
		req.Model = *ev.Model
	}
	if ev.ClientIP != nil {
		req.ClientIP = *ev.ClientIP
	}
	if ev.Settle != nil {
		req.Settle = *ev.Settle
	}
	if ev.RequestID != nil {
		if err := token.CheckRequestID(*ev.RequestID); err != nil {
			return token.VerifyRequest{}, err
		}
		req.RequestID = *ev.RequestID
	}
	if c := bytes.TrimSpace(ev.Consume); len(c) > 0 && !bytes.Equal(c, []byte("null")) {
		// Digits only (after an optional minus): 1.5, 1e3 and "15" are not integers.
		n, err := strconv.ParseInt(string(c), 10, 64)
		if err != nil {
			return token.VerifyRequest{}, token.Errorf(token.EInvalidRequest, "consume must be an integer")
		}
		req.Consume = n
	}
	return req, nil
}

// Handler is the Lambda handler of the verify function: it decodes the
// event (a malformed one is an invalid_request answer) and answers it with
// v at clock(). A store failure is the handler's error, so the invoke fails
// and the relay retries; it is never a valid answer. That error is an
// InternalError, which carries the Lambda request id and no internal text:
// the details go to the log line with the same request id.
func Handler(v *Verifier, clock func() time.Time) func(context.Context, json.RawMessage) (Answer, error) {
	return func(ctx context.Context, raw json.RawMessage) (Answer, error) {
		req, err := ParseEvent(raw)
		if err != nil {
			return Refused(token.VerifyInvalidRequest), nil
		}
		a, err := v.Verify(ctx, req, clock())
		if err != nil {
			var requestID string
			if lc, ok := lambdacontext.FromContext(ctx); ok {
				requestID = lc.AwsRequestID
			}
			// The error names the operation only: never the key.
			slog.ErrorContext(ctx, "verify failed", "request_id", requestID, "error", err.Error())
			return Answer{}, &InternalError{RequestID: requestID}
		}
		return a, nil
	}
}

// InternalError is the function error of a verify the store could not
// answer: the relay sees its generic text and the Lambda request id, which
// finds the log line with the cause. Retrying is safe (with a request id,
// exactly-once).
type InternalError struct {
	RequestID string
}

func (e *InternalError) Error() string {
	if e.RequestID == "" {
		return "verify: internal error, please retry"
	}
	return "verify: internal error, please retry (request id " + e.RequestID + ")"
}

// Invoker is the verify function as a lambda.Handler: it takes the raw
// payload itself, so even a payload that is not JSON gets an
// invalid_request answer rather than a runtime error.
type Invoker struct {
	handle func(context.Context, json.RawMessage) (Answer, error)
}

// NewInvoker returns the lambda.Handler of v at clock.
func NewInvoker(v *Verifier, clock func() time.Time) Invoker {
	return Invoker{handle: Handler(v, clock)}
}

// Invoke answers one payload with the JSON of its Answer.
func (i Invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	a, err := i.handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(a)
}
