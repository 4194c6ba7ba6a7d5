package dynamo

import (
	"fmt"
	"time"

	"github.com/llmgw/token-service/internal/token"
)

// Key layout of the single table (see the README's "Data model").
const (
	userPrefix   = "USER#"
	tokenPrefix  = "TOKEN#"
	metaSK       = "USER" // sorts after every TOKEN# key
	keyPrefix    = "KEY#"
	keySK        = "KEY"
	accessPrefix = "ACCESS#"
	accessSK     = "ACCESS"
	statusActive = "active"
)

// Attribute names used in expressions.
const (
	attrKeyHash    = "key_hash"
	attrTokenCount = "token_count"
	attrNextID     = "next_id"
	attrStatus     = "status"
	attrExpired    = "expired_time"
	attrRemain     = "remain_quota"
	attrUnlimited  = "unlimited_quota"
	attrUsed       = "used_quota"
	attrAccessed   = "accessed_time"
	attrRPMWindow  = "rpm_window"
	attrRPMCount   = "rpm_count"
	attrDisabled   = "disabled"
	// After a rotation with a grace window: the replaced key's hash and
	// when it stops verifying (Unix seconds).
	attrPrevKeyHash    = "prev_key_hash"
	attrPrevKeyExpires = "prev_key_expires"
	attrKeyMask        = "key_mask"
	attrKeySealed      = "key_sealed"
	// attrExpiresAt is the TTL attribute (template.yaml) of a rotated-out
	// key's lookup item. TTL deletes late, so reads check it too.
	attrExpiresAt = "expires_at"
	// The per-user reveal window on the meta item: minute start and count.
	attrRevealWindow = "reveal_window"
	attrRevealCount  = "reveal_count"
)

func userPK(userID string) string { return userPrefix + userID }
func tokenSK(id int64) string     { return fmt.Sprintf("%s%019d", tokenPrefix, id) }
func keyPK(hash string) string    { return keyPrefix + hash }
func accessPK(hash string) string { return accessPrefix + hash }

// sealAAD binds a sealed key to its item.
func sealAAD(pk, sk string) []byte { return []byte(pk + "\x00" + sk) }

// tokenItem is a token as stored. It never holds the plaintext key.
type tokenItem struct {
	PK                 string   `dynamodbav:"pk"`
	SK                 string   `dynamodbav:"sk"`
	ID                 int64    `dynamodbav:"id"`
	UserID             string   `dynamodbav:"user_id"`
	Name               string   `dynamodbav:"name"`
	KeyHash            string   `dynamodbav:"key_hash"`
	KeyMask            string   `dynamodbav:"key_mask"`
	KeySealed          []byte   `dynamodbav:"key_sealed"`
	Status             int      `dynamodbav:"status"`
	RemainQuota        int64    `dynamodbav:"remain_quota"`
	UsedQuota          int64    `dynamodbav:"used_quota"`
	UnlimitedQuota     bool     `dynamodbav:"unlimited_quota"`
	ModelLimitsEnabled bool     `dynamodbav:"model_limits_enabled"`
	ModelLimits        []string `dynamodbav:"model_limits"`
	AllowIPs           []string `dynamodbav:"allow_ips"`
	Group              string   `dynamodbav:"group"`
	ExpiredTime        int64    `dynamodbav:"expired_time"`
	RPMLimit           int64    `dynamodbav:"rpm_limit"`
	CreatedTime        int64    `dynamodbav:"created_time"`
	AccessedTime       int64    `dynamodbav:"accessed_time"`
	// The rpm_limit window of verify: its minute start and the verifies
	// counted in it. Only verify writes them.
	RPMWindow int64 `dynamodbav:"rpm_window,omitempty"`
	RPMCount  int64 `dynamodbav:"rpm_count,omitempty"`
	// Set by a rotation with a grace window, removed by one without.
	PrevKeyHash    string `dynamodbav:"prev_key_hash,omitempty"`
	PrevKeyExpires int64  `dynamodbav:"prev_key_expires,omitempty"`
	// The spend windows: btz, bl_<period>, bs_<period>, bu_<period>
	// (budgets.go); all absent on a token without budgets.
	budgetItem
}

