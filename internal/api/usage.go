package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/message"
	"github.com/llmgw/token-service/internal/token"
)

// UsageKeyMissing is the code (for the catalog and the access log; the
// new-api shape carries no code) of a usage request without a key:
// no Authorization header, or "Bearer" with nothing after it.
const UsageKeyMissing = token.KeyNotProvided

// UsageKeyInvalid is the code of a usage request whose key does not name a
// live token: not a Bearer header, bad shape or checksum, unknown, deleted
// or rotated out. It is the verify answer's not_found, with the same message
// (new-api's "无效的令牌").
const UsageKeyInvalid = token.VerifyNotFound

// UsageUserDisabled is the code of a usage request by a key of a disabled
// user: 401, as every other use of the key fails (verify's disabled, with
// its message).
const UsageUserDisabled = token.VerifyDisabled

// KeyStore is what the usage endpoint reads, the way verify does: the key
// lookup item (key hash -> user and token id), then the token itself and
// its user's disabled flag with one strongly consistent read, whose key
// hash must still be the key's. *dynamo.Tokens satisfies it.
type KeyStore interface {
	// LookupKey maps a key hash to its token at now (a rotated-out key's
	// lookup item counts until its grace ends); token.ErrNotFound when
	// unknown.
	LookupKey(ctx context.Context, keyHash string, now time.Time) (userID string, tokenID int64, err error)
	// GetWithUser reads one token and its user's disabled flag together;
	// token.ErrNotFound when the token does not exist.
	GetWithUser(ctx context.Context, userID string, id int64) (t token.Token, userDisabled bool, err error)
}

// UsageResponse is the body of GET /api/usage/token: new-api's shape, not
// our envelope, because new-api's clients read it. Data is absent on a
// failure.
type UsageResponse struct {
	Code    bool        `json:"code"`
	Message string      `json:"message"`
	Data    *TokenUsage `json:"data,omitempty"`
}

// TokenUsage is a key's usage as new-api's GetTokenUsage answers it.
type TokenUsage struct {
	Object             string          `json:"object"` // always "token_usage"
	Name               string          `json:"name"`
	TotalGranted       int64           `json:"total_granted"`   // remain_quota + used_quota
	TotalUsed          int64           `json:"total_used"`      // used_quota
	TotalAvailable     int64           `json:"total_available"` // remain_quota
	UnlimitedQuota     bool            `json:"unlimited_quota"`
	ModelLimits        map[string]bool `json:"model_limits"` // every listed model -> true; {} when none
	ModelLimitsEnabled bool            `json:"model_limits_enabled"`
	ExpiresAt          int64           `json:"expires_at"` // expired_time, 0 when the key never expires
	// BudgetUsage is the key's spend windows at the read (beyond new-api's
	// shape; {} when it has none).
	BudgetUsage map[token.Period]token.BudgetUsage `json:"budget_usage"`
}

// NewTokenUsage is t's usage at now, its windows computed in t's zone (or
// zone, the deployment's default, when t has none). It reads t as stored,
// whatever its status: a disabled, expired or exhausted key still reads
// its usage.
func NewTokenUsage(t token.Token, now time.Time, zone *time.Location) TokenUsage {
	limits := make(map[string]bool, len(t.ModelLimits))
	for _, m := range t.ModelLimits {
		limits[m] = true
	}
	expires := t.ExpiredTime
	if expires == token.NeverExpires {
		expires = 0
	}
	return TokenUsage{
		Object:             "token_usage",
		Name:               t.Name,
		TotalGranted:       t.RemainQuota + t.UsedQuota,
		TotalUsed:          t.UsedQuota,
		TotalAvailable:     t.RemainQuota,
		UnlimitedQuota:     t.UnlimitedQuota,
		ModelLimits:        limits,
		ModelLimitsEnabled: t.ModelLimitsEnabled,
		ExpiresAt:          expires,
		BudgetUsage:        t.BudgetUsage(now, zone),
	}
}

// UsageToken answers GET /api/usage/token, authenticated by the key itself
// (Authorization: Bearer sk-...), not by a user access token: the route has
// no authorizer. A key of bad shape or checksum is refused before any
// DynamoDB request; otherwise one GetItem of the key lookup item and one
// strongly consistent BatchGetItem of the token, which must accept the key
// at clock's now (its current key, or a rotated-out one within its grace
// window), and its user's meta item: a disabled user's key is 401. Every answer is no-store. The Authorization header is read by
// auth.ParseAuthorization, as the authorizer reads it; AcceptLegacyKeys
// admits keys without a checksum; BudgetZone sets the default zone of
// budget_usage.
func UsageToken(store KeyStore, clock Clock, opts ...KeyOption) http.Handler {
	parseKey := keyParser(opts)
	zone := readKeyOptions(opts).budgetZone
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveLogged(w, r, "usage-token", func(w http.ResponseWriter, r *http.Request) (string, error) {
			w.Header().Set("Cache-Control", "no-store")
			now := clock.now()
			t, err := tokenByKey(r.Context(), store, parseKey, r.Header.Get("Authorization"), now)
			if err != nil {
				writeUsageError(w, r, err)
				return "", err
			}
			u := NewTokenUsage(t, now, zone)
			writeJSON(w, http.StatusOK, UsageResponse{Code: true, Message: "ok", Data: &u})
			return t.UserID, nil
		})
	})
}

// tokenByKey finds the token of the key in an Authorization header value
// at now; parseKey checks the key (token.KeyParser).
func tokenByKey(ctx context.Context, store KeyStore, parseKey func(string) (string, error), header string, now time.Time) (token.Token, error) {
	creds, err := auth.ParseAuthorization(header)
	switch {
	case errors.Is(err, auth.ErrNoCredential):
		return token.Token{}, &token.Error{Code: UsageKeyMissing}
	case err != nil || !creds.Bearer():
		return token.Token{}, &token.Error{Code: UsageKeyInvalid}
	}
	key, err := parseKey(creds.Credential)
	if err != nil {
		return token.Token{}, &token.Error{Code: UsageKeyInvalid}
	}
	hash := token.HashKey(key)
	userID, id, err := store.LookupKey(ctx, hash, now)
	if err == nil {
		var t token.Token
		var userDisabled bool
		if t, userDisabled, err = store.GetWithUser(ctx, userID, id); err == nil {
			switch {
			case !t.AcceptsKeyHash(hash, now):
				// The token's key was rotated and this one's grace is over.
				return token.Token{}, &token.Error{Code: UsageKeyInvalid}
			case userDisabled:
				return token.Token{}, &token.Error{Code: UsageUserDisabled}
			}
			return t, nil
		}
	}
	if token.ErrorCode(err) == token.ENotFound {
		// Unknown, or deleted since the lookup item was read.
		return token.Token{}, &token.Error{Code: UsageKeyInvalid}
	}
	return token.Token{}, err
}

// writeUsageError answers a failed usage request in new-api's shape:
// 401 for a missing or invalid key or a disabled user's, else 500 with
// nothing of err (logged).
func writeUsageError(w http.ResponseWriter, r *http.Request, err error) {
	code := token.ErrorCode(err)
	status := http.StatusUnauthorized
	if code != UsageKeyMissing && code != UsageKeyInvalid && code != UsageUserDisabled {
		code, status = token.EInternal, http.StatusInternalServerError
		logFailure(r, code, status, err)
	}
	writeJSON(w, status, UsageResponse{Code: false, Message: message.Text(code, RequestLang(r))})
}
