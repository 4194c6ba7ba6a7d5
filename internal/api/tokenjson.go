package api

import (
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Token is a token as responses show it: no user id, no key hash, the key
// masked except in the response of a create.
type Token struct {
	ID                 int64  `json:"id"`
	Name               string `json:"name"`
	Key                string `json:"key"`
	Status             int    `json:"status"`
	RemainQuota        int64  `json:"remain_quota"`
	UsedQuota          int64  `json:"used_quota"`
	UnlimitedQuota     bool   `json:"unlimited_quota"`
	ModelLimitsEnabled bool   `json:"model_limits_enabled"`
	ModelLimits        string `json:"model_limits"`
	AllowIPs           string `json:"allow_ips"`
	Group              string `json:"group"`
	ExpiredTime        int64  `json:"expired_time"`
	RPMLimit           int64  `json:"rpm_limit"`
	CreatedTime        int64  `json:"created_time"`
	AccessedTime       int64  `json:"accessed_time"`
	budgetFields
}

// NewToken is t as a response shows it at now: its effective status, its
// spend windows' budget_usage (in t's zone, or zone, the deployment's
// default, when t has none), and its full key only when fullKey is set
// (create's response).
func NewToken(t token.Token, now time.Time, zone *time.Location, fullKey bool) Token {
	key := t.KeyMask
	if key == "" && t.Key != "" {
		key = token.MaskKey(t.Key)
	}
	if fullKey && t.Key != "" {
		key = t.Key
	}
	return Token{
		ID:                 t.ID,
		Name:               t.Name,
		Key:                key,
		Status:             int(t.EffectiveStatus(now)),
		RemainQuota:        t.RemainQuota,
		UsedQuota:          t.UsedQuota,
		UnlimitedQuota:     t.UnlimitedQuota,
		ModelLimitsEnabled: t.ModelLimitsEnabled,
		ModelLimits:        t.ModelLimitsString(),
		AllowIPs:           t.AllowIPsString(),
		Group:              t.Group,
		ExpiredTime:        t.ExpiredTime,
		RPMLimit:           t.RPMLimit,
		CreatedTime:        t.CreatedTime,
		AccessedTime:       t.AccessedTime,
		budgetFields:       newBudgetFields(t, now, zone),
	}
}

func newTokens(ts []token.Token, now time.Time, zone *time.Location, fullKey bool) []Token {
	out := make([]Token, len(ts))
	for i, t := range ts {
		out[i] = NewToken(t, now, zone, fullKey)
	}
	return out
}
