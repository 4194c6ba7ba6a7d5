package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
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
	VerifyBudgetExceeded    = "budget_exceeded" // a spend window refuses: with the period, and when it resets unless the amount never fits
	VerifyInsufficientQuota = "insufficient_quota"
	// VerifyRequestConflict is an event with a request id that the id's
	// state does not allow (README "The events and answers"); it comes right after
	// not_found, before a duplicate's answer and every check.
	VerifyRequestConflict = "request_conflict"
)

// MaxUsedQuota is the most used_quota may hold, 2^53-1, so that every
// client (JavaScript's numbers among them) reads it exactly: a consume or
// hold that would pass it is insufficient_quota, and the part of a settle
// above it is shortfall.
const MaxUsedQuota = 1<<53 - 1

// DefaultRequestRecordSeconds is how long a request id's record lasts
// after its last write when RequestRecordSeconds is not configured: 7
// days, for asynchronous tasks that settle hours later.
const DefaultRequestRecordSeconds = 604_800

// MaxRequestIDLength bounds a request id.
const MaxRequestIDLength = 128

// VerifyRequest is the relay's question: may Key be used for Model from
// ClientIP, and (Consume > 0) charge that much. Settle with Consume > 0
// charges a request that already ran (no checks but the key's existence, at
// most what is left); Settle with nothing to charge is a plain verify, every
// check applying. Consume < 0 refunds an earlier charge.
//
// RequestID (CheckRequestID; "" = none) makes the charge exactly-once: a
// hold (Consume > 0), a settle (Settle, Consume >= 0: the final cost) and a
// refund move the id's record through the states of README "The events and answers".
// A plain verify (nothing to charge, no settle) ignores it.
type VerifyRequest struct {
	Key       string
	Model     string
	ClientIP  string
	Consume   int64
	Settle    bool
	RequestID string
}

// Kind is what a verify request does beyond reading.
type Kind int

// The kinds of verify request.
const (
	KindCheck  Kind = iota // verify, maybe with a charge that must fit (Consume >= 0, no settle)
	KindSettle             // charge what fits of a request that already ran (Consume > 0; >= 0 with a request id)
	KindRefund             // give back an earlier charge
)

// Kind classifies r: a negative Consume is a refund whatever Settle says,
// and only a positive Consume with Settle is a settle (README "Verify and
// consume: the relay's call"): a settle of nothing skips no check. With a
// request id a settle of 0 is a settle too: a final cost of nothing.
func (r VerifyRequest) Kind() Kind {
	switch {
	case r.Consume < 0:
		return KindRefund
	case r.Settle && (r.Consume > 0 || r.RequestID != ""):
		return KindSettle
	}
	return KindCheck
}

// HasRequest reports whether r's request id applies: a hold, a settle or a
// refund with an id. A plain verify charges nothing, so its id is ignored.
func (r VerifyRequest) HasRequest() bool {
	return r.RequestID != "" && (r.Consume != 0 || r.Kind() == KindSettle)
}