// toDBToken converts t (with its id set) to its item; the caller seals the key.
func toDBToken(t token.Token) tokenItem {
	return tokenItem{
		PK:                 userPK(t.UserID),
		SK:                 tokenSK(t.ID),
		ID:                 t.ID,
		UserID:             t.UserID,
		Name:               t.Name,
		KeyHash:            t.KeyHash,
		KeyMask:            t.KeyMask,
		Status:             int(t.Status),
		RemainQuota:        t.RemainQuota,
		UsedQuota:          t.UsedQuota,
		UnlimitedQuota:     t.UnlimitedQuota,
		ModelLimitsEnabled: t.ModelLimitsEnabled,
		ModelLimits:        dbList(t.ModelLimits),
		AllowIPs:           dbList(t.AllowIPs),
		Group:              t.Group,
		ExpiredTime:        t.ExpiredTime,
		RPMLimit:           t.RPMLimit,
		CreatedTime:        t.CreatedTime,
		AccessedTime:       t.AccessedTime,
		budgetItem:         toDBBudgets(t),
	}
}

// toDomainToken converts an item to a token with its key masked (Key empty).
func toDomainToken(it tokenItem) token.Token {
	t := token.Token{
		ID:                 it.ID,
		UserID:             it.UserID,
		Name:               it.Name,
		KeyMask:            it.KeyMask,
		KeyHash:            it.KeyHash,
		Status:             token.Status(it.Status),
		RemainQuota:        it.RemainQuota,
		UsedQuota:          it.UsedQuota,
		UnlimitedQuota:     it.UnlimitedQuota,
		ModelLimitsEnabled: it.ModelLimitsEnabled,
		ModelLimits:        domainList(it.ModelLimits),
		AllowIPs:           domainList(it.AllowIPs),
		Group:              it.Group,
		ExpiredTime:        it.ExpiredTime,
		RPMLimit:           it.RPMLimit,
		CreatedTime:        it.CreatedTime,
		AccessedTime:       it.AccessedTime,
		PrevKeyHash:        it.PrevKeyHash,
		PrevKeyExpires:     it.PrevKeyExpires,
	}
	it.budgetItem.setOn(&t)
	return t
}

// dbList stores an empty list as an empty L, never as NULL.
func dbList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// domainList reads an empty list as nil, so every read gives the same value.
func domainList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// metaItem is the per-user counter item.
type metaItem struct {
	PK         string `dynamodbav:"pk"`
	SK         string `dynamodbav:"sk"`
	TokenCount int    `dynamodbav:"token_count"`
	NextID     int64  `dynamodbav:"next_id"` // the last id issued; ids are never reused
	Disabled   bool   `dynamodbav:"disabled,omitempty"`
	// ImportSource names the new-api or one-api deployment an imported
	// user came from (cmd/admin import); empty for a user created here.
	ImportSource string `dynamodbav:"import_source,omitempty"`
	// The reveal limit's window (minute start) and the reveals counted in
	// it. Only reveals write them.
	RevealWindow int64 `dynamodbav:"reveal_window,omitempty"`
	RevealCount  int64 `dynamodbav:"reveal_count,omitempty"`
}

// lookupItem maps a key hash to its token.
type lookupItem struct {
	PK      string `dynamodbav:"pk"`
	SK      string `dynamodbav:"sk"`
	UserID  string `dynamodbav:"user_id"`
	TokenID int64  `dynamodbav:"token_id"`
	// ExpiresAt (Unix seconds, the table's TTL attribute) is set on the
	// lookup item of a key rotated out with a grace window; from then on
	// the item is missing, whether or not TTL has deleted it yet.
	ExpiresAt int64 `dynamodbav:"expires_at,omitempty"`
}

// live reports whether the lookup item still counts at now.
func (l lookupItem) live(now time.Time) bool {
	return l.ExpiresAt == 0 || now.Unix() < l.ExpiresAt
}

// accessItem is a user access token, stored by hash.
type accessItem struct {
	PK          string `dynamodbav:"pk"`
	SK          string `dynamodbav:"sk"`
	UserID      string `dynamodbav:"user_id"`
	Role        string `dynamodbav:"role"`
	Status      string `dynamodbav:"status"`
	CreatedTime int64  `dynamodbav:"created_time"`
}
