package relay

import (
	"errors"
	"fmt"
	"time"
)

// Code is the code of a refused verify (the answer's "code"), in the order
// the service checks them. A Code is an error, so that errors.Is(err, code)
// tells a refusal's code.
type Code string

// The codes of the contract (README "Verify and consume: the relay's
// call"). They never change once published.
const (
	InvalidRequest    Code = "invalid_request"    // a malformed event; a refund of more than the key's used quota, or of a request id that charged nothing
	NotFound          Code = "not_found"          // bad shape or checksum, unknown, deleted or rotated-out key
	RequestConflict   Code = "request_conflict"   // an event its request id's state does not allow
	Disabled          Code = "disabled"           // the token, or its user, is disabled
	Expired           Code = "expired"            // the token has expired
	Exhausted         Code = "exhausted"          // the token's quota is used up
	IPNotAllowed      Code = "ip_not_allowed"     // the client IP is not in the token's allow list
	ModelNotAllowed   Code = "model_not_allowed"  // the model is not in the token's model limits
	RateLimited       Code = "rate_limited"       // over the token's rpm_limit: Refusal.RetryAfter says when to try again
	BudgetExceeded    Code = "budget_exceeded"    // over one of the token's spend windows (Refusal.Period)
	InsufficientQuota Code = "insufficient_quota" // the charge does not fit the token's quota
)

// Error returns the code itself.
func (c Code) Error() string { return string(c) }

// Refusal is the error of a verify the service answered with a refusal:
// the key may not be used, or the event may not apply. Retrying it
// unchanged gets the same refusal.
type Refusal struct {
	Code    Code
	Message string // the service's text, in Chinese (as upstream new-api)
	// RetryAfter is when a rate_limited or budget_exceeded key may try
	// again (0: not given).
	RetryAfter time.Duration
	// Period is the spend window that refused a budget_exceeded charge.
	Period string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("relay: refused: %s: %s", r.Code, r.Message)
}

// Is reports whether target is r's Code.
func (r *Refusal) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == r.Code
}

// ErrUnavailable is the error of a call the service did not answer: every
// attempt timed out, was throttled, failed in transit or ended in a
// function error, or the context ended first. The returned error wraps it
// and the last attempt's error. An event with a request id may still have
// applied; sending it again is safe.
var ErrUnavailable = errors.New("relay: verify unavailable")
