package token

import (
	"strings"
	"time"
)

// Status is a token's status as the API reports it. Only StatusEnabled and
// StatusDisabled are ever stored; StatusExpired and StatusExhausted are derived
// from expired_time and remain_quota whenever a token is read.
type Status int

// The four statuses of the contract.
const (
	StatusEnabled   Status = 1
	StatusDisabled  Status = 2
	StatusExpired   Status = 3
	StatusExhausted Status = 4
)

// Limits of the contract.
const (
	MaxNameLength = 30                  // characters, not bytes
	MaxQuota      = 500_000_000_000_000 // 5e14, below 2^53 so JavaScript reads it exactly
	MaxCount      = 49                  // tokens per create: 49 tokens + 49 key lookups + 1 meta = 99 transaction actions
	MaxBatchIDs   = 100                 // ids per batch request
	MaxRPMLimit   = 1_000_000
	// MaxGraceSeconds is the longest a rotated-out key keeps verifying: 7 days.
	MaxGraceSeconds = 604_800
	// DefaultRevealsPerMinute is the per-user reveal limit when none is configured.
	DefaultRevealsPerMinute = 30
	// DefaultMaxTokensPerUser is the per-user token limit when none is configured.
	DefaultMaxTokensPerUser = 1000
	NeverExpires            = -1
)

// Token is one API token of one user.
type Token struct {
	ID     int64
	UserID string
	Name   string
	// Key is the full key. The store fills it only where the contract shows it:
	// the result of a create (and later reveal and rotate). Everywhere else it
	// is empty and KeyMask is what a client sees.
	Key     string
	KeyMask string
	KeyHash string // hex SHA-256 of the full key
	// PrevKeyHash is the hash of the key a rotation replaced, which keeps
	// verifying until PrevKeyExpires (Unix seconds); both empty/0 when
	// there is no grace window.
	PrevKeyHash    string
	PrevKeyExpires int64

	Status             Status // the stored status: StatusEnabled or StatusDisabled
	RemainQuota        int64
	UsedQuota          int64
	UnlimitedQuota     bool
	ModelLimitsEnabled bool
	ModelLimits        []string
	AllowIPs           []string // addresses and CIDR ranges, normalised
	Group              string
	ExpiredTime        int64 // Unix seconds, or NeverExpires
	RPMLimit           int64 // requests per minute, 0 = no limit
	CreatedTime        int64
	AccessedTime       int64

	// Budgets are the token's spend windows (nil: none). BudgetTimezone is
	// the zone their boundaries are computed in, as the user wrote it ("":
	// the deployment's default). Windows is their stored state, by period:
	// what verify's charges counted in each window (nil: nothing charged
	// yet); a window that has ended counts nothing (Usage). WindowGen is
	// the windows' generation: every update that removes a window's state
	// or changes the zone bumps it, so that a request's give-back never
	// reaches a window started afresh at the same start (GiveBackWindows).
	Budgets        Budgets
	BudgetTimezone string
	Windows        map[Period]BudgetWindow
	WindowGen      int64
}

// AcceptsKeyHash reports whether a key with hash names t at now: its
// current key, or the key a rotation replaced while its grace window lasts.
// Every path that finds a token by key (verify, usage) confirms it so.
func (t Token) AcceptsKeyHash(hash string, now time.Time) bool {
	if hash == "" {
		return false
	}
	return hash == t.KeyHash || (hash == t.PrevKeyHash && now.Unix() < t.PrevKeyExpires)
}

// Expired reports whether t's expiry has passed at now.
func (t Token) Expired(now time.Time) bool {
	return t.ExpiredTime != NeverExpires && t.ExpiredTime <= now.Unix()
}

// Exhausted reports whether t has no quota left.
func (t Token) Exhausted() bool {
	return !t.UnlimitedQuota && t.RemainQuota <= 0
}

