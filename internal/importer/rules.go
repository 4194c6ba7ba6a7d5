package importer

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/llmgw/token-service/internal/auth"
	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// keyLength is the length of a stored new-api or one-api key: the 48
// characters after "sk-".
const keyLength = token.KeyLength

// maxUsedQuota is the used_quota cap of the contract (2^53-1).
const maxUsedQuota = 1<<53 - 1

// maxExpiredTime is the latest expiry the contract accepts (9999-12-31).
const maxExpiredTime = 253402300799

// Rules are an import's choices: what every source row becomes.
type Rules struct {
	Schema Schema
	// UserPrefix goes before every source user id (-user-prefix).
	UserPrefix string
	// Groups holds the groups a token may name (-allowed-groups).
	Groups token.Rules
	// AccessTokens imports the users' access tokens (-access-tokens).
	AccessTokens bool
	// Now decides whether a status 3 or 4 token still reads as such.
	Now time.Time
}

// UserPlan is what a source user becomes, or Skip says why not.
type UserPlan struct {
	UserID   string
	Disabled bool
	// AccessTokenHash is the hash of the access token to import ("" for none).
	AccessTokenHash string
	// Skip is why the user is not imported (deleted in the source).
	Skip string
	// Notes are remarks for the report (an access token refused, an odd
	// status).
	Notes []string
}

// User decides what u becomes. A deleted user (new-api's deleted_at set,
// one-api's status 3) is skipped with their tokens. Any status but 1 is
// imported as disabled: both projects refuse a user whose status is not 1.
func (r Rules) User(u SourceUser) UserPlan {
	if u.Deleted {
		return UserPlan{Skip: "user deleted in the source (deleted_at set)"}
	}
	if r.Schema == OneAPI && u.Status == 3 {
		return UserPlan{Skip: "user deleted in the source (status 3)"}
	}
	p := UserPlan{UserID: r.UserPrefix + strconv.FormatInt(u.ID, 10), Disabled: u.Status != 1}
	if err := auth.CheckUserID(p.UserID); err != nil {
		return UserPlan{Skip: "user id " + strconv.Quote(p.UserID) + " is not a valid user id here"}
	}
	if u.Status != 1 && u.Status != 2 {
		p.Notes = append(p.Notes, fmt.Sprintf("user status %d is not 1 (enabled): imported as disabled", u.Status))
	}
	if r.AccessTokens && u.AccessToken.Valid && strings.TrimSpace(u.AccessToken.String) != "" {
		tok, ok := auth.NormalizeLegacy(u.AccessToken.String)
		if ok {
			p.AccessTokenHash = auth.Hash(tok)
		} else {
			p.Notes = append(p.Notes, fmt.Sprintf("access token refused: %d characters, not 16-64 of [A-Za-z0-9+/=]", len(tok)))
		}
	}
	return p
}

// TokenPlan is what a source row becomes: the token to write, or Refused
// saying why not, with Notes for the report.
type TokenPlan struct {
	Token   dynamo.ImportToken
	Refused string
	Notes   []Note
}

// Note is a remark on a row that was imported changed.
type Note struct {
	Kind NoteKind
	Text string
}

// NoteKind groups the notes of the report.
type NoteKind string

// The kinds of note.
const (
	NoteNameCut      NoteKind = "name cut"
	NoteNameReplaced NoteKind = "name replaced"
	NoteNameCleaned  NoteKind = "name cleaned"
	NoteStatus       NoteKind = "status mapped"
	NoteQuota        NoteKind = "quota read as 0"
	NoteExpiry       NoteKind = "expiry"
)

