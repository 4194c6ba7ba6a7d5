package token

import (
	"context"
	"slices"
	"time"
)

// Verify answer codes: the "code" of a refused verify (README "Verify and
// consume: the relay's call"), listed in the order they are checked. They
// are part of the relay's contract, so they never change once published.
const (
	VerifyInvalidRequest    = EInvalidRequest // a malformed event, or a refund larger than used_quota
	VerifyNotFound          = "not_found"     // bad shape or checksum, unknown, deleted or rotated-out key
	VerifyDisabled          = "disabled"      // the token's stored status is 2, or its user is disabled
	VerifyExpired           = "expired"
	VerifyExhausted         = "exhausted"
	VerifyIPNotAllowed      = "ip_not_allowed"
	VerifyModelNotAllowed   = "model_not_allowed"
	VerifyRateLimited       = ERateLimited
	VerifyInsufficientQuota = "insufficient_quota"
)

// VerifyRequest is the relay's question: may Key be used for Model from
// ClientIP, and (Consume > 0) charge that much. Settle with Consume > 0
// charges a request that already ran (no checks but the key's existence, at
// most what is left); Settle with nothing to charge is a plain verify, every
// check applying. Consume < 0 refunds an earlier charge.
type VerifyRequest struct {
	Key      string
	Model    string
	ClientIP string
	Consume  int64
	Settle   bool
}

// Kind is what a verify request does beyond reading.
type Kind int

// The kinds of verify request.
const (
	KindCheck  Kind = iota // verify, maybe with a charge that must fit (Consume >= 0, no settle)
	KindSettle             // charge what fits of a request that already ran (Consume > 0)
	KindRefund             // give back an earlier charge
)

// Kind classifies r: a negative Consume is a refund whatever Settle says,
// and only a positive Consume with Settle is a settle (README "Verify and
// consume: the relay's call"): a settle of nothing skips no check.
func (r VerifyRequest) Kind() Kind {
	switch {
	case r.Consume < 0:
		return KindRefund
	case r.Settle && r.Consume > 0:
		return KindSettle
	}
	return KindCheck
}

// CheckConsume refuses an amount whose size passes MaxQuota: no token can
// hold it, and used_quota must stay exact.
func (r VerifyRequest) CheckConsume() error {
	if r.Consume > MaxQuota || r.Consume < -MaxQuota {
		return Errorf(EInvalidRequest, "consume must be between -%d and %d", int64(MaxQuota), int64(MaxQuota))
	}
	return nil
}

// CheckUse returns the first verify code among disabled, expired, exhausted,
// ip_not_allowed and model_not_allowed that refuses t (read at now, its user
// disabled or not) for model from clientIP, or "" when t may be used. Rate
// and quota limits need the store; they come after these.
func CheckUse(t Token, userDisabled bool, model, clientIP string, now time.Time) string {
	switch {
	case userDisabled || t.Status != StatusEnabled:
		return VerifyDisabled
	case t.Expired(now):
		return VerifyExpired
	case t.Exhausted():
		return VerifyExhausted
	case len(t.AllowIPs) > 0 && (clientIP == "" || !IPAllowed(t.AllowIPs, clientIP)):
		return VerifyIPNotAllowed
	case t.ModelLimitsEnabled && (model == "" || !slices.Contains(t.ModelLimits, model)):
		return VerifyModelNotAllowed
	}
	return ""
}

// MinuteStart is the start (Unix seconds) of the clock minute holding now:
// the rpm_limit window and the resolution of accessed_time.
func MinuteStart(now time.Time) int64 {
	s := now.Unix()
	return s - ((s%60)+60)%60
}

// RetryAfter is the whole seconds from now to the next clock minute, at
// least 1: when a rate-limited key may try again.
func RetryAfter(now time.Time) int64 {
	return max(MinuteStart(now)+60-now.Unix(), 1)
}

// SettleAmounts splits a settle of consume (> 0) against t into what is
// charged and the shortfall that could not be: an unlimited token is charged
// all of it; a limited one at most its remain_quota.
func SettleAmounts(t Token, consume int64) (charged, shortfall int64) {
	if t.UnlimitedQuota {
		return consume, 0
	}
	charged = min(consume, max(t.RemainQuota, 0))
	return charged, consume - charged
}

// VerifyState is a token as verify reads it: the token, its user's disabled
// flag and its rpm_limit window (minute start and count).
type VerifyState struct {
	Token        Token
	UserDisabled bool
	RPMWindow    int64
	RPMCount     int64
}

// Charge is the write of a verify whose checks passed.
type Charge struct {
	// KeyHash is the hash of the key that was verified: the token's current
	// key, or the key a rotation replaced, charged only while its grace
	// window lasts. Empty means the current key of the token read.
	KeyHash string
	// Consume (>= 0) is taken from remain_quota (unless the token is
	// unlimited) and added to used_quota, only if it fits.
	Consume int64
	// CountRate counts the verify in the token's rpm_limit window, only if
	// the window has room.
	CountRate bool
}

// Settlement is the write of a settle: Charged (> 0, as SettleAmounts
// splits it) is charged through the key with KeyHash, and Shortfall is what
// did not fit.
type Settlement struct {
	KeyHash   string
	Charged   int64
	Shortfall int64
}

// Ledger is what verify reads and writes. Its writes make no decision: the
// caller decides on a read (with CheckUse, SettleAmounts and the rest) and
// the write applies that decision with one conditional write whose
// condition re-checks, on the stored token, everything the decision read. When the condition fails on a token
// that still exists, a write returns written false and the token as it is
// now (the user flag of the read kept), for the caller to decide again.
// Writes and reads answer ErrNotFound for a token that does not exist.
type Ledger interface {
	// LookupKey maps a key hash to its token with one strongly consistent
	// read: ErrNotFound for an unknown key, and for the key a rotation
	// replaced once its grace window has ended at now. The caller confirms
	// the mapping with Token.AcceptsKeyHash.
	LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error)

	// ReadForVerify reads the token and its user's disabled flag in one
	// strongly consistent read. ErrNotFound.
	ReadForVerify(ctx context.Context, userID string, tokenID int64) (VerifyState, error)

	// Charge writes c to the token as read, on the condition that the key
	// is still accepted at now, the token is enabled and not expired, the
	// quota still holds c.Consume and the rpm window is the one read, with
	// room left. It also sets accessed_time.
	Charge(ctx context.Context, read VerifyState, c Charge, now time.Time) (next VerifyState, written bool, err error)

	// Settle charges s.Charged through s.KeyHash (no check but the key's):
	// when s.Shortfall is 0 it takes it from remain_quota on the condition
	// that it still fits, else it sets remain_quota to what is left of the
	// value read, on the condition that it is still that value.
	Settle(ctx context.Context, read VerifyState, s Settlement, now time.Time) (next VerifyState, written bool, err error)

	// Refund gives back amount (> 0) through the key with keyHash (no check
	// but the key's): used_quota goes down by amount on the condition that
	// it holds it, remain_quota up by it, capped at MaxQuota (unchanged on
	// an unlimited token).
	Refund(ctx context.Context, read VerifyState, keyHash string, amount int64, now time.Time) (next VerifyState, written bool, err error)

	// Touch records a verify that writes nothing else in accessed_time, at
	// most once per clock minute, if the token still has keyHash. A token
	// touched already this minute, or gone, is not an error.
	Touch(ctx context.Context, userID string, tokenID int64, keyHash string, now time.Time) error
}
