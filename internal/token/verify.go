package token

import (
	"slices"
	"time"
)

// Verify answer codes: the "code" of a refused verify (API.md "Verify and
// consume"), listed in the order they are checked. They are part of the
// relay's contract, so they never change once published.
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

// VerifyCodes are every verify answer code, in check order.
var VerifyCodes = []string{
	VerifyInvalidRequest, VerifyNotFound, VerifyDisabled, VerifyExpired, VerifyExhausted,
	VerifyIPNotAllowed, VerifyModelNotAllowed, VerifyRateLimited, VerifyInsufficientQuota,
}

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
// and only a positive Consume with Settle is a settle (API.md): a settle of
// nothing skips no check.
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

// RefundedRemain is t's remain_quota after a refund of amount (> 0): capped
// at MaxQuota, and unchanged on an unlimited token.
func RefundedRemain(t Token, amount int64) int64 {
	if t.UnlimitedQuota {
		return t.RemainQuota
	}
	return min(t.RemainQuota+amount, MaxQuota)
}
