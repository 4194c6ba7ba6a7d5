package relay

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"
)

// Invoker is the part of the AWS SDK's Lambda client (*lambda.Client) a
// Client uses; tests substitute their own.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ Invoker = (*lambda.Client)(nil)

// Options tune a Client; the zero value of each field is its default.
type Options struct {
	// Attempts bounds the invocations of one call: 4 by default.
	Attempts int
	// AttemptTimeout bounds one invocation: 5 s by default, well above a
	// warm verify (a few ms in Lambda). An attempt that has not answered
	// by then is given up and sent again.
	AttemptTimeout time.Duration
	// BaseDelay and MaxDelay shape the pause before each retry: a random
	// time up to BaseDelay doubled per retry, at most MaxDelay (50 ms and
	// 1 s by default).
	BaseDelay, MaxDelay time.Duration
	// NewRequestID makes the request id of each Hold: NewRequestID by
	// default.
	NewRequestID func() string
}

// Client calls the verify function. It is safe for concurrent use; make
// one per process.
type Client struct {
	lambda   Invoker
	function string
	opts     Options
}

// New returns a Client that invokes function (the stack's output
// VerifyFunctionArn; "VerifyTokenFunction" on the local runner) through
// client, usually lambda.NewFromConfig(cfg).
func New(client Invoker, function string, opts Options) *Client {
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Second
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 50 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	if opts.NewRequestID == nil {
		opts.NewRequestID = NewRequestID
	}
	return &Client{lambda: client, function: function, opts: opts}
}

// Call is what every event of one LLM call says: the key the gateway's
// client sent, the model it asks for and the client's IP. Model and
// ClientIP may be empty when the token limits neither.
type Call struct {
	Key      string
	Model    string
	ClientIP string
}

// Event is the verify function's event (README "Verify and consume: the
// relay's call"). Verify, Hold, Settle and Refund make it; Do sends any.
type Event struct {
	Key       string `json:"key"`
	Model     string `json:"model,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	Consume   int64  `json:"consume,omitempty"`
	Settle    bool   `json:"settle,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Answer is a valid verify answer.
type Answer struct {
	Token Token `json:"token"`
	// Charged is, with a request id, what the request costs in total after
	// this event; on a settle without one, what the settle charged.
	Charged int64 `json:"charged"`
	// Delta is what this event charged (negative: gave back); request ids only.
	Delta int64 `json:"delta"`
	// Shortfall is what a settle could not charge (no quota left): bill it
	// to the user another way.
	Shortfall int64 `json:"shortfall"`
	// Replayed marks the answer of a duplicate: the event had applied
	// already (an earlier attempt whose answer was lost), and this is that
	// first answer again, the token as it was then.
	Replayed bool `json:"replayed"`
}

// Token is the token of an answer.
type Token struct {
	ID                 int64  `json:"id"`
	UserID             string `json:"user_id"`
	Name               string `json:"name"`
	Group              string `json:"group"`
	Status             int    `json:"status"` // 1 enabled, 2 disabled, 3 expired, 4 exhausted
	RemainQuota        int64  `json:"remain_quota"`
	UsedQuota          int64  `json:"used_quota"`
	UnlimitedQuota     bool   `json:"unlimited_quota"`
	ModelLimitsEnabled bool   `json:"model_limits_enabled"`
	ModelLimits        string `json:"model_limits"` // comma-separated
	ExpiredTime        int64  `json:"expired_time"` // Unix seconds, -1 never
	RPMLimit           int64  `json:"rpm_limit"`
}

// Hold is the quota held for one LLM call: settle it with the call's real
// cost, or refund it when the call failed. Its RequestID ties the three
// together; keep it (with the Call) if the settle happens elsewhere, and
// rebuild the Hold from them.
type Hold struct {
	RequestID string
	Call      Call
	Amount    int64
	Answer    Answer
}

// Verify checks call's key without charging it (every check, rate limit
// included). It is retried like every call.
func (c *Client) Verify(ctx context.Context, call Call) (Answer, error) {
	return c.Do(ctx, Event{Key: call.Key, Model: call.Model, ClientIP: call.ClientIP})
}

// Hold checks call's key and charges estimate (> 0) if it fits, under a
// new request id. A refusal (*Refusal: not_found, disabled, ...,
// insufficient_quota) charged nothing and recorded nothing. When the
// service could not be reached (ErrUnavailable) the hold may or may not
// have applied: Hold returns it with the error, and settling or refunding
// it later is safe (a refund of a hold that never applied is
// invalid_request).
func (c *Client) Hold(ctx context.Context, call Call, estimate int64) (*Hold, error) {
	if estimate <= 0 {
		return nil, errors.New("relay: hold: the estimate must be positive")
	}
	h := &Hold{RequestID: c.opts.NewRequestID(), Call: call, Amount: estimate}
	a, err := c.Do(ctx, h.event(estimate, false))
	switch {
	case errors.Is(err, ErrUnavailable):
		return h, err
	case err != nil:
		return nil, err
	}
	h.Answer = a
	return h, nil
}

// Settle charges h's call its real cost final (>= 0): the difference from
// the hold is charged (at most what is left: Answer.Shortfall is the
// rest) or given back. Checks are skipped: the call ran.
func (c *Client) Settle(ctx context.Context, h *Hold, final int64) (Answer, error) {
	if final < 0 {
		return Answer{}, errors.New("relay: settle: the final cost must not be negative")
	}
	return c.Do(ctx, h.event(final, true))
}

// Refund gives back up to amount (> 0) of what h's request was charged,
// at most all of it: a failed call is refunded with h.Amount (or more).
func (c *Client) Refund(ctx context.Context, h *Hold, amount int64) (Answer, error) {
	if amount <= 0 {
		return Answer{}, errors.New("relay: refund: the amount must be positive")
	}
	return c.Do(ctx, h.event(-amount, false))
}

func (h *Hold) event(consume int64, settle bool) Event {
	return Event{Key: h.Call.Key, Model: h.Call.Model, ClientIP: h.Call.ClientIP, Consume: consume, Settle: settle, RequestID: h.RequestID}
}

// Do sends ev, retried with backoff on timeouts, throttling and function
// errors. An event that charges (Consume != 0 or Settle) without a request
// id is retried only when Lambda throttled it, which means it did not run:
// any other retry could charge it twice. A refusal is a *Refusal; a call
// the service did not answer, ErrUnavailable.
func (c *Client) Do(ctx context.Context, ev Event) (Answer, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return Answer{}, fmt.Errorf("relay: %w", err)
	}
	idempotent := ev.RequestID != "" || (ev.Consume == 0 && !ev.Settle)
	for attempt := 1; ; attempt++ {
		a, err := c.invoke(ctx, payload)
		var f *failure
		if !errors.As(err, &f) {
			return a, err // an answer, a refusal, or a request that cannot succeed
		}
		switch {
		case ctx.Err() != nil:
			return Answer{}, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, attempt, ctx.Err())
		case attempt >= c.opts.Attempts || !(f.throttled || idempotent):
			return Answer{}, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, attempt, f.err)
		}
		if err := c.pause(ctx, attempt); err != nil {
			return Answer{}, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, attempt, err)
		}
	}
}

