package token

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input limits beyond the contract's, so that one token item stays small.
const (
	MaxModels          = 500          // model names per token
	MaxModelNameLength = 128          // characters per model name
	MaxAllowIPs        = 100          // entries in allow_ips
	maxExpiredTime     = 253402300799 // 9999-12-31T23:59:59Z
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

// CheckName validates a token name: 1 to MaxNameLength characters of valid
// UTF-8 without control characters.
func CheckName(name string) error {
	if strings.TrimSpace(name) == "" {
		return &Error{Code: ENameRequired}
	}
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return Errorf(EInvalidRequest, "name holds invalid characters")
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

// NormalizeModelLimits trims each model name, drops empty ones and duplicates,
// and checks the limits (MaxModels names of at most MaxModelNameLength
// characters, no commas or control characters).
func NormalizeModelLimits(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		if !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxModelNameLength ||
			strings.ContainsRune(n, ',') || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			return nil, Errorf(EInvalidModels, "%.64q", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) > MaxModels {
		return nil, Errorf(EInvalidModels, "more than %d models", MaxModels)
	}
	return out, nil
}

// ParseAllowIPs splits a comma- or newline-separated list of IPv4/IPv6
// addresses and CIDR ranges and returns each in canonical form (ranges masked
// to their network address). Empty means any IP.
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
	return nil
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