// EffectiveStatus is the status the API reports at now: expired wins over
// exhausted, and both win over the stored status.
func (t Token) EffectiveStatus(now time.Time) Status {
	switch {
	case t.Expired(now):
		return StatusExpired
	case t.Exhausted():
		return StatusExhausted
	}
	return t.Status
}

// CheckEnable returns the refusal for enabling t (as it would be after an
// update) at now: ETokenExpired, ETokenExhausted, or nil when it may be enabled.
func (t Token) CheckEnable(now time.Time) error {
	if t.Expired(now) {
		return &Error{Code: ETokenExpired}
	}
	if t.Exhausted() {
		return &Error{Code: ETokenExhausted}
	}
	return nil
}

// ModelLimitsString is the comma-separated form the API returns.
func (t Token) ModelLimitsString() string { return strings.Join(t.ModelLimits, ",") }

// AllowIPsString is the comma-separated form the API returns.
func (t Token) AllowIPsString() string { return strings.Join(t.AllowIPs, ",") }

// Spec is what a user chooses when creating tokens. Its zero value is not
// valid: Validate fills nothing in, the caller sets the defaults it documents.
type Spec struct {
	Name               string
	ExpiredTime        int64
	RemainQuota        int64
	UnlimitedQuota     bool
	ModelLimitsEnabled bool
	ModelLimits        []string
	AllowIPs           []string
	Group              string
	RPMLimit           int64
	Count              int
	Budgets            Budgets // periods with a limit > 0 (Validate drops zeros)
	BudgetTimezone     string  // "": the deployment's default
}

// Patch is a partial update: a nil field is left as it is.
type Patch struct {
	Name               *string
	ExpiredTime        *int64
	RemainQuota        *int64
	UnlimitedQuota     *bool
	ModelLimitsEnabled *bool
	ModelLimits        *[]string
	AllowIPs           *[]string
	Group              *string
	Status             *Status
	RPMLimit           *int64
	// Budgets names the periods that change: a limit > 0 sets that
	// window's limit (what it has counted stays), 0 removes the window.
	// ValidatePatch makes an empty map nil: {} changes nothing.
	Budgets *Budgets
	// BudgetTimezone, when it differs from the stored one, starts every
	// window afresh.
	BudgetTimezone *string
}

// StatusOnly returns the patch reduced to its status, as ?status_only=true asks.
func (p Patch) StatusOnly() Patch { return Patch{Status: p.Status} }

// Empty reports whether p changes nothing.
func (p Patch) Empty() bool { return p == (Patch{}) }

// Apply returns t with p's fields set.
func (p Patch) Apply(t Token) Token {
	if p.Name != nil {
		t.Name = *p.Name
	}
	if p.ExpiredTime != nil {
		t.ExpiredTime = *p.ExpiredTime
	}
	if p.RemainQuota != nil {
		t.RemainQuota = *p.RemainQuota
	}
	if p.UnlimitedQuota != nil {
		t.UnlimitedQuota = *p.UnlimitedQuota
	}
	if p.ModelLimitsEnabled != nil {
		t.ModelLimitsEnabled = *p.ModelLimitsEnabled
	}
	if p.ModelLimits != nil {
		t.ModelLimits = *p.ModelLimits
	}
	if p.AllowIPs != nil {
		t.AllowIPs = *p.AllowIPs
	}
	if p.Group != nil {
		t.Group = *p.Group
	}
	if p.Status != nil {
		t.Status = *p.Status
	}
	if p.RPMLimit != nil {
		t.RPMLimit = *p.RPMLimit
	}
	return p.applyBudgets(t)
}

// SearchQuery selects tokens by name keyword and/or key. Empty fields match all.
type SearchQuery struct {
	Keyword string // case-insensitive substring of the name
	Key     string // a whole key (with or without sk-) or a fragment of its visible characters
	// AcceptLegacyKey makes a Key of the right shape whose checksum fails a
	// whole key (KeyParser), as template parameter AcceptLegacyKeys asks.
	AcceptLegacyKey bool
}