// failure is an attempt worth retrying: the service did not answer it.
// throttled means Lambda refused to run the function.
type failure struct {
	err       error
	throttled bool
}

func (f *failure) Error() string { return f.err.Error() }

// invoke makes one attempt: an Answer, a *Refusal, a *failure, or an error
// no retry can cure (access denied, unknown function, a malformed answer).
func (c *Client) invoke(ctx context.Context, payload []byte) (Answer, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	out, err := c.lambda.Invoke(actx, &lambda.InvokeInput{FunctionName: &c.function, Payload: payload})
	if err != nil {
		return Answer{}, classify(err)
	}
	if out.FunctionError != nil {
		// The verify function's own errors carry a generic text and the
		// Lambda request id that finds the cause in its log.
		var fe struct {
			Message string `json:"errorMessage"`
		}
		_ = json.Unmarshal(out.Payload, &fe)
		return Answer{}, &failure{err: fmt.Errorf("function error %s: %s", *out.FunctionError, fe.Message)}
	}
	var w struct {
		Answer
		Valid             bool   `json:"valid"`
		Code              Code   `json:"code"`
		Message           string `json:"message"`
		RetryAfterSeconds int64  `json:"retry_after_seconds"`
		Period            string `json:"period"`
	}
	if err := json.Unmarshal(out.Payload, &w); err != nil {
		return Answer{}, fmt.Errorf("relay: answer does not decode: %w", err)
	}
	if !w.Valid {
		return Answer{}, &Refusal{Code: w.Code, Message: w.Message, RetryAfter: time.Duration(w.RetryAfterSeconds) * time.Second, Period: w.Period}
	}
	return w.Answer, nil
}

// classify tells an Invoke error worth retrying (a *failure: throttling,
// a server error, a timeout or a failure in transit) from one that is not
// (the caller's context ended, or Lambda refused the request: access
// denied, unknown function, bad payload).
func classify(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "TooManyRequestsException", "ThrottlingException", "EC2ThrottledException":
			return &failure{err: err, throttled: true}
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == 0:
			// No response: the request failed in transit, or the
			// attempt's time ran out.
			return &failure{err: err}
		case code == 429:
			return &failure{err: err, throttled: true}
		case code >= 500:
			return &failure{err: err}
		default:
			return fmt.Errorf("relay: %w", err)
		}
	}
	if api != nil {
		return fmt.Errorf("relay: %w", err)
	}
	// In transit: a timeout (the attempt's own, or the network's), a
	// connection refused or reset, an answer cut short.
	return &failure{err: err}
}

// pause sleeps before retry n+1: a random time up to BaseDelay << (n-1),
// at most MaxDelay (full jitter), or until ctx ends.
func (c *Client) pause(ctx context.Context, n int) error {
	d := c.opts.BaseDelay << min(n-1, 20)
	if d > c.opts.MaxDelay || d <= 0 {
		d = c.opts.MaxDelay
	}
	t := time.NewTimer(mathrand.N(d) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewRequestID returns a new random request id: a UUID (version 4) from
// crypto/rand, as the contract asks of a relay.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
