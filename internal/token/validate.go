package token

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Size limits of the lists (README "The token object"), so that a
// token item stays a few KB and a page of 100 tokens well under 1 MB. They
// count the lists as stored: trimmed, without empty entries or duplicates,
// joined with commas.
const (
	MaxModels           = 200  // entries in model_limits
	MaxModelLimitsBytes = 4096 // bytes of model_limits joined
	MaxModelNameLength  = 128  // characters of a model name (a pattern's final * aside)
	MaxAllowIPs         = 100  // entries in allow_ips
	MaxAllowIPsBytes    = 2048 // bytes of allow_ips joined

	maxExpiredTime = 253402300799 // 9999-12-31T23:59:59Z
)

// Rules are the deployment's choices that validation depends on.
type Rules struct {
	// AllowedGroups are the groups a token may name; an empty group (the
	// user's default) is always allowed.
	AllowedGroups []string
}

// ParseID parses a token id from a path or query: a positive decimal integer.
func ParseID(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, &Error{Code: EInvalidID}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, &Error{Code: EInvalidID}
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &Error{Code: EInvalidID}
	}
	return id, nil
}

// CheckID returns EInvalidID unless id is positive.
func CheckID(id int64) error {
	if id <= 0 {
		return &Error{Code: EInvalidID}
	}
	return nil
}

// UniqueIDs checks a batch of ids (1..MaxBatchIDs, each positive) and returns
// them without duplicates, in their first order. Any failure is EInvalidRequest.
func UniqueIDs(ids []int64) ([]int64, error) {
	if len(ids) == 0 || len(ids) > MaxBatchIDs {
		return nil, Errorf(EInvalidRequest, "ids must hold 1 to %d ids", MaxBatchIDs)
	}
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if id <= 0 {
			return nil, Errorf(EInvalidRequest, "ids must be positive integers")
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// CheckName validates a token name: ENameRequired when it is empty or only
// white space; EInvalidName when it is not valid UTF-8 or does not show
// what it is (control, bidirectional-control or tag characters, a leading
// BOM, nothing visible: see nameShowsWhatItIs); ENameTooLong over
// MaxNameLength characters.
func CheckName(name string) error {
	if strings.TrimSpace(name) == "" {
		return &Error{Code: ENameRequired}
	}
	if !utf8.ValidString(name) || !nameShowsWhatItIs(name) {
		return &Error{Code: EInvalidName}
	}
	if utf8.RuneCountInString(name) > MaxNameLength {
		return &Error{Code: ENameTooLong}
	}
	return nil
}

// CheckExpiredTime accepts NeverExpires or a Unix time after now.
func CheckExpiredTime(t int64, now time.Time) error {
	if t == NeverExpires {
		return nil
	}
	if t <= now.Unix() || t > maxExpiredTime {
		return &Error{Code: EInvalidExpiry}
	}
	return nil
}

// CheckQuota accepts 0..MaxQuota.
func CheckQuota(q int64) error {
	if q < 0 || q > MaxQuota {
		return &Error{Code: EInvalidQuota}
	}
	return nil
}

// CheckRPMLimit accepts 0..MaxRPMLimit.
func CheckRPMLimit(n int64) error {
	if n < 0 || n > MaxRPMLimit {
		return &Error{Code: EInvalidRPMLimit}
	}
	return nil
}

// CheckStatus accepts the two statuses a user may set.
func CheckStatus(s Status) error {
	if s != StatusEnabled && s != StatusDisabled {
		return &Error{Code: EInvalidStatus}
	}
	return nil
}

// CheckGroup accepts "" (the user's default) or one of r.AllowedGroups.
func (r Rules) CheckGroup(g string) error {
	if g == "" || slices.Contains(r.AllowedGroups, g) {
		return nil
	}
	return Errorf(EInvalidGroup, "%.64s", g)
}

// NormalizeModelLimits trims each entry, drops empty ones and duplicates,
// and checks the rest (EInvalidModels): each a model name (CheckModelEntry),
// at most MaxModels entries and MaxModelLimitsBytes bytes once joined.
func NormalizeModelLimits(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	size := -1 // the commas between entries
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		if err := CheckModelEntry(n); err != nil {
			return nil, err
		}
		seen[n] = true
		out = append(out, n)
		size += len(n) + 1
	}
	switch {
	case len(out) > MaxModels:
		return nil, Errorf(EInvalidModels, "more than %d entries", MaxModels)
	case size > MaxModelLimitsBytes:
		return nil, Errorf(EInvalidModels, "more than %d bytes", MaxModelLimitsBytes)
	}
	return out, nil
}

// CheckModelEntry accepts one model_limits entry (README "The token
// object", model_limits): 1 to MaxModelNameLength characters of [A-Za-z0-9._:/@+-],
// plus an optional final '*' that makes it a prefix pattern. '*' alone, a
// '*' anywhere else or any other character is EInvalidModels. The small
// set needs no JSON escaping, so a list's size in a response is its size.
func CheckModelEntry(e string) error {
	name := strings.TrimSuffix(e, "*")
	if name == "" || len(name) > MaxModelNameLength || strings.IndexFunc(name, notModelChar) >= 0 {
		return Errorf(EInvalidModels, "%.64q", e)
	}
	return nil
}

func notModelChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("._:/@+-", r)
}

// ModelAllowed reports whether model is allowed by the entries of a
// token's model_limits: an entry equal to it, or a pattern (an entry of
// two or more characters ending in '*') whose prefix it starts with. An
// empty model is never allowed. Entries stored before the patterns (any
// characters) keep matching exactly; a lone "*", which validation never
// accepted as a pattern, matches only itself.
func ModelAllowed(limits []string, model string) bool {
	if model == "" {
		return false
	}
	for _, e := range limits {
		if e == model {
			return true
		}
		if prefix, ok := strings.CutSuffix(e, "*"); ok && prefix != "" && strings.HasPrefix(model, prefix) {
			return true
		}
	}
	return false
}

