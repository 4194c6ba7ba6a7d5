package token

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the HTTP contract (the "code" field of a failed
// response), so they never change once published.
const (
	EInvalidRequest  = "invalid_request" // malformed or missing input, generic
	EInvalidJSON     = "invalid_json"    // the body is not valid JSON or has a wrong type
	EBodyTooLarge    = "body_too_large"  // over the body size limit
	EInvalidID       = "invalid_id"      // an id that is not a positive integer
	ENameRequired    = "name_required"   // empty name
	ENameTooLong     = "name_too_long"   // over MaxNameLength characters
	EInvalidName     = "invalid_name"    // a name that does not show what it is (CheckName)
	EInvalidExpiry   = "invalid_expired_time"
	EInvalidQuota    = "invalid_quota" // remain_quota outside 0..MaxQuota
	EInvalidModels   = "invalid_model_limits"
	EInvalidAllowIPs = "invalid_allow_ips"
	EInvalidGroup    = "invalid_group"
	EInvalidCount    = "invalid_count"
	EInvalidStatus   = "invalid_status"        // a status other than 1 or 2
	EInvalidRPMLimit = "invalid_rpm_limit"     // outside 0..MaxRPMLimit
	EInvalidGrace    = "invalid_grace_seconds" // a rotation's grace_seconds outside 0..MaxGraceSeconds
	EInvalidBudgets  = "invalid_budgets"       // budgets or budget_timezone that are not valid
	ETokenExpired    = "token_expired"         // enabling a token that reads as expired
	ETokenExhausted  = "token_exhausted"       // enabling a token that reads as exhausted
	ENotFound        = "token_not_found"
	// ETokenUnreadable is a stored token that cannot be decoded (written by
	// an older version, or by hand): a server-side error of that token
	// alone, which lists and searches skip.
	ETokenUnreadable = "token_unreadable"
	ETokenLimit      = "token_limit_reached" // the per-user token limit
	EUnauthorized    = "unauthorized"
	ERateLimited     = "rate_limited"
	EInternal        = "internal_error"
	EListFailed      = "list_failed"   // the list could not be read (server side)
	ESearchFailed    = "search_failed" // the search could not run (server side)
)

// KeyNotProvided is the code (for the message catalog and the access log) of
// a request authenticated by a key that carries none: the usage endpoint,
// which answers in new-api's shape, not with an envelope code.
const KeyNotProvided = "key_not_provided"

// Error is a failure the caller can act on: a stable Code and, for some codes,
// the offending value (Detail) to help the user fix the input. Detail never holds
// a key or an access token.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "token: " + e.Code
	}
	return fmt.Sprintf("token: %s: %s", e.Code, e.Detail)
}

// Errorf returns an *Error with code and a formatted detail.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by the store for a token that does not exist or that
// belongs to another user: the two are indistinguishable by design.
var ErrNotFound = &Error{Code: ENotFound}

// ErrLimitReached is returned by the store when a create would exceed the
// per-user token limit.
var ErrLimitReached = &Error{Code: ETokenLimit}

// RateLimitError refuses a request over a per-user limit (code
// ERateLimited); RetryAfter is the whole seconds until it may be tried again.
type RateLimitError struct {
	RetryAfter int64
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("token: %s: retry after %ds", ERateLimited, e.RetryAfter)
}

// Unwrap makes ErrorCode see ERateLimited.
func (e *RateLimitError) Unwrap() error { return &Error{Code: ERateLimited} }

// ErrorCode returns the code of an *Error anywhere in err's chain, or EInternal
// for any other error (and "" for nil).
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorDetail returns the Detail of an *Error in err's chain, or "".
func ErrorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}