// Token decides what row t becomes. Every refusal is a field that fails
// the contract's validation; nothing is ever dropped to make a row fit.
func (r Rules) Token(t SourceToken) TokenPlan {
	var p TokenPlan
	refuse := func(format string, args ...any) TokenPlan {
		return TokenPlan{Refused: fmt.Sprintf(format, args...)}
	}
	note := func(kind NoteKind, format string, args ...any) {
		p.Notes = append(p.Notes, Note{kind, fmt.Sprintf(format, args...)})
	}

	// The key: 48 characters of [A-Za-z0-9], stored without sk-. CHAR
	// columns come back padded with spaces (PostgreSQL), so those go.
	key := strings.TrimRight(t.Key.String, " ")
	if len(key) != keyLength {
		return refuse("key of %d characters (48 expected)", utf8.RuneCountInString(key))
	}
	full, err := token.ParseLegacyKey(key)
	if err != nil {
		return refuse("key holds characters outside [A-Za-z0-9]")
	}

	remain, used := t.RemainQuota.Int64, t.UsedQuota.Int64
	if remain < 0 {
		// one-api's default token has remain_quota -1 with unlimited_quota.
		note(NoteQuota, "remain_quota %d read as 0", remain)
		remain = 0
	}
	if remain > token.MaxQuota {
		return refuse("remain_quota %d above %d", remain, int64(token.MaxQuota))
	}
	if used < 0 {
		note(NoteQuota, "used_quota %d read as 0", used)
		used = 0
	}
	if used > maxUsedQuota {
		return refuse("used_quota %d above 2^53-1", used)
	}

	// expired_time: both gorm models declare default:-1, so a row inserted
	// through gorm never holds 0; a 0 comes from an update, and both
	// projects read it as a time (1970) that has passed: expired, here too.
	// NULL (a row written around gorm) is the column's default, -1.
	expiry := int64(token.NeverExpires)
	if t.ExpiredTime.Valid {
		expiry = t.ExpiredTime.Int64
	} else {
		note(NoteExpiry, "expired_time NULL read as -1 (never), the column's default")
	}
	switch {
	case expiry < -1 || expiry > maxExpiredTime:
		return refuse("expired_time %d is neither -1 nor a Unix time", expiry)
	case expiry == 0:
		note(NoteExpiry, "expired_time 0 is a moment of 1970: expired, as in the source")
	}

	models, enabled := splitList(t.ModelLimits.String, ","), t.ModelLimitsEnabled.Bool
	if r.Schema == OneAPI {
		// one-api has no switch: a non-empty models list limits the token.
		enabled = len(models) > 0
	}
	models, err = token.NormalizeModelLimits(models)
	if err != nil {
		return refuse("model limits: %s", describe(err))
	}

	var ips []string
	if r.Schema == OneAPI {
		ips, err = oneAPISubnet(t.IPs.String)
	} else {
		ips, err = token.ParseAllowIPs(t.IPs.String)
	}
	if err != nil {
		return refuse("IP rules: %s", describe(err))
	}

	group := strings.TrimSpace(t.Group.String)
	if err := r.Groups.CheckGroup(group); err != nil {
		return refuse("group %q is not one of -allowed-groups", group)
	}

	tok := token.Token{
		Key:                full,
		RemainQuota:        remain,
		UsedQuota:          used,
		UnlimitedQuota:     t.Unlimited.Bool,
		ModelLimitsEnabled: enabled,
		ModelLimits:        models,
		AllowIPs:           ips,
		Group:              group,
		ExpiredTime:        expiry,
		CreatedTime:        t.CreatedTime.Int64,
		AccessedTime:       t.AccessedTime.Int64,
	}

	// Status: 1 and 2 are kept; 3 (expired) and 4 (exhausted) are
	// derived here, so the row is stored as 1 while it still reads as
	// such, and as 2 when it would read as usable: nothing is revived.
	switch s := t.Status.Int64; s {
	case 1, 2:
		tok.Status = token.Status(s)
	case 3, 4:
		tok.Status = token.StatusEnabled
		if now := tok.EffectiveStatus(r.Now); now != token.StatusExpired && now != token.StatusExhausted {
			tok.Status = token.StatusDisabled
			note(NoteStatus, "status %d but no longer expired or exhausted: stored disabled (2), not revived", s)
		}
	default:
		return refuse("status %d is not 1-4", s)
	}

	name, nameFromID, notes := r.name(t.Name.String)
	tok.Name = name
	p.Notes = append(p.Notes, notes...)
	p.Token = dynamo.ImportToken{SourceID: t.ID, Token: tok, NameFromID: nameFromID}
	return p
}

// name makes the row's name a valid one: characters the contract refuses
// in names (control, bidirectional-control and tag characters, a leading
// BOM, invalid UTF-8) removed, then cut to 30 characters; a name that
// shows nothing becomes token-<id> (fromID).
func (r Rules) name(name string) (out string, fromID bool, notes []Note) {
	cleaned := strings.ToValidUTF8(name, "")
	cleaned = strings.TrimPrefix(cleaned, "\uFEFF")
	cleaned = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || unicode.In(c, unicode.Zl, unicode.Zp) || unicode.Is(unicode.Bidi_Control, c) || (c >= 0xE0000 && c <= 0xE007F) {
			return -1
		}
		return c
	}, cleaned)
	if cleaned != name && strings.TrimSpace(cleaned) != "" {
		notes = append(notes, Note{NoteNameCleaned, "name held invisible or control characters, removed"})
	}
	if n := utf8.RuneCountInString(cleaned); n > token.MaxNameLength {
		cleaned = string([]rune(cleaned)[:token.MaxNameLength])
		notes = append(notes, Note{NoteNameCut, fmt.Sprintf("name of %d characters cut to %d", n, token.MaxNameLength)})
	}
	if token.CheckName(cleaned) != nil {
		return "", true, append(notes, Note{NoteNameReplaced, "name shows nothing: named token-<id>"})
	}
	return cleaned, false, notes
}

// splitList splits s at sep, trimming each entry and dropping empty ones.
func splitList(s, sep string) []string {
	var out []string
	for _, e := range strings.Split(s, sep) {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// oneAPISubnet reads one-api's subnet: comma-separated CIDR ranges, each
// parsed by one-api with net.ParseCIDR. A bare address, or anything else,
// never matched a client there, so it is refused rather than read as an
// address (which would open the token to it).
func oneAPISubnet(s string) ([]string, error) {
	entries := splitList(s, ",")
	for _, e := range entries {
		if _, err := netip.ParsePrefix(e); err != nil {
			return nil, fmt.Errorf("subnet entry %.64q is not a CIDR range", e)
		}
	}
	return token.ParseAllowIPs(strings.Join(entries, ","))
}

// describe is an error's text for the report: the code and detail of a
// token.Error, the text of another.
func describe(err error) string {
	var te *token.Error
	if errors.As(err, &te) {
		if te.Detail != "" {
			return te.Code + ": " + te.Detail
		}
		return te.Code
	}
	return err.Error()
}