// ParseAllowIPs splits a comma- or newline-separated list of IPv4/IPv6
// addresses and CIDR ranges and returns each in canonical form (ranges masked
// to their network address). Empty means any IP. At most MaxAllowIPs
// entries and MaxAllowIPsBytes bytes once joined, else EInvalidAllowIPs.
func ParseAllowIPs(s string) ([]string, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	out := make([]string, 0, len(fields))
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		canon, err := canonicalIPEntry(f)
		if err != nil {
			return nil, err
		}
		if !seen[canon] {
			seen[canon] = true
			out = append(out, canon)
		}
	}
	if len(out) > MaxAllowIPs {
		return nil, Errorf(EInvalidAllowIPs, "more than %d entries", MaxAllowIPs)
	}
	if size := len(strings.Join(out, ",")); size > MaxAllowIPsBytes {
		return nil, Errorf(EInvalidAllowIPs, "more than %d bytes", MaxAllowIPsBytes)
	}
	return out, nil
}

func canonicalIPEntry(f string) (string, error) {
	if strings.Contains(f, "/") {
		p, err := netip.ParsePrefix(f)
		if err != nil || p.Addr().Zone() != "" {
			return "", Errorf(EInvalidAllowIPs, "%.64q", f)
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(f)
	if err != nil || a.Zone() != "" {
		return "", Errorf(EInvalidAllowIPs, "%.64q", f)
	}
	return a.Unmap().String(), nil
}

// IPAllowed reports whether ip is within allow (an empty list allows any IP,
// including an unknown one). An empty or unparsable ip is never within a
// non-empty list.
func IPAllowed(allow []string, ip string) bool {
	if len(allow) == 0 {
		return true
	}
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, e := range allow {
		if strings.Contains(e, "/") {
			if p, err := netip.ParsePrefix(e); err == nil && p.Contains(a) {
				return true
			}
		} else if b, err := netip.ParseAddr(e); err == nil && b == a {
			return true
		}
	}
	return false
}

// Validate checks every field of s at now and normalises the lists in place.
func (r Rules) Validate(s *Spec, now time.Time) error {
	if s.Count < 1 || s.Count > MaxCount {
		return Errorf(EInvalidCount, "1 to %d", MaxCount)
	}
	for _, name := range s.Names() {
		if err := CheckName(name); err != nil {
			return err
		}
	}
	if err := CheckExpiredTime(s.ExpiredTime, now); err != nil {
		return err
	}
	if err := CheckQuota(s.RemainQuota); err != nil {
		return err
	}
	if err := CheckRPMLimit(s.RPMLimit); err != nil {
		return err
	}
	if err := r.CheckGroup(s.Group); err != nil {
		return err
	}
	models, err := NormalizeModelLimits(s.ModelLimits)
	if err != nil {
		return err
	}
	s.ModelLimits = models
	ips, err := normalizeAllowIPs(s.AllowIPs)
	if err != nil {
		return err
	}
	s.AllowIPs = ips
	if err := CheckBudgets(s.Budgets); err != nil {
		return err
	}
	s.Budgets = s.Budgets.clone() // 0 is no window
	return CheckBudgetTimezone(s.BudgetTimezone)
}

// ValidatePatch checks every field p sets, at now, and normalises its lists in
// place. A patch that sets nothing is valid (the update returns the token).
func (r Rules) ValidatePatch(p *Patch, now time.Time) error {
	if p.Name != nil {
		if err := CheckName(*p.Name); err != nil {
			return err
		}
	}
	if p.ExpiredTime != nil {
		if err := CheckExpiredTime(*p.ExpiredTime, now); err != nil {
			return err
		}
	}
	if p.RemainQuota != nil {
		if err := CheckQuota(*p.RemainQuota); err != nil {
			return err
		}
	}
	if p.RPMLimit != nil {
		if err := CheckRPMLimit(*p.RPMLimit); err != nil {
			return err
		}
	}
	if p.Status != nil {
		if err := CheckStatus(*p.Status); err != nil {
			return err
		}
	}
	if p.Group != nil {
		if err := r.CheckGroup(*p.Group); err != nil {
			return err
		}
	}
	if p.ModelLimits != nil {
		models, err := NormalizeModelLimits(*p.ModelLimits)
		if err != nil {
			return err
		}
		p.ModelLimits = &models
	}
	if p.AllowIPs != nil {
		ips, err := normalizeAllowIPs(*p.AllowIPs)
		if err != nil {
			return err
		}
		p.AllowIPs = &ips
	}
	if p.Budgets != nil {
		if err := CheckBudgets(*p.Budgets); err != nil {
			return err
		}
		if len(*p.Budgets) == 0 {
			p.Budgets = nil // {} changes nothing
		}
	}
	if p.BudgetTimezone != nil {
		if err := CheckBudgetTimezone(*p.BudgetTimezone); err != nil {
			return err
		}
	}
	return nil
}

// normalizeAllowIPs re-canonicalises entries that may come from any caller.
func normalizeAllowIPs(entries []string) ([]string, error) {
	return ParseAllowIPs(strings.Join(entries, ","))
}

// Names returns the names a create of s gives its tokens: the name itself,
// then name-2, name-3, ... up to Count.
func (s Spec) Names() []string {
	n := max(s.Count, 1)
	names := make([]string, n)
	names[0] = s.Name
	for i := 1; i < n; i++ {
		names[i] = s.Name + "-" + strconv.Itoa(i+1)
	}
	return names
}