// Fingerprint identifies r's event among the events of its request id:
// what it does (kind and amount) and where from (model and client ip).
// Two events are "the same event" of the request-id rules when their fingerprints are
// equal. It is short (22 characters) whatever the model's length, so that
// records stay small.
func (r VerifyRequest) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%d:%s\x00%d:%s", r.Kind(), r.Consume, len(r.Model), r.Model, len(r.ClientIP), r.ClientIP)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// CheckRequestID accepts a request id of 1 to MaxRequestIDLength
// characters from [A-Za-z0-9._:-].
func CheckRequestID(id string) error {
	if id == "" || len(id) > MaxRequestIDLength {
		return Errorf(EInvalidRequest, "request_id must be 1 to %d characters", MaxRequestIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return Errorf(EInvalidRequest, "request_id may hold only letters, digits and . _ : -")
		}
	}
	return nil
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
	case t.ModelLimitsEnabled && !ModelAllowed(t.ModelLimits, model):
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

// SettleAmounts splits a charge of consume (> 0) that skips the checks (a
// settle) against t into what is charged and the shortfall that could not
// be: at most remain_quota on a limited token, and never past MaxUsedQuota.
func SettleAmounts(t Token, consume int64) (charged, shortfall int64) {
	charged = min(consume, max(MaxUsedQuota-t.UsedQuota, 0))
	if !t.UnlimitedQuota {
		charged = min(charged, max(t.RemainQuota, 0))
	}
	return charged, consume - charged
}

// Fits reports whether a checked charge of consume (a consume or a hold)
// fits t: remain_quota holds it (unless t is unlimited) and used_quota
// stays within MaxUsedQuota.
func Fits(t Token, consume int64) bool {
	return t.UsedQuota <= MaxUsedQuota-consume && (t.UnlimitedQuota || t.RemainQuota >= consume)
}

// VerifyState is a token as verify reads it: the token, its user's disabled
// flag, its rpm_limit window (minute start and count) and the record of the
// request id asked about.
type VerifyState struct {
	Token        Token
	UserDisabled bool
	RPMWindow    int64
	RPMCount     int64
	// Request is the record of the request id read with the token, nil
	// when there is none; it may have expired at the reader's now (Live).
	Request *Request
}

// RequestState is where a request id stands (README "The events and answers").
type RequestState string

// The states of a request id with a record.
const (
	RequestHeld     RequestState = "held"
	RequestSettled  RequestState = "settled"
	RequestRefunded RequestState = "refunded"
)

// Request is the record of a request id on one token: its state, what it
// took from the quotas, and the answer of the event that wrote it last,
// which that event's duplicates answer again.
type Request struct {
	ID    string
	State RequestState
	// Event is the Fingerprint of the event that wrote the record last.
	Event string
	// Charged is what the request costs in total: what it added to
	// used_quota and has not given back. FromRemain is the part of it
	// taken from remain_quota, which a give-back returns there first.
	Charged    int64
	FromRemain int64
	// Delta is what the last event charged (negative: gave back);
	// Shortfall what the last settle could not charge.
	Delta     int64
	Shortfall int64
	// Windows is, per spend window, the window (its start) in which the
	// request's charge was counted and how much of it that window still
	// counts: what a give-back may return there while it is current.
	Windows RequestWindows
	// Answered is the token as the last event's answer showed it.
	Answered AnsweredToken
	// Rev counts the record's writes: a write decided on revision n is
	// made on the condition that the stored record is still n.
	Rev int64
	// ExpiresAt (Unix seconds) is when the record stops counting:
	// RequestRecordSeconds after its last write, whether or not TTL has
	// deleted it yet.
	ExpiresAt int64
}

// Live returns r when it still counts at now, and nil when r is nil or
// has expired: an expired record is no record.
func (r *Request) Live(now time.Time) *Request {
	if r == nil || now.Unix() >= r.ExpiresAt {
		return nil
	}
	return r
}

// AnsweredToken is the part of an answer's token a request record keeps:
// all but the id and user (the record's key names them) and model_limits
// (up to 4 KB; a replayed answer shows the token's current list), so that
// a record stays a few hundred bytes.
type AnsweredToken struct {
	Name               string
	Group              string
	Status             Status // as the answer showed it (3 and 4 derived then)
	RemainQuota        int64
	UsedQuota          int64
	UnlimitedQuota     bool
	ModelLimitsEnabled bool
	ExpiredTime        int64
	RPMLimit           int64
}

// AnsweredAt is t as an answer given at now shows it.
func AnsweredAt(t Token, now time.Time) AnsweredToken {
	return AnsweredToken{
		Name: t.Name, Group: t.Group, Status: t.EffectiveStatus(now),
		RemainQuota: t.RemainQuota, UsedQuota: t.UsedQuota, UnlimitedQuota: t.UnlimitedQuota,
		ModelLimitsEnabled: t.ModelLimitsEnabled, ExpiredTime: t.ExpiredTime, RPMLimit: t.RPMLimit,
	}
}

// RequestStep is what an event with a request id does, given the id's
// live record: the table of states (README "The events and answers").
type RequestStep int

// The steps of an event with a request id.
const (
	// StepApply: the event applies as it would without an id (a hold from
	// no record), or moves the record to another state.
	StepApply RequestStep = iota
	// StepDuplicate: the same event as the one that wrote the record last;
	// it changes nothing and answers that event's answer again.
	StepDuplicate
	// StepConflict: a transition the table does not allow, request_conflict.
	StepConflict
	// StepNothingToRefund: a refund of an id with no record, which charged
	// nothing: invalid_request.
	StepNothingToRefund
)

// NextStep is the step of r (with a request id) against rec, the live
// record of its id (nil: none).
func NextStep(rec *Request, r VerifyRequest) RequestStep {
	kind := r.Kind()
	if rec == nil {
		if kind == KindRefund {
			return StepNothingToRefund
		}
		return StepApply
	}
	// The fingerprint holds the kind: the same event is the same kind.
	same := rec.Event == r.Fingerprint()
	switch {
	case rec.State == RequestHeld && kind != KindCheck,
		rec.State == RequestSettled && kind == KindRefund:
		return StepApply
	case same:
		return StepDuplicate
	}
	return StepConflict
}

// Write is the one conditional write of a verify, made of parts the ledger
// composes into one condition and one update: the key, at most one change
// of the quotas (a checked charge, a settle or a give-back), the rpm_limit
// count, and the request record. The condition re-checks, on the stored
// items, everything the decision read.
type Write struct {
	// KeyHash is the key verified: the token's current one, or the one a
	// rotation replaced, accepted only while its grace window lasts at now.
	// Empty means the read token's current key.
	KeyHash string
	// Consume > 0 is a checked charge: on the condition that the token is
	// still enabled and not expired and that it fits (Fits), taken from
	// remain_quota (unless the token is unlimited) and added to used_quota.
	Consume int64
	// CountRate counts the verify in the token's rpm_limit window, on the
	// condition that the window read still has room; with Consume 0 it
	// also re-checks that the token is enabled and not expired.
	CountRate bool
	// Settle > 0 is charged with no check but the key's, as SettleAmounts
	// split it: when Shortfall is 0 on the condition that it still fits,
	// else remain_quota and used_quota are set to what their read values
	// leave, on the condition that they are still those. A shortfall with
	// nothing charged (Settle 0) changes no quota: only a record keeps it.
	Settle    int64
	Shortfall int64
	// GiveBack > 0 leaves used_quota, on the condition that it holds it;
	// GiveBackRemain of it (at most GiveBack) returns to remain_quota,
	// capped at MaxQuota.
	GiveBack       int64
	GiveBackRemain int64
	// Windows counts the charge (Consume or Settle) in every spend window
	// of the token, or the give-back in the windows that counted the
	// request's charge and are still current (ChargeWindows,
	// GiveBackWindows), each on its own condition (WindowPart).
	Windows []WindowPart
	// Record, when set, is the request record as the write leaves it (Rev
	// and ExpiresAt included): written with the token in one transaction,
	// on the condition that the stored record is still the live one read
	// (VerifyState.Request), or that none is live when none was.
	Record *Request
}

// Applied is read as w leaves it at now had nothing else changed it: what
// a write that returns no item (a transaction) reports.
func (w Write) Applied(read VerifyState, now time.Time) VerifyState {
	next := read
	t := &next.Token
	t.AccessedTime = now.Unix()
	charge := w.Consume + w.Settle
	t.UsedQuota += charge - w.GiveBack
	if !t.UnlimitedQuota {
		t.RemainQuota -= charge
	}
	if w.GiveBackRemain > 0 {
		t.RemainQuota = min(t.RemainQuota+w.GiveBackRemain, MaxQuota)
	}
	if len(w.Windows) > 0 {
		t.Windows = applyWindows(t.Windows, w.Windows)
	}
	if w.CountRate && t.RPMLimit > 0 {
		if window := MinuteStart(now); read.RPMWindow >= window {
			next.RPMCount++
		} else {
			next.RPMWindow, next.RPMCount = window, 1
		}
	}
	if w.Record != nil {
		rec := *w.Record
		next.Request = &rec
	}
	return next
}

// Ledger is what verify reads and writes. Its writes make no decision: the
// caller decides on a read (with CheckUse, Fits, SettleAmounts, NextStep
// and the rest) and the write applies that decision with one conditional
// write whose condition re-checks, on the stored items, everything the
// decision read. When the condition fails on a token that still exists,
// the write returns written false and the state as it is now (the user
// flag of the read kept), for the caller to decide again. Writes and
// reads answer ErrNotFound for a token that does not exist.
type Ledger interface {
	// LookupKey maps a key hash to its token with one strongly consistent
	// read: ErrNotFound for an unknown key, and for the key a rotation
	// replaced once its grace window has ended at now. The caller confirms
	// the mapping with Token.AcceptsKeyHash.
	LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error)

	// ReadForVerify reads the token, its user's disabled flag and, when
	// requestID is not empty, the token's record of that request id
	// (expired or not: the caller judges with Request.Live) in one
	// strongly consistent read. ErrNotFound.
	ReadForVerify(ctx context.Context, userID string, tokenID int64, requestID string) (VerifyState, error)

	// Write makes w on the token as read, and sets accessed_time: one
	// conditional write of the token, or, with w.Record, one transaction
	// of the token and the record. On success next is the state after the
	// write; when a condition failed, written is false and next holds the
	// items that failed it as they are now, the others as read.
	Write(ctx context.Context, read VerifyState, w Write, now time.Time) (next VerifyState, written bool, err error)

	// Touch records a verify that writes nothing else in accessed_time, at
	// most once per clock minute, if the token still accepts keyHash (the
	// verified key) at now. A token touched already this minute, or gone,
	// is not an error.
	Touch(ctx context.Context, userID string, tokenID int64, keyHash string, now time.Time) error
}
